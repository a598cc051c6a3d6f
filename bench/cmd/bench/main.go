// Command bench measures s3xfer against its peers on a real S3 store: each transfer runs
// in its own process so that wall time, client CPU (user + sys) and peak RSS are the
// client's alone; tools are interleaved within every run; every result is verified.
//
//	bench run --endpoint URL --bin DIR --work DIR --out FILE.json [--quick] [--runs N] [--scenarios a,b] [--baseline REV]
//	bench report --in FILE.json --md RESULTS.md --png chart.png
//	bench farproxy --target HOST:PORT [--delay 20ms] [--rate 85]
//
// bench/run.sh starts the store, builds the drivers and calls both; see bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench run|report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	case "farproxy":
		err = cmdFarProxy(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: use run or report", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// Settings are the sizes and knobs of one bench run, recorded with its results.
type Settings struct {
	Quick           bool     `json:"quick"`
	Runs            int      `json:"runs"`
	Scenarios       []string `json:"scenarios"`
	UploadSize      int64    `json:"upload_size"`
	CopySize        int64    `json:"copy_size"`
	HugeSize        int64    `json:"huge_size"`
	Files           int      `json:"files"`
	FileSize        int64    `json:"file_size"`
	PartSize        int64    `json:"part_size"`
	Concurrency     int      `json:"concurrency"`
	RateSize        int64    `json:"rate_size"`
	RateLimit       int64    `json:"rate_limit"`
	ResumeSize      int64    `json:"resume_size"`
	ResumePartSize  int64    `json:"resume_part_size"`
	ResumeConc      int      `json:"resume_concurrency"`
	MemoryPartSizes []int64  `json:"memory_part_sizes"`
	MemoryConc      int      `json:"memory_concurrency"`
	StreamSize      int64    `json:"stream_size,omitempty"`
	Baseline        string   `json:"baseline,omitempty"` // git revision of the s3xfer-cli@REV tool, if any
	Tools           []string `json:"tools,omitempty"`    // only these tools ran (--tools); all if empty

	Far *FarSettings `json:"far,omitempty"` // the far-* scenarios' path, if any runs
}

func settingsFor(quick bool) Settings {
	if quick {
		return Settings{
			Quick: true, UploadSize: 32 * mib, CopySize: 32 * mib, HugeSize: 64 * mib,
			Files: 50, FileSize: 64 * kib, PartSize: 8 * mib, Concurrency: 4,
			RateSize: 24 * mib, RateLimit: 12 * mib,
			ResumeSize: 64 * mib, ResumePartSize: 8 * mib, ResumeConc: 2,
			MemoryPartSizes: []int64{5 * mib, 8 * mib, 16 * mib}, MemoryConc: 16,
			StreamSize: 32 * mib,
		}
	}
	return Settings{
		UploadSize: gib, CopySize: gib, HugeSize: 6 * gib,
		Files: 2000, FileSize: 64 * kib, PartSize: 64 * mib, Concurrency: 16,
		RateSize: 256 * mib, RateLimit: 32 * mib,
		ResumeSize: gib, ResumePartSize: 16 * mib, ResumeConc: 4,
		MemoryPartSizes: []int64{16 * mib, 64 * mib, 256 * mib}, MemoryConc: 16,
		StreamSize: 2 * gib,
	}
}

var allScenarios = slices.Concat([]string{"upload", "download", "copy-1g", "copy-6g", "files", "ratelimit", "resume", "memory", "stream"}, manyScenarios, farScenarios)

// Sample is one measured transfer.
type Sample struct {
	Run         int                `json:"run"`
	Scenario    string             `json:"scenario"`
	Tool        string             `json:"tool"`
	Variant     string             `json:"variant"`
	PartSize    int64              `json:"part_size,omitempty"`
	Concurrency int                `json:"concurrency,omitempty"`
	Bytes       int64              `json:"bytes"`
	Wall        float64            `json:"wall_s"`
	User        float64            `json:"user_s"`
	Sys         float64            `json:"sys_s"`
	MaxRSSKiB   int64              `json:"max_rss_kib"`
	OK          bool               `json:"ok"`
	NA          bool               `json:"na,omitempty"`
	Err         string             `json:"err,omitempty"`
	Checksum    string             `json:"checksum,omitempty"` // what verified an s3xfer download, as it reported
	Extra       map[string]float64 `json:"extra,omitempty"`
}

// Results is what a run writes: where and how it ran, and every sample.
type Results struct {
	Started  time.Time         `json:"started"`
	Command  string            `json:"command"`
	Machine  map[string]string `json:"machine"`
	Versions map[string]string `json:"versions"`
	Settings Settings          `json:"settings"`
	Samples  []Sample          `json:"samples"`
}

type harness struct {
	endpoint, access, secret string
	bin, work, home          string
	aws                      string
	mc                       *minio.Client
	set                      Settings
	seq                      atomic.Int64
	proxy                    *proxy
	spawner                  *spawner
	far                      farPath
	dist                     *distCluster // the distributed MinIO of the dist-* scenarios, if selected
	storePIDs                []int        // the store's process (S3XFER_TEST_MINIO_PID), for its CPU time per step

	bigFile, rateFile, resumeFile, streamFile string
	dirSums                                   map[string]string
}

const (
	srcBucket = "bench-src"
	dstBucket = "bench-dst"
	bigKey    = "src/big"
	hugeKey   = "src/huge"
)

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	h := &harness{}
	var quick bool
	var runs int
	var scen, out, command, minioBin, profile, baseline, tools string
	fs.StringVar(&h.endpoint, "endpoint", os.Getenv("S3XFER_TEST_MINIO_ENDPOINT"), "store URL")
	fs.StringVar(&h.bin, "bin", "", "directory with peer, s3xferlib, s3xfer and rclone")
	fs.StringVar(&h.work, "work", "", "scratch directory for test data (removed by run.sh)")
	fs.StringVar(&h.aws, "aws", "", "aws cli executable")
	fs.StringVar(&minioBin, "minio", "", "minio executable (for its version)")
	fs.BoolVar(&quick, "quick", false, "small sizes, one run: proves the harness works")
	fs.IntVar(&runs, "runs", 3, "runs; tools are interleaved within each run")
	fs.StringVar(&scen, "scenarios", "", "comma-separated scenarios (default all): "+strings.Join(allScenarios, ",")+"; only if selected: "+strings.Join(distScenarios, ","))
	fs.StringVar(&out, "out", "", "results JSON file")
	fs.StringVar(&command, "command", "", "the command line to record")
	fs.StringVar(&profile, "profile", "", "only profile s3xfer-lib upload and download into this directory")
	fs.StringVar(&baseline, "baseline", "", "git revision of the s3xfer CLI in BIN/"+baselineBin+": adds the tool s3xfer-cli@REV to upload, download and copy-1g")
	fs.StringVar(&tools, "tools", "", "comma-separated tools to run (default all): "+strings.Join(toolOrder, ",")+"; a scenario's variants of other tools are left out")
	h.farFlags(fs)
	_ = fs.Parse(args)
	h.access = firstNonEmpty(os.Getenv("S3XFER_TEST_MINIO_ACCESS_KEY"), os.Getenv("AWS_ACCESS_KEY_ID"))
	h.secret = firstNonEmpty(os.Getenv("S3XFER_TEST_MINIO_SECRET_KEY"), os.Getenv("AWS_SECRET_ACCESS_KEY"))
	if h.endpoint == "" || h.bin == "" || h.work == "" {
		return errors.New("run: --endpoint, --bin and --work are required")
	}
	if pid, err := strconv.Atoi(os.Getenv("S3XFER_TEST_MINIO_PID")); err == nil && h.endpoint == os.Getenv("S3XFER_TEST_MINIO_ENDPOINT") {
		h.storePIDs = []int{pid}
	}
	h.set = settingsFor(quick)
	h.set.Runs = runs
	if quick {
		h.set.Runs = 1
	}
	h.set.Scenarios = defaultScenarios(quick)
	if scen != "" {
		h.set.Scenarios = strings.Split(scen, ",")
		for _, s := range h.set.Scenarios {
			if !slices.Contains(allScenarios, s) && !slices.Contains(distScenarios, s) {
				return fmt.Errorf("unknown scenario %q; use %s", s, strings.Join(slices.Concat(allScenarios, distScenarios), ","))
			}
		}
	}
	h.set.Baseline = baseline
	if tools != "" {
		h.set.Tools = strings.Split(tools, ",")
		for _, t := range h.set.Tools {
			if !slices.Contains(toolOrder, t) {
				return fmt.Errorf("unknown tool %q; use %s", t, strings.Join(toolOrder, ","))
			}
		}
	}
	h.set.Far = h.farSettings()
	// The spawner starts while this process is still small: see cmd/spawn.
	var err error
	if h.spawner, err = newSpawner(filepath.Join(h.bin, "spawn")); err != nil {
		return err
	}
	defer h.spawner.close()
	h.home = filepath.Join(h.work, "home")
	if err := os.MkdirAll(filepath.Join(h.home, ".cache"), 0o755); err != nil {
		return err
	}
	_ = os.WriteFile(filepath.Join(h.work, "rclone.conf"), nil, 0o600)
	_ = os.WriteFile(filepath.Join(h.work, "no-credentials"), nil, 0o600)
	u, err := url.Parse(h.endpoint)
	if err != nil {
		return err
	}
	h.mc, err = minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(h.access, h.secret, ""), Region: "us-east-1"})
	if err != nil {
		return err
	}
	ctx := context.Background()
	res := &Results{Started: time.Now().UTC(), Command: command, Settings: h.set}
	res.Machine = machineInfo()
	res.Versions = h.versions(minioBin)
	if err := h.setup(ctx, profile != ""); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if h.proxy != nil {
		defer h.proxy.close()
	}
	defer h.far.close()
	if profile != "" {
		return h.profile(ctx, profile)
	}
	steps := h.plan()
	start := time.Now()
	failed := 0
	warmed := map[string]bool{}
	for i, st := range steps {
		group := fmt.Sprintf("run %d %s", st.run, st.scenario)
		if !h.set.Quick && !warmed[group] && !slices.Contains(noWarmUp, st.scenario) {
			// Unmeasured: the first transfer after another scenario pays for reclaiming the
			// page cache that scenario filled (several times the cost of the next ones, on
			// this VM), and would charge it to whichever tool comes first.
			warmed[group] = true
			settle()
			w := h.runStep(ctx, st)
			fmt.Fprintf(os.Stderr, "bench: %s: warm-up with %s, %.2fs, not counted\n", group, st.tool, w.Wall)
		}
		if !h.set.Quick {
			settle()
		}
		s := h.runStep(ctx, st)
		res.Samples = append(res.Samples, s)
		if !s.OK && !s.NA {
			failed++
		}
		progress(i+1, len(steps), start, s)
		if out != "" && (i%10 == 9 || i == len(steps)-1) {
			if err := writeJSON(out, res); err != nil {
				return err
			}
		}
	}
	if out != "" {
		if err := writeJSON(out, res); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %d steps in %s, %d failed\n", len(steps), time.Since(start).Round(time.Second), failed)
	if failed > 0 {
		return fmt.Errorf("%d transfers failed or did not verify (see the lines marked FAIL)", failed)
	}
	return nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// setup makes the buckets, files and source objects the selected scenarios need.
func (h *harness) setup(ctx context.Context, profiling bool) error {
	for _, b := range []string{srcBucket, dstBucket} {
		if ok, err := h.mc.BucketExists(ctx, b); err != nil {
			return err
		} else if !ok {
			if err := h.mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
				return err
			}
		}
	}
	has := func(s ...string) bool {
		if profiling {
			return slices.ContainsFunc(s, func(x string) bool { return x == "upload" || x == "download" })
		}
		return slices.ContainsFunc(s, func(x string) bool { return slices.Contains(h.set.Scenarios, x) })
	}
	say := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: setup: "+f+"\n", a...) }
	if has(distScenarios...) {
		if err := h.setupDist(ctx); err != nil {
			return err
		}
	}
	h.bigFile = h.dataFile(h.set.UploadSize)
	if has("upload", "download", "copy-1g", "memory") || (has("resume") && h.set.ResumeSize == h.set.UploadSize) {
		say("writing %s (%s)", filepath.Base(h.bigFile), human(h.set.UploadSize))
		if err := writeFile(h.bigFile, gen{seed: uint64(h.set.UploadSize), size: h.set.UploadSize}); err != nil {
			return err
		}
	}
	if has("download", "copy-1g") {
		say("uploading %s/%s", srcBucket, bigKey)
		if _, err := h.mc.FPutObject(ctx, srcBucket, bigKey, h.bigFile, minio.PutObjectOptions{PartSize: uint64(64 * mib)}); err != nil {
			return err
		}
	}
	if has("copy-6g") {
		st, err := h.mc.StatObject(ctx, srcBucket, hugeKey, minio.StatObjectOptions{})
		if err != nil || st.Size != h.set.HugeSize {
			say("uploading %s/%s (%s, generated)", srcBucket, hugeKey, human(h.set.HugeSize))
			g := gen{seed: uint64(h.set.HugeSize), size: h.set.HugeSize}
			if _, err := h.mc.PutObject(ctx, srcBucket, hugeKey, io.NewSectionReader(g, 0, g.size), g.size,
				minio.PutObjectOptions{PartSize: uint64(128 * mib), NumThreads: 4}); err != nil {
				return err
			}
		}
	}
	if has("ratelimit") {
		h.rateFile = h.dataFile(h.set.RateSize)
		if err := writeFile(h.rateFile, gen{seed: uint64(h.set.RateSize), size: h.set.RateSize}); err != nil {
			return err
		}
	}
	if has("resume") {
		h.resumeFile = h.dataFile(h.set.ResumeSize)
		if err := writeFile(h.resumeFile, gen{seed: uint64(h.set.ResumeSize), size: h.set.ResumeSize}); err != nil {
			return err
		}
	}
	if has("stream") {
		h.streamFile = h.dataFile(h.set.StreamSize)
		say("writing %s (%s)", filepath.Base(h.streamFile), human(h.set.StreamSize))
		if err := writeFile(h.streamFile, gen{seed: uint64(h.set.StreamSize), size: h.set.StreamSize}); err != nil {
			return err
		}
	}
	if has("files") {
		say("writing %d files of %s", h.set.Files, human(h.set.FileSize))
		var err error
		if h.dirSums, err = writeDir(filepath.Join(h.work, "files"), h.set.Files, h.set.FileSize, 1<<40); err != nil {
			return err
		}
	}
	if has(scCpR30k, scCpR100k) {
		if err := h.setupMany(ctx); err != nil {
			return err
		}
	}
	if has(farScenarios...) {
		if err := h.setupFar(ctx); err != nil {
			return err
		}
	}
	if has("ratelimit", "resume") {
		u, _ := url.Parse(h.endpoint)
		p, err := newProxy(u.Host)
		if err != nil {
			return err
		}
		h.proxy = p
	}
	return nil
}

