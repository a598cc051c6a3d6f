package main

// Far from the store (issue 15): the same transfers as upload, download and files, but to a
// MinIO over https behind farProxy, which adds a one-way delay in each direction and a
// throughput ceiling per connection, as a store tens of milliseconds away does. Every tool
// runs at its own defaults and at the matched settings, and s3xfer-cli also at a sweep of
// fixed --concurrency values, so the report can say how close its defaults (adaptive
// concurrency) come to the best fixed value. Each tool is given the store's CA: s3xfer
// --ca-bundle, aws --ca-bundle, rclone --ca-cert, the drivers --ca-bundle.

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The scenarios of this file, in allScenarios.
const (
	scFarUpload   = "far-upload"
	scFarDownload = "far-download"
	scFarFiles    = "far-files"
)

var farScenarios = []string{scFarUpload, scFarDownload, scFarFiles}

func isFar(scenario string) bool { return slices.Contains(farScenarios, scenario) }

// defaultScenarios are those a run without --scenarios runs: all of them, except that
// --quick leaves out the far ones (they would add minutes to CI's quick run, most of it
// the aws cli's startup and a second MinIO's; name them to run them small).
func defaultScenarios(quick bool) []string {
	if quick {
		return slices.DeleteFunc(slices.Clone(allScenarios), isFar)
	}
	return allScenarios
}

// FarSettings are the far path's, recorded with the results. The sizes are the near
// scenarios' (UploadSize; Files × FileSize).
type FarSettings struct {
	DelayMS  float64 `json:"delay_ms"`      // one way, each direction
	RateMBps float64 `json:"rate_mb_per_s"` // per connection and direction, 10^6 bytes/s; 0: none
	Sweep    []int   `json:"sweep"`         // s3xfer-cli's fixed --concurrency values
}

// farPath is the TLS MinIO and the proxy in front of it.
type farPath struct {
	endpoint       string // the TLS MinIO itself, for setup and verification
	caBundle       string // its CA's PEM file
	access, secret string
	delay          time.Duration
	rateMBps       float64
	mc             *minio.Client // direct, not through the proxy
	proxy          *farProxy
	pids           []int // the TLS MinIO's process (S3XFER_TEST_MINIO_TLS_PID), for its CPU time per step
}

// farFlags adds the far path's flags to the run command.
func (h *harness) farFlags(fs *flag.FlagSet) {
	fs.StringVar(&h.far.endpoint, "far-endpoint", os.Getenv("S3XFER_TEST_MINIO_TLS_ENDPOINT"), "https MinIO for the far-* scenarios (run.sh starts one)")
	fs.StringVar(&h.far.caBundle, "far-ca-bundle", os.Getenv("S3XFER_TEST_MINIO_TLS_CA_BUNDLE"), "PEM file of the far MinIO's CA")
	fs.DurationVar(&h.far.delay, "far-delay", 20*time.Millisecond, "far-*: one-way delay added in each direction")
	fs.Float64Var(&h.far.rateMBps, "far-rate", 85, "far-*: throughput ceiling per connection and direction, MB/s (10^6 bytes); 0: none")
	h.far.access = os.Getenv("S3XFER_TEST_MINIO_TLS_ACCESS_KEY")
	h.far.secret = os.Getenv("S3XFER_TEST_MINIO_TLS_SECRET_KEY")
}

// farSettings are the recorded settings, or nil if no far scenario runs.
func (h *harness) farSettings() *FarSettings {
	if !slices.ContainsFunc(h.set.Scenarios, isFar) {
		return nil
	}
	sweep := []int{4, 8, 16, 32, 64}
	if h.set.Quick {
		sweep = []int{4, 16}
	}
	return &FarSettings{DelayMS: float64(h.far.delay) / float64(time.Millisecond), RateMBps: h.far.rateMBps, Sweep: sweep}
}

