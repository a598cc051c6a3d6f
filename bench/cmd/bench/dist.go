package main

// The distributed MinIO (issue 16): four MinIO processes on 127.0.0.1, two drives each, one
// erasure set of eight drives (scripts/servers.sh start_minio_dist; bench/run.sh starts it
// when a dist-* scenario is selected, and the harness reads its URLs and keys from the
// S3XFER_TEST_MINIODIST_* variables start_minio_dist exports).
//
//   - dist-copy-6g: copy-6g's tools and variants against the cluster's first node: s3xfer's
//     parallel UploadPartCopy against minio-go's ComposeObject and the other peers.
//   - dist-shards: a directory the size of the files scenario's uploaded by s3xfer cp -r
//     --shard K/N as 1, 2 and 4 processes started at once, shard K talking to node K mod 4: the wall time
//     of the whole, and what each shard costs (CPU, RSS, the slowest shard against 1/N of
//     the single process's time).
//
// Neither runs unless selected with --scenarios: together they need ~25 GiB of disk and
// a cluster that takes ~10 s to start.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	scDistCopy   = "dist-copy-6g"
	scDistShards = "dist-shards"
)

// distScenarios may be selected with --scenarios; they are not in the default set.
var distScenarios = []string{scDistCopy, scDistShards}

// distShardCounts are the numbers of shard processes dist-shards runs the job as.
var distShardCounts = []int{1, 2, 4}

// distCopyTarget is issue 16's target: s3xfer's copy at most this fraction of ComposeObject's time.
const distCopyTarget = 0.5

// distCluster is the distributed MinIO as the harness sees it.
type distCluster struct {
	endpoints []string
	pids      []int // the MinIO processes (S3XFER_TEST_MINIODIST_PIDS), for the store's CPU time
	// h is a harness whose endpoint, keys and client are the cluster's (its first node):
	// the copy-6g steps run on it unchanged.
	h       *harness
	dir     string            // dist-shards' source directory
	dirSums map[string]string // its files' MD5s
}

func init() {
	maps.Copy(titles, map[string]string{
		scDistCopy:   "Server-side copy on the distributed MinIO (4 nodes × 2 drives, one endpoint)",
		scDistShards: "Directory upload as N shard processes at once on the distributed MinIO (`s3xfer cp -r --shard K/N`, shard K on node K mod 4)",
	})
}

// setupDist connects to the cluster and puts what the selected dist scenarios need.
func (h *harness) setupDist(ctx context.Context) error {
	eps := strings.Split(os.Getenv("S3XFER_TEST_MINIODIST_ENDPOINTS"), ",")
	access, secret := os.Getenv("S3XFER_TEST_MINIODIST_ACCESS_KEY"), os.Getenv("S3XFER_TEST_MINIODIST_SECRET_KEY")
	if eps[0] == "" || access == "" || secret == "" {
		return errors.New("the dist-* scenarios need a distributed MinIO in S3XFER_TEST_MINIODIST_ENDPOINTS, _ACCESS_KEY and _SECRET_KEY: bench/run.sh starts one (scripts/servers.sh start_minio_dist)")
	}
	u, err := url.Parse(eps[0])
	if err != nil {
		return fmt.Errorf("S3XFER_TEST_MINIODIST_ENDPOINTS: %w", err)
	}
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Region: "us-east-1"})
	if err != nil {
		return err
	}
	d := &distCluster{endpoints: eps, h: &harness{endpoint: eps[0], access: access, secret: secret, mc: mc,
		bin: h.bin, work: h.work, home: h.home, aws: h.aws, set: h.set, spawner: h.spawner}}
	h.dist = d
	for _, p := range strings.Split(os.Getenv("S3XFER_TEST_MINIODIST_PIDS"), ",") {
		if pid, err := strconv.Atoi(p); err == nil {
			d.pids = append(d.pids, pid)
		}
	}
	for _, b := range []string{srcBucket, dstBucket} {
		if ok, err := mc.BucketExists(ctx, b); err != nil {
			return err
		} else if !ok {
			if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
				return err
			}
		}
	}
	say := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: setup: dist: "+f+"\n", a...) }
	say("%d nodes: %s", len(eps), strings.Join(eps, ", "))
	if slices.Contains(h.set.Scenarios, scDistCopy) {
		size := h.set.HugeSize
		if st, err := mc.StatObject(ctx, srcBucket, hugeKey, minio.StatObjectOptions{}); err != nil || st.Size != size {
			say("uploading %s/%s (%s, generated)", srcBucket, hugeKey, human(size))
			g := gen{seed: uint64(size), size: size}
			if _, err := mc.PutObject(ctx, srcBucket, hugeKey, io.NewSectionReader(g, 0, size), size,
				minio.PutObjectOptions{PartSize: uint64(128 * mib), NumThreads: 4}); err != nil {
				return err
			}
		}
	}
	if slices.Contains(h.set.Scenarios, scDistShards) {
		d.dir = filepath.Join(h.work, "dist-files")
		say("writing %d files of %s", h.set.Files, human(h.set.FileSize))
		if d.dirSums, err = writeDir(d.dir, h.set.Files, h.set.FileSize, 1<<41); err != nil {
			return err
		}
	}
	return nil
}