// waitForSpace waits (up to a minute) after a large object was deleted until the work
// dir's filesystem, which MinIO's data dir usually shares, has that space back: MinIO
// purges deleted data in the background, and back-to-back 6 GiB copies would otherwise
// fill the disk. before is the free space measured before the delete.
func (h *harness) waitForSpace(before, size int64) {
	if before == 0 || size < 4*gib {
		return
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if freeBytes(h.work) >= before+size*3/4 {
			return
		}
	}
}

func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * st.Bsize
}

func (h *harness) dataFile(size int64) string {
	return filepath.Join(h.work, fmt.Sprintf("data-%d.bin", size))
}

// step is one planned transfer.
type step struct {
	run         int
	scenario    string
	tool        string
	variant     string
	partSize    int64
	concurrency int
}

// The stream scenario's variants: the same file uploaded by path, and on stdin (cp -, aws
// s3 cp -, rclone rcat), at the tools' defaults; s3xfer on stdin also told the stream may be
// 1 TiB (--expected-size), which sizes its parts for that.
const (
	streamFromFile  = "file"
	streamStdin     = "stdin"
	streamExpected  = "stdin, --expected-size 1TiB"
	streamExpectArg = "1TiB"
)

// noSyncVariant is s3xfer's download with the matched settings and --no-fsync: the file
// left in the page cache when the tool returns, as every peer leaves it.
const noSyncVariant = "matched, no fsync"