// setupFar connects to the TLS MinIO, makes the buckets, the data the far scenarios
// read (the near scenarios' file and directory, if they did not make them) and the
// download's source object there, and starts the proxy.
func (h *harness) setupFar(ctx context.Context) error {
	f := &h.far
	if f.endpoint == "" || f.caBundle == "" || f.access == "" || f.secret == "" {
		return errors.New("far scenarios: need an https MinIO: S3XFER_TEST_MINIO_TLS_{ENDPOINT,ACCESS_KEY,SECRET_KEY,CA_BUNDLE} (scripts/servers.sh start_minio_tls; bench/run.sh starts one)")
	}
	u, err := url.Parse(f.endpoint)
	if err != nil || u.Scheme != "https" {
		return fmt.Errorf("far scenarios: --far-endpoint %q: want an https:// URL", f.endpoint)
	}
	if pid, err := strconv.Atoi(os.Getenv("S3XFER_TEST_MINIO_TLS_PID")); err == nil && f.endpoint == os.Getenv("S3XFER_TEST_MINIO_TLS_ENDPOINT") {
		f.pids = []int{pid}
	}
	pool, err := loadCAs(f.caBundle)
	if err != nil {
		return err
	}
	tr, err := minio.DefaultTransport(true)
	if err != nil {
		return err
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	f.mc, err = minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(f.access, f.secret, ""),
		Secure: true, Region: "us-east-1", Transport: tr})
	if err != nil {
		return err
	}
	for _, b := range []string{srcBucket, dstBucket} {
		if ok, err := f.mc.BucketExists(ctx, b); err != nil {
			return fmt.Errorf("far MinIO %s: %w", f.endpoint, err)
		} else if !ok {
			if err := f.mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
				return err
			}
		}
	}
	say := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench: setup: far: "+format+"\n", a...) }
	has := func(sc string) bool { return slices.Contains(h.set.Scenarios, sc) }
	if (has(scFarUpload) || has(scFarDownload)) && !sizeIs(h.bigFile, h.set.UploadSize) {
		say("writing %s (%s)", filepath.Base(h.bigFile), human(h.set.UploadSize))
		if err := writeFile(h.bigFile, gen{seed: uint64(h.set.UploadSize), size: h.set.UploadSize}); err != nil {
			return err
		}
	}
	if has(scFarDownload) {
		say("uploading %s/%s to %s", srcBucket, bigKey, f.endpoint)
		if _, err := f.mc.FPutObject(ctx, srcBucket, bigKey, h.bigFile, minio.PutObjectOptions{PartSize: uint64(64 * mib)}); err != nil {
			return err
		}
	}
	if has(scFarFiles) && h.dirSums == nil {
		say("writing %d files of %s", h.set.Files, human(h.set.FileSize))
		if h.dirSums, err = writeDir(filepath.Join(h.work, "files"), h.set.Files, h.set.FileSize, 1<<40); err != nil {
			return err
		}
	}
	f.proxy, err = newFarProxy(u.Host, f.delay, f.rateMBps*1e6)
	if err != nil {
		return err
	}
	say("proxy %s -> %s: %s each way, %s per connection", f.proxy.Addr(), u.Host, f.delay, farRateStr(f.rateMBps))
	return nil
}

func (f *farPath) close() {
	if f.proxy != nil {
		f.proxy.close()
	}
}

func farRateStr(mbps float64) string {
	if mbps <= 0 {
		return "no ceiling"
	}
	return fmt.Sprintf("%g MB/s", mbps)
}

func sizeIs(path string, size int64) bool {
	st, err := os.Stat(path)
	return err == nil && st.Size() == size
}

// loadCAs reads a PEM file of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("far CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("far CA bundle %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// sweepVariant names s3xfer-cli's run at a fixed --concurrency n.
func sweepVariant(n int) string { return fmt.Sprintf("fixed %d", n) }

// farEntries are the tool variants of a far scenario: as its near scenario's (without
// the download's no-fsync variants), then s3xfer-cli's concurrency sweep.
func (h *harness) farEntries(scenario string) []step {
	m := func(t string) step {
		return step{tool: t, variant: "matched", partSize: h.set.PartSize, concurrency: h.set.Concurrency}
	}
	d := func(t string) step { return step{tool: t, variant: "default"} }
	var e []step
	switch scenario {
	case scFarUpload:
		for _, t := range []string{s3xferLib, s3xferCLI, minioGo, awsSDK, awsCLI, rclone} {
			e = append(e, m(t), d(t))
		}
	case scFarDownload:
		for _, t := range []string{s3xferLib, s3xferCLI, awsSDK, awsCLI, rclone} {
			e = append(e, m(t), d(t))
		}
		e = append(e, d(minioGo)) // FGetObject: one GET, nothing to set
	case scFarFiles:
		for _, t := range []string{s3xferLib, s3xferCLI, minioGo, awsSDK, awsCLI, rclone} {
			s := m(t)
			s.partSize = 0
			e = append(e, s, d(t))
		}
	}
	for _, n := range h.set.Far.Sweep {
		e = append(e, step{tool: s3xferCLI, variant: sweepVariant(n), concurrency: n})
	}
	return e
}

// farStep runs one far transfer through the proxy and verifies it on the store directly.
func (h *harness) farStep(ctx context.Context, s Sample, st step, name string) Sample {
	f := &h.far
	name = keySafe(name)
	j := job{endpoint: "https://" + f.proxy.Addr(), caBundle: f.caBundle, access: f.access, secret: f.secret,
		partSize: st.partSize, concurrency: st.concurrency}
	var verify func() error
	var cleanup func()
	switch st.scenario {
	case scFarUpload:
		j.op, j.bucket, j.key, j.file = "upload", dstBucket, st.scenario+"/"+name, h.bigFile
		s.Bytes = h.set.UploadSize
		verify = func() error {
			return verifyObject(ctx, f.mc, dstBucket, j.key, h.openData(h.bigFile), h.set.UploadSize, false)
		}
		cleanup = func() { removePrefix(ctx, f.mc, dstBucket, j.key) }
	case scFarDownload:
		j.op, j.bucket, j.key = "download", srcBucket, bigKey
		j.file = filepath.Join(h.work, "far-download-"+name+".bin")
		s.Bytes = h.set.UploadSize
		verify = func() error { return verifyFile(j.file, h.openData(h.bigFile), h.set.UploadSize) }
		cleanup = func() { _ = os.Remove(j.file) }
	case scFarFiles:
		j.op, j.bucket, j.dir, j.prefix = "dir", dstBucket, filepath.Join(h.work, "files"), st.scenario+"/"+name+"/"
		s.Bytes = int64(h.set.Files) * h.set.FileSize
		verify = func() error { return verifyPrefix(ctx, f.mc, dstBucket, j.prefix, h.dirSums, h.set.FileSize) }
		cleanup = func() { removePrefix(ctx, f.mc, dstBucket, j.prefix) }
	default:
		return na(s, fmt.Errorf("%s is not a far scenario", st.scenario))
	}
	cmd, err := h.command(st.tool, j)
	if err != nil {
		return na(s, err)
	}
	var m measured
	s.Extra = onStore(f.pids, func() { m = h.runMeasured(cmd, "", h.timeout(), nil) })
	defer cleanup()
	return h.finish(s, m, verify)
}