// distEntries are the tool variants of the dist scenarios.
func (h *harness) distEntries(scenario string) []step {
	if scenario == scDistCopy {
		return h.entries("copy-6g")
	}
	var e []step
	for _, n := range distShardCounts {
		e = append(e, step{tool: s3xferCLI, variant: shardVariant(n)})
	}
	return e
}

func shardVariant(n int) string {
	if n == 1 {
		return "1 shard"
	}
	return fmt.Sprintf("%d shards", n)
}

// shardsOf reads the shard count back from a dist-shards variant.
func shardsOf(variant string) int {
	var n int
	if _, err := fmt.Sscanf(variant, "%d shard", &n); err != nil {
		return 0
	}
	return n
}

// distStep runs one step of a dist scenario.
func (h *harness) distStep(ctx context.Context, s Sample, st step, name string) Sample {
	if h.dist == nil {
		return na(s, errors.New("no distributed MinIO"))
	}
	d := h.dist
	cpu := onStore(d.pids, func() {
		if st.scenario == scDistCopy {
			st.scenario = "copy-6g"
			s = d.h.runStep(ctx, st)
			s.Scenario = scDistCopy
		} else {
			s = d.shardStep(ctx, s, shardsOf(st.variant), name)
		}
	})
	if cpu != nil {
		if s.Extra == nil {
			s.Extra = map[string]float64{}
		}
		maps.Copy(s.Extra, cpu)
	}
	return s
}

// onStore runs f and returns, as a sample's Extra, the CPU time the store's processes pids
// spent meanwhile: nil where that cannot be read.
func onStore(pids []int, f func()) map[string]float64 {
	before := storeCPU(pids)
	f()
	if after := storeCPU(pids); before >= 0 && after >= 0 {
		return map[string]float64{"store_cpu_s": after - before}
	}
	return nil
}

// storeCPU is the CPU time (user + sys, seconds) the processes pids have used so far, from
// /proc; -1 if one cannot be read. Over a step it is what the store spent on it (with the
// step's check and delete, which are small next to a copy's or upload's).
func storeCPU(pids []int) float64 {
	if len(pids) == 0 {
		return -1
	}
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return -1
		}
		// utime and stime are fields 14 and 15; the command name (field 2) may hold spaces.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			return -1
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return float64(ticks) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux architecture Go supports.
const clockTicks = 100