// oldDefault is the fixed concurrency s3xfer had before it tuned its own: next to the
// store its defaults must do no worse.
const oldDefault = 8

// fixedDefault is s3xfer at its defaults but for a fixed --concurrency of oldDefault.
func fixedDefault(tool string) step {
	return step{tool: tool, variant: sweepVariant(oldDefault), concurrency: oldDefault}
}

// entries are the tool variants of a scenario: each tool with the matched settings and
// at its own defaults, where it has the operation and the setting makes a difference.
func (h *harness) entries(scenario string) []step {
	m := func(tool string) step {
		return step{tool: tool, variant: "matched", partSize: h.set.PartSize, concurrency: h.set.Concurrency}
	}
	d := func(tool string) step { return step{tool: tool, variant: "default"} }
	// s3xfer's defaults, in the upload and download scenarios followed by the fixed 8 a
	// target compares them with: neighbours share the machine's swings.
	dFixed := func(tool string) []step {
		if tool != s3xferLib && tool != s3xferCLI {
			return []step{d(tool)}
		}
		return []step{d(tool), fixedDefault(tool)}
	}
	var e []step
	// The baseline CLI (--baseline), next to s3xfer-cli in the scenarios it is compared in.
	cli := []string{s3xferCLI}
	if h.set.Baseline != "" && (scenario == "upload" || scenario == "download" || scenario == "copy-1g") {
		cli = append(cli, baselineTool(h.set.Baseline))
	}
	switch scenario {
	case "upload":
		// The ceiling runs between s3xfer's matched steps, which the targets compare with it:
		// neighbours share the machine's swings (the store's CPU per GiB moves severalfold for
		// minutes at a time on a shared VM), steps a minute apart do not.
		e = append(e, m(s3xferLib), m(ceilingT))
		for _, t := range cli {
			e = append(e, m(t))
		}
		for _, t := range slices.Concat([]string{s3xferLib}, cli) {
			e = append(e, dFixed(t)...)
		}
		for _, t := range []string{minioGo, awsSDK, awsCLI, rclone} {
			e = append(e, m(t), d(t))
		}
	case "download":
		for _, t := range slices.Concat([]string{s3xferLib}, cli, []string{awsSDK, awsCLI, rclone}) {
			e = append(e, m(t))
			e = append(e, dFixed(t)...)
		}
		e = append(e, d(minioGo)) // FGetObject: one GET, nothing to set
		// s3xfer again, as durable as the peers: no fsync.
		for _, t := range slices.Concat([]string{s3xferLib}, cli) {
			s := m(t)
			s.variant = noSyncVariant
			e = append(e, s)
		}
	case "copy-1g", "copy-6g":
		for _, t := range slices.Concat([]string{s3xferLib}, cli, []string{awsCLI, rclone}) {
			e = append(e, m(t), d(t))
		}
		e = append(e, d(minioGo)) // ComposeObject: its own piece size
	case "files":
		for _, t := range []string{s3xferLib, s3xferCLI, minioGo, awsSDK, awsCLI, rclone} {
			s := m(t)
			s.partSize = 0
			e = append(e, s, d(t))
		}
	case "ratelimit":
		for _, t := range []string{s3xferLib, s3xferCLI, awsCLI, rclone} {
			e = append(e, m(t))
		}
	case "resume":
		for _, t := range []string{s3xferLib, s3xferCLI, awsCLI, rclone} {
			e = append(e, step{tool: t, variant: "matched", partSize: h.set.ResumePartSize, concurrency: h.set.ResumeConc})
		}
	case "stream":
		e = append(e, step{tool: s3xferCLI, variant: streamFromFile}, step{tool: s3xferCLI, variant: streamStdin},
			step{tool: s3xferCLI, variant: streamExpected}, step{tool: awsCLI, variant: streamStdin},
			step{tool: rclone, variant: streamStdin})
	case scManySynthetic, scCpR30k, scCpR100k, scSync100k:
		e = h.manyEntries(scenario)
	case scFarUpload, scFarDownload, scFarFiles:
		e = h.farEntries(scenario)
	case scDistCopy, scDistShards:
		e = h.distEntries(scenario)
	case "memory":
		for _, ps := range h.set.MemoryPartSizes {
			for _, t := range []string{s3xferLib, s3xferCLI, minioGo, awsSDK, awsCLI, rclone} {
				e = append(e, step{tool: t, variant: fmt.Sprintf("%dMiB", ps>>20), partSize: ps, concurrency: h.set.MemoryConc})
			}
		}
	}
	return e
}