// farSizeOf says what a far scenario moved and over which path.
func farSizeOf(sc string, s Settings) string {
	size := human(s.UploadSize)
	if sc == scFarFiles {
		size = fmt.Sprintf("%d × %s", s.Files, human(s.FileSize))
	}
	if s.Far == nil {
		return size
	}
	return fmt.Sprintf("%s, +%g ms each way, %s per connection", size, s.Far.DelayMS, farRateStr(s.Far.RateMBps))
}

// renderFarTargets are issue 15's targets for the far path, per far scenario: s3xfer at
// its defaults against the fastest peer at its defaults (≤ 0.6×) and against the best
// of s3xfer-cli's fixed-concurrency sweep (≤ 1.1×), same run; and the client CPU per GiB
// at the defaults next to the lowest of the peers'.
func renderFarTargets(b *strings.Builder, t *table) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	met := func(v, limit float64) string {
		switch {
		case math.IsNaN(v):
			return "–"
		case v <= limit:
			return "yes"
		}
		return "**no**"
	}
	for _, sc := range farScenarios {
		rows := t.scenario(sc)
		if len(rows) == 0 {
			continue
		}
		var peerDefaults, sweep []*row
		for _, r := range rows {
			if isPeer(r.tool) && r.variant == "default" {
				peerDefaults = append(peerDefaults, r)
			}
			if r.tool == s3xferCLI && strings.HasPrefix(r.variant, "fixed ") {
				sweep = append(sweep, r)
			}
		}
		lib, cli := t.find(sc, s3xferLib, "default"), t.find(sc, s3xferCLI, "default")
		lr, lw := ratioToBest(lib, peerDefaults, t.runs)
		cr, _ := ratioToBest(cli, peerDefaults, t.runs)
		w("| %s: wall at the defaults ≤ 0.6 × the fastest peer at its defaults | %s | %s | %s / %s (fastest: %s) |\n",
			sc, f(lr, 2), f(cr, 2), met(lr, 0.6), met(cr, 0.6), cmp.Or(lw, "–"))
		lr, bw := ratioToBest(lib, sweep, t.runs)
		cr, _ = ratioToBest(cli, sweep, t.runs)
		w("| %s: wall at the defaults ≤ 1.1 × the best fixed --concurrency of s3xfer-cli's sweep | %s | %s | %s / %s (best: %s) |\n",
			sc, f(lr, 2), f(cr, 2), met(lr, 1.1), met(cr, 1.1), cmp.Or(bw, "–"))
		lowest, lowestName := math.NaN(), "–"
		for _, r := range peerDefaults {
			if v := perGiB(r); !math.IsNaN(v) && (math.IsNaN(lowest) || v < lowest) {
				lowest, lowestName = v, r.tool
			}
		}
		cpu := func(r *row) float64 {
			if r == nil {
				return math.NaN()
			}
			return perGiB(r)
		}
		w("| %s: client CPU s per GiB at the defaults (lowest peer at its defaults: %s %s) | %s | %s | (measured) |\n",
			sc, lowestName, f(lowest, 2), f(cpu(lib), 2), f(cpu(cli), 2))
	}
}

// cmdFarProxy runs the far path's proxy alone, until interrupted, to try a tool on it by
// hand: it prints the address to use in place of the target's.
func cmdFarProxy(args []string) error {
	fs := flag.NewFlagSet("farproxy", flag.ExitOnError)
	target := fs.String("target", "", "HOST:PORT of the store")
	delay := fs.Duration("delay", 20*time.Millisecond, "one-way delay added in each direction")
	rate := fs.Float64("rate", 85, "throughput ceiling per connection and direction, MB/s (10^6 bytes); 0: none")
	_ = fs.Parse(args)
	if *target == "" {
		return errors.New("farproxy: --target HOST:PORT is required")
	}
	p, err := newFarProxy(*target, *delay, *rate*1e6)
	if err != nil {
		return err
	}
	defer p.close()
	fmt.Printf("%s -> %s: %s each way, %s per connection\n", p.Addr(), *target, *delay, farRateStr(*rate))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