// shardStep uploads the directory as n shard processes started at once, shard k through
// node k mod 4, and checks that together they put every file exactly once.
func (d *distCluster) shardStep(ctx context.Context, s Sample, n int, name string) Sample {
	h := d.h
	prefix := "dist-shards/" + keySafe(name) + "/"
	s.Bytes = int64(h.set.Files) * h.set.FileSize
	defer removePrefix(ctx, h.mc, dstBucket, prefix)
	if n < 1 {
		s.Err = "no shard count in the variant"
		return s
	}
	cmds := make([]*exec.Cmd, n)
	for k := range n {
		j := job{op: "dir", endpoint: d.endpoints[k%len(d.endpoints)], bucket: dstBucket, dir: d.dir, prefix: prefix}
		cmd, err := h.command(s3xferCLI, j)
		if err != nil {
			return na(s, err)
		}
		cmd.Args = append(cmd.Args, "--shard", fmt.Sprintf("%d/%d", k, n), "--json")
		cmds[k] = cmd
	}
	ends, wall, err := runTogether(filepath.Join(h.bin, "spawn"), cmds, h.timeout())
	if err != nil {
		s.Err = err.Error()
		return s
	}
	agg := aggregateShards(ends, wall)
	s.Wall, s.User, s.Sys, s.MaxRSSKiB = agg.wall, agg.user, agg.sys, agg.maxRSS
	s.Extra = map[string]float64{"shards": float64(n), "slowest_s": agg.slowest, "fastest_s": agg.fastest,
		"files_per_s": float64(h.set.Files) / wall}
	for k, e := range ends {
		if e.Err != "" {
			s.Err = fmt.Sprintf("shard %d/%d: %s: %s", k, n, e.Err, lastLine(e.Stderr))
			return s
		}
	}
	if err := checkShardResults(ends, h.set.Files); err != nil {
		s.Err = "verify: " + err.Error()
		return s
	}
	if err := verifyPrefix(ctx, h.mc, dstBucket, prefix, d.dirSums, h.set.FileSize); err != nil {
		s.Err = "verify: " + err.Error()
		return s
	}
	s.OK = true
	return s
}