// plan interleaves: every run goes through every scenario and every tool in turn, so
// drift in the machine's state hits all tools alike (A B A B), and every other run takes
// the tools in reverse order (A B, B A), so no tool always runs first or after the same one.
func (h *harness) plan() []step {
	var steps []step
	for r := 1; r <= h.set.Runs; r++ {
		for _, sc := range h.set.Scenarios {
			entries := h.entries(sc)
			if r%2 == 0 {
				slices.Reverse(entries)
			}
			for _, e := range entries {
				if len(h.set.Tools) > 0 && !slices.Contains(h.set.Tools, e.tool) && !isBaseline(e.tool) {
					continue
				}
				e.run, e.scenario = r, sc
				steps = append(steps, e)
			}
		}
	}
	return steps
}

// measured is what the kernel says about one finished client process.
type measured struct {
	wall, user, sys float64
	maxRSS          int64
	stdout, stderr  string
	err             error
}

// runMeasured runs cmd to the end (or timeout) through the spawner and reads its rusage.
// stdin, if not "", is a file the process gets as its standard input (a redirect: the
// producer costs nothing). watch, if set, runs while the process does and may kill it by pid.
func (h *harness) runMeasured(cmd *exec.Cmd, stdin string, timeout time.Duration, watch func(pid int, done <-chan struct{})) measured {
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	pid, err := h.spawner.start(append([]string{cmd.Path}, cmd.Args[1:]...), env, stdin)
	if err != nil {
		return measured{err: err}
	}
	done := make(chan struct{})
	timer := time.AfterFunc(timeout, func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if watch != nil {
		go watch(pid, done)
	}
	e, err := h.spawner.wait()
	close(done)
	timer.Stop()
	if err != nil {
		return measured{err: err}
	}
	m := measured{wall: e.Wall, user: e.User, sys: e.Sys, maxRSS: e.MaxRSS, stdout: e.Stdout, stderr: e.Stderr}
	if e.Err != "" {
		m.err = errors.New(e.Err)
		if time.Duration(e.Wall*float64(time.Second)) >= timeout {
			m.err = fmt.Errorf("timed out after %s", timeout)
		}
	}
	return m
}

func (h *harness) timeout() time.Duration {
	if h.set.Quick {
		return 2 * time.Minute
	}
	return 20 * time.Minute
}

// runStep runs, verifies and cleans up one transfer.
func (h *harness) runStep(ctx context.Context, st step) Sample {
	s := Sample{Run: st.run, Scenario: st.scenario, Tool: st.tool, Variant: st.variant,
		PartSize: st.partSize, Concurrency: st.concurrency}
	name := fmt.Sprintf("%s-%s-r%d", st.tool, st.variant, st.run)
	j := job{endpoint: h.endpoint, partSize: st.partSize, concurrency: st.concurrency, noSync: st.variant == noSyncVariant}
	var verify func() error
	var cleanup func()
	switch st.scenario {
	case "upload", "memory":
		j.op, j.bucket, j.key, j.file = "upload", dstBucket, st.scenario+"/"+name, h.bigFile
		s.Bytes = h.set.UploadSize
		if st.tool == ceilingT {
			j.file, j.size = "", h.set.UploadSize
			verify = func() error { return h.verifySize(ctx, dstBucket, j.key, j.size) }
		} else {
			verify = func() error {
				return verifyObject(ctx, h.mc, dstBucket, j.key, h.openData(h.bigFile), h.set.UploadSize, false)
			}
		}
		cleanup = func() { _ = h.mc.RemoveObject(ctx, dstBucket, j.key, minio.RemoveObjectOptions{}) }
	case "download":
		j.op, j.bucket, j.key = "download", srcBucket, bigKey
		j.file = filepath.Join(h.work, "download-"+name+".bin")
		s.Bytes = h.set.UploadSize
		verify = func() error { return verifyFile(j.file, h.openData(h.bigFile), h.set.UploadSize) }
		cleanup = func() { _ = os.Remove(j.file) }
	case "copy-1g", "copy-6g":
		j.op, j.bucket, j.key, j.srcBucket = "copy", dstBucket, st.scenario+"/"+name, srcBucket
		if st.scenario == "copy-1g" {
			j.srcKey, s.Bytes = bigKey, h.set.CopySize
			verify = func() error {
				return verifyObject(ctx, h.mc, dstBucket, j.key, h.openData(h.bigFile), s.Bytes, false)
			}
		} else {
			j.srcKey, s.Bytes = hugeKey, h.set.HugeSize
			verify = func() error {
				return verifyObject(ctx, h.mc, dstBucket, j.key, gen{seed: uint64(s.Bytes), size: s.Bytes}, s.Bytes, !h.set.Quick)
			}
		}
		cleanup = func() {
			free := freeBytes(h.work)
			removePrefix(ctx, h.mc, dstBucket, j.key)
			h.waitForSpace(free, s.Bytes)
		}
	case "files":
		j.op, j.bucket, j.dir, j.prefix = "dir", dstBucket, filepath.Join(h.work, "files"), "files/"+name+"/"
		s.Bytes = int64(h.set.Files) * h.set.FileSize
		verify = func() error { return verifyPrefix(ctx, h.mc, dstBucket, j.prefix, h.dirSums, h.set.FileSize) }
		cleanup = func() { removePrefix(ctx, h.mc, dstBucket, j.prefix) }
	case "stream":
		j.op, j.bucket, j.key, j.file = "upload", dstBucket, "stream/"+keySafe(name), h.streamFile
		if st.variant != streamFromFile {
			j.file, j.stdin = "", h.streamFile
		}
		if st.variant == streamExpected {
			j.expectedSize = streamExpectArg
		}
		s.Bytes = h.set.StreamSize
		verify = func() error {
			return verifyObject(ctx, h.mc, dstBucket, j.key, h.openData(h.streamFile), h.set.StreamSize, false)
		}
		cleanup = func() { removePrefix(ctx, h.mc, dstBucket, j.key) }
	case "ratelimit":
		return h.rateStep(ctx, s, j, name)
	case "resume":
		return h.resumeStep(ctx, s, j, name)
	case scManySynthetic, scCpR30k, scCpR100k, scSync100k:
		return h.manyStep(ctx, s, st, name)
	case scFarUpload, scFarDownload, scFarFiles:
		return h.farStep(ctx, s, st, name)
	case scDistCopy, scDistShards:
		return h.distStep(ctx, s, st, name)
	}
	cmd, err := h.command(st.tool, j)
	if err != nil {
		return na(s, err)
	}
	var m measured
	s.Extra = onStore(h.storePIDs, func() { m = h.runMeasured(cmd, j.stdin, h.timeout(), nil) })
	defer cleanup()
	return h.finish(s, m, verify)
}

// keySafe turns a step's name into an object key's last element: no spaces, commas or dashes in a row.
func keySafe(name string) string {
	return strings.NewReplacer(" ", "", ",", "", "--", "-").Replace(name)
}

// noWarmUp are the scenarios whose first step is not repeated unmeasured: long ones, and
// those paced by a bandwidth limit.
var noWarmUp = []string{"copy-6g", scDistCopy, "ratelimit", "resume", scManySynthetic, scCpR30k, scCpR100k}

// settle waits until the disk is idle, for 10 s at most: the writeback of the previous
// step's data and the store's deletes of its objects must not slow the next tool, which
// would favour whichever tool runs first.
func settle() {
	syscall.Sync()
	prev := sectorsWritten()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		cur := sectorsWritten()
		if cur == prev {
			return
		}
		prev = cur
	}
}

// sectorsWritten sums the sectors written to every block device (/proc/diskstats), or
// is -1 where that cannot be read.
func sectorsWritten() int64 {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return -1
	}
	var sum int64
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 9 {
			n, _ := strconv.ParseInt(f[9], 10, 64) // field 10: sectors written
			sum += n
		}
	}
	return sum
}

// notAvailable says whether a driver or CLI refused the operation as one it does not have
// yet (the s3xfer drivers while the library grows), rather than failing at it.
func notAvailable(m measured) bool {
	if m.err == nil {
		return false
	}
	for _, s := range []string{"not available in the library yet", "not supported yet", "flag provided but not defined"} {
		if strings.Contains(m.stderr, s) {
			return true
		}
	}
	return false
}

func na(s Sample, err error) Sample {
	s.NA = errors.Is(err, errNA)
	s.Err = err.Error()
	return s
}

// finish fills s from the measurement and the verification.
func (h *harness) finish(s Sample, m measured, verify func() error) Sample {
	if notAvailable(m) {
		return na(s, errNA)
	}
	s.Wall, s.User, s.Sys, s.MaxRSSKiB = m.wall, m.user, m.sys, m.maxRSS
	if m.err != nil {
		s.Err = fmt.Sprintf("%v: %s", m.err, lastLine(m.stderr))
		return s
	}
	if err := verify(); err != nil {
		s.Err = "verify: " + err.Error()
		return s
	}
	s.OK = true
	s.Checksum = reportedChecksum(m.stdout)
	return s
}