// runTogether runs cmds at once, each through its own cmd/spawn (at path) so that each has
// its own rusage, and returns how each ended and the wall time from the first start to the
// last end. The spawners start before the clock does.
func runTogether(path string, cmds []*exec.Cmd, timeout time.Duration) ([]spawnEnded, float64, error) {
	sps := make([]*spawner, len(cmds))
	defer func() {
		for _, sp := range sps {
			if sp != nil {
				sp.close()
			}
		}
	}()
	for i := range cmds {
		sp, err := newSpawner(path)
		if err != nil {
			return nil, 0, err
		}
		sps[i] = sp
	}
	ends := make([]spawnEnded, len(cmds))
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	start := time.Now()
	for i, cmd := range cmds {
		pid, err := sps[i].start(cmd.Args, cmd.Env, "")
		if err != nil {
			errs[i] = err
			continue
		}
		timer := time.AfterFunc(timeout, func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		wg.Go(func() {
			defer timer.Stop()
			ends[i], errs[i] = sps[i].wait()
		})
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	return ends, wall, errors.Join(errs...)
}

// shardTotals is what N shard processes cost together.
type shardTotals struct {
	wall, user, sys  float64 // the whole's wall time; CPU summed over the processes
	maxRSS           int64   // the largest process's peak RSS, KiB
	slowest, fastest float64 // the processes' own wall times
}

func aggregateShards(ends []spawnEnded, wall float64) shardTotals {
	t := shardTotals{wall: wall, fastest: math.Inf(1)}
	for _, e := range ends {
		t.user += e.User
		t.sys += e.Sys
		t.maxRSS = max(t.maxRSS, e.MaxRSS)
		t.slowest = max(t.slowest, e.Wall)
		t.fastest = min(t.fastest, e.Wall)
	}
	if len(ends) == 0 {
		t.fastest = 0
	}
	return t
}

// checkShardResults reads each shard's --json result (its last line) and checks that the
// shards together did want files: the listing then shows whether each is there once.
func checkShardResults(ends []spawnEnded, want int) error {
	sum := 0
	for k, e := range ends {
		lines := strings.Split(strings.TrimSpace(e.Stdout), "\n")
		var r struct {
			Event  string `json:"event"`
			OK     bool   `json:"ok"`
			Done   int    `json:"done"`
			Failed int    `json:"failed"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil || r.Event != "result" {
			return fmt.Errorf("shard %d of %d printed no result: %q", k, len(ends), lastLine(e.Stdout))
		}
		if !r.OK || r.Failed != 0 {
			return fmt.Errorf("shard %d of %d: ok %v, %d failed", k, len(ends), r.OK, r.Failed)
		}
		sum += r.Done
	}
	if sum != want {
		return fmt.Errorf("the %d shards did %d files together, want %d", len(ends), sum, want)
	}
	return nil
}

func distSizeOf(res *Results, sc string) string {
	s := res.Settings
	if sc == scDistCopy {
		return human(s.HugeSize)
	}
	return fmt.Sprintf("%d × %s", s.Files, human(s.FileSize))
}

// renderDistShards writes the dist-shards table: ideal is the single process's wall time
// divided by N, in the same run.
func renderDistShards(b *strings.Builder, t *table, rows []*row) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	one := t.find(scDistShards, s3xferCLI, shardVariant(1))
	w("| shards | wall s (all) | MiB/s (all) | files/s (all) | speed-up over 1 shard | slowest shard s | fastest shard s | ideal s (1 shard ÷ N) | slowest ÷ ideal | CPU s (sum) | CPU s per shard | peak RSS MiB (largest process) | MinIO CPU s (4 processes) | ok |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		n := float64(shardsOf(r.variant))
		ideal := math.NaN()
		if one != nil {
			ideal = one.wall() / n
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f(n, 0), f(r.wall(), 2), f(r.mibps(), 1),
			f(r.extra("files_per_s"), 0), f(1/ratio(r, one, t.runs), 2), f(r.extra("slowest_s"), 2), f(r.extra("fastest_s"), 2),
			f(ideal, 2), f(r.extra("slowest_s")/ideal, 2), f(r.cpu(), 2), f(r.cpu()/n, 2), f(r.peakRSS(), 1), f(r.extra("store_cpu_s"), 1), status(r))
	}
}

// renderStoreCPU writes what the cluster's processes spent on each row's step.
func renderStoreCPU(b *strings.Builder, rows []*row) {
	b.WriteString("\nCPU of the four MinIO processes over each step (the copy, its check and its delete), median over runs:")
	for _, r := range rows {
		fmt.Fprintf(b, " %s %s %s s;", r.tool, r.variant, f(r.extra("store_cpu_s"), 1))
	}
	b.WriteString("\n")
}

// renderDistTargets adds issue 16's copy target to the targets table.
func renderDistTargets(b *strings.Builder, t *table) {
	if len(t.scenario(scDistCopy)) == 0 {
		return
	}
	mg := t.find(scDistCopy, minioGo, "default")
	met := func(v float64) string {
		switch {
		case math.IsNaN(v):
			return "–"
		case v <= distCopyTarget:
			return "yes"
		}
		return "**no**"
	}
	for _, v := range []string{"matched", "default"} {
		lib := ratio(t.find(scDistCopy, s3xferLib, v), mg, t.runs)
		cli := ratio(t.find(scDistCopy, s3xferCLI, v), mg, t.runs)
		fmt.Fprintf(b, "| Copy %s on the distributed MinIO wall ≤ %.1f × ComposeObject, s3xfer %s | %s | %s | %s / %s |\n",
			human(sizeOfRows(t.scenario(scDistCopy))), distCopyTarget, v, f(lib, 2), f(cli, 2), met(lib), met(cli))
	}
}

// sizeOfRows is the bytes of the first verified sample of rows.
func sizeOfRows(rows []*row) int64 {
	for _, r := range rows {
		if ok := r.ok(); len(ok) > 0 {
			return ok[0].Bytes
		}
	}
	return 0
}