// reportedChecksum is the "checksum" of the last JSON line of a client's output that has
// one: the s3xfer CLI's --json result or the s3xfer library driver's report.
func reportedChecksum(stdout string) string {
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var v struct {
			Checksum *string `json:"checksum"`
		}
		if json.Unmarshal([]byte(lines[i]), &v) == nil && v.Checksum != nil {
			return *v.Checksum
		}
	}
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

func (h *harness) openData(path string) io.ReaderAt {
	f, err := os.Open(path)
	if err != nil {
		return errReaderAt{err}
	}
	return f // closed when the harness exits; a handful per run
}

type errReaderAt struct{ err error }

func (e errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, e.err }

func (h *harness) verifySize(ctx context.Context, bucket, key string, size int64) error {
	st, err := h.mc.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return err
	}
	if st.Size != size {
		return fmt.Errorf("%s/%s has %d bytes, want %d", bucket, key, st.Size, size)
	}
	return nil
}

// rateStep uploads through the counting proxy with the bandwidth limit and records the
// achieved average and the slowest and fastest 1-second windows, while the body flows:
// the round trips before the first part and after the last carry no data to limit.
func (h *harness) rateStep(ctx context.Context, s Sample, j job, name string) Sample {
	j.op, j.bucket, j.key, j.file = "upload", dstBucket, "ratelimit/"+name, h.rateFile
	j.endpoint, j.limit = h.proxy.URL(), h.set.RateLimit
	s.Bytes = h.set.RateSize
	cmd, err := h.command(s.Tool, j)
	if err != nil {
		return na(s, err)
	}
	defer removePrefix(ctx, h.mc, dstBucket, j.key)
	h.proxy.reset()
	const lead = 64 << 10 // past the first requests' headers: the body is flowing
	h.proxy.setMarks(lead, s.Bytes)
	stop := make(chan struct{})
	samples := h.proxy.sampler(10*time.Millisecond, stop)
	m := h.runMeasured(cmd, "", h.timeout(), nil)
	close(stop)
	from, to := h.proxy.marked()
	r := windowRates(<-samples, from, to, s.Bytes-lead)
	target := float64(h.set.RateLimit)
	s.Extra = map[string]float64{
		"target": target, "average": r.Average, "min_1s": r.Min1s, "max_1s": r.Max1s,
		"average_err_pct":  100 * (r.Average - target) / target,
		"worst_1s_err_pct": 100 * max(r.Max1s-target, target-r.Min1s) / target,
	}
	return h.finish(s, m, func() error {
		return verifyObject(ctx, h.mc, dstBucket, j.key, h.openData(h.rateFile), s.Bytes, false)
	})
}

// resumeStep uploads through the counting proxy, SIGKILLs the client once half the
// file has gone out, runs the same command again, and records how many bytes were sent
// beyond the file's size in all.
func (h *harness) resumeStep(ctx context.Context, s Sample, j job, name string) Sample {
	j.op, j.bucket, j.key, j.file = "upload", dstBucket, "resume/"+name, h.resumeFile
	j.endpoint = h.proxy.URL()
	j.journalDir = filepath.Join(h.work, "journal-"+name)
	s.Bytes = h.set.ResumeSize
	defer removePrefix(ctx, h.mc, dstBucket, j.key)
	defer os.RemoveAll(j.journalDir)
	cmd, err := h.command(s.Tool, j)
	if err != nil {
		return na(s, err)
	}
	half := s.Bytes / 2
	h.proxy.reset()
	var killedAt atomic.Int64
	killedAt.Store(-1)
	first := h.runMeasured(cmd, "", h.timeout(), func(pid int, done <-chan struct{}) {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if n := h.proxy.sent.Load(); n >= half {
					killedAt.Store(n)
					_ = syscall.Kill(pid, syscall.SIGKILL)
					return
				}
			}
		}
	})
	if killedAt.Load() < 0 {
		s.Err = fmt.Sprintf("the first run was not killed (sent %d bytes): %v %s", h.proxy.sent.Load(), first.err, lastLine(first.stderr))
		return s
	}
	time.Sleep(200 * time.Millisecond) // let the proxy drain what the kernel had buffered
	sent1 := h.proxy.sent.Load()
	h.proxy.reset()
	cmd, _ = h.command(s.Tool, j)
	m := h.runMeasured(cmd, "", h.timeout(), nil)
	sent2 := h.proxy.sent.Load()
	s.Extra = map[string]float64{
		"sent_before_kill": float64(sent1), "sent_after": float64(sent2),
		"resent":     float64(sent1 + sent2 - s.Bytes),
		"resent_pct": 100 * float64(sent1+sent2-s.Bytes) / float64(s.Bytes),
	}
	return h.finish(s, m, func() error {
		return verifyObject(ctx, h.mc, dstBucket, j.key, h.openData(h.resumeFile), s.Bytes, false)
	})
}

// profile runs s3xfer-lib upload and download with the matched settings under pprof.
func (h *harness) profile(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, op := range []string{"upload", "download"} {
		j := job{op: op, endpoint: h.endpoint, bucket: dstBucket, key: "profile/upload", file: h.bigFile,
			partSize: h.set.PartSize, concurrency: h.set.Concurrency,
			cpuProfile: filepath.Join(dir, op+".cpu.pprof"), memProfile: filepath.Join(dir, op+".allocs.pprof")}
		if op == "download" {
			j.bucket, j.key, j.file = srcBucket, bigKey, filepath.Join(h.work, "profile-download.bin")
		}
		cmd, err := h.command(s3xferLib, j)
		if err != nil {
			return err
		}
		m := h.runMeasured(cmd, "", h.timeout(), nil)
		if m.err != nil {
			return fmt.Errorf("%s: %v: %s", op, m.err, lastLine(m.stderr))
		}
		fmt.Fprintf(os.Stderr, "bench: profile %s: %.2f s wall, %.2f s user, %.2f s sys, %d MiB RSS -> %s\n",
			op, m.wall, m.user, m.sys, m.maxRSS>>10, j.cpuProfile)
	}
	_ = os.Remove(filepath.Join(h.work, "profile-download.bin"))
	removePrefix(ctx, h.mc, dstBucket, "profile/")
	return nil
}

// progress prints one line per finished step.
func progress(i, n int, start time.Time, s Sample) {
	el := time.Since(start)
	eta := time.Duration(float64(el) / float64(i) * float64(n-i))
	status := "ok"
	detail := ""
	switch {
	case s.NA:
		status = "n/a"
	case !s.OK:
		status = "FAIL " + s.Err
	}
	if s.Wall > 0 {
		detail = fmt.Sprintf("%7.2fs %8.1f MiB/s cpu %6.2fs rss %5d MiB", s.Wall, float64(s.Bytes)/float64(mib)/s.Wall,
			s.User+s.Sys, s.MaxRSSKiB>>10)
	}
	if v, ok := s.Extra["average"]; ok {
		detail += fmt.Sprintf(" avg %.1f MiB/s 1s-windows %.1f..%.1f", v/float64(mib), s.Extra["min_1s"]/float64(mib), s.Extra["max_1s"]/float64(mib))
	}
	if v, ok := s.Extra["resent"]; ok {
		detail += fmt.Sprintf(" re-sent %.1f MiB", v/float64(mib))
	}
	fmt.Fprintf(os.Stderr, "[%3d/%d %s, ~%s left] run %d %-9s %-18s %-8s %s %s\n", i, n, el.Round(time.Second),
		eta.Round(time.Second), s.Run, s.Scenario, s.Tool, s.Variant, detail, status)
}

func human(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= mib:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= kib:
		return fmt.Sprintf("%d KiB", n/kib)
	}
	return fmt.Sprintf("%d B", n)
}
