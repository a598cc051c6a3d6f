package main

// Many objects (issue 14): directory jobs whose memory must not grow with the number of
// objects, and a prefix-to-prefix cp -r against its peers.
//
//   - many-synthetic: cmd/manyobjects runs transfer.Manager.CopyDir over a synthetic store
//     of 1,000,000 objects (its listing generated on the fly; copies answered at once): the
//     library's own peak RSS for a million-object job.
//   - cp-r-30k: s3xfer cp -r, aws s3 cp --recursive and rclone copy of a prefix of 30,000
//     small objects to another prefix on MinIO (server-side copies), interleaved.
//   - cp-r-100k: s3xfer cp -r alone of 100,000 small objects, prefix to prefix: the memory
//     target confirmed on a real store.
//
// The source objects are put once per bench run (concurrent PUTs from here, not
// measured) under bench-src/many/src/: a/ holds the 30,000 (cp-r-30k copies it), b/ the
// other 70,000 (cp-r-100k copies both). Each is 200..399 bytes of deterministic data.

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"
)

// The scenarios of this file, in allScenarios.
const (
	scManySynthetic = "many-synthetic"
	scCpR30k        = "cp-r-30k"
	scCpR100k       = "cp-r-100k"
)

var manyScenarios = []string{scManySynthetic, scCpR30k, scCpR100k}

// headHeld is the many-synthetic variant whose first object's copy is held until every
// other object is copied, as a large file at the head of a job of small ones would be.
const headHeld = "first object held"

// manyBin is cmd/manyobjects in the bin directory (run.sh builds it there).
const manyBin = "manyobjects"

// manyTarget is issue 14's memory target for a directory job of any size.
const manyTarget = 64 // MiB of peak RSS

// manySizes are the object counts: synthetic, the cp-r-30k prefix (a/), and the whole
// cp-r-100k source (a/ and b/).
func manySizes(quick bool) (synthetic, small, all int) {
	if quick {
		return 20_000, 200, 500
	}
	return 1_000_000, 30_000, 100_000
}

const manySrc = "many/src/"

// manyKey is object i's key under manySrc: the first `small` are in a/, the rest in b/,
// in key order by i.
func manyKey(i, small int) string {
	set := "a"
	if i >= small {
		set = "b"
	}
	return fmt.Sprintf("%s/%03d/%07d", set, i/1000, i)
}

// manyObject is object i's content: 200..399 bytes.
func manyObject(i int) gen {
	return gen{seed: uint64(i) + 1<<50, size: 200 + int64(i%200)}
}

func manyETag(i int) string {
	g := manyObject(i)
	b := make([]byte, g.size)
	_, _ = g.ReadAt(b, 0)
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// manyEntries are the tool variants of the many-objects scenarios.
func (h *harness) manyEntries(scenario string) []step {
	switch scenario {
	case scManySynthetic:
		return []step{{tool: s3xferLib, variant: "default"}, {tool: s3xferLib, variant: headHeld}}
	case scCpR30k:
		var e []step
		for _, t := range []string{s3xferCLI, awsCLI, rclone} {
			e = append(e, step{tool: t, variant: "default"},
				step{tool: t, variant: "matched", concurrency: h.set.Concurrency})
		}
		return e
	case scCpR100k:
		return []step{{tool: s3xferCLI, variant: "default"}}
	case scSync100k:
		return h.syncEntries()
	}
	return nil
}

// setupMany puts the source objects of cp-r-30k and cp-r-100k, unless a listing finds
// them all there already.
func (h *harness) setupMany(ctx context.Context) error {
	_, small, all := manySizes(h.set.Quick)
	n := 0
	for o := range h.mc.ListObjects(ctx, srcBucket, minio.ListObjectsOptions{Prefix: manySrc, Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		n++
	}
	if n == all {
		fmt.Fprintf(os.Stderr, "bench: setup: %d objects already under %s/%s\n", n, srcBucket, manySrc)
		return nil
	}
	removePrefix(ctx, h.mc, srcBucket, manySrc)
	fmt.Fprintf(os.Stderr, "bench: setup: putting %d small objects under %s/%s\n", all, srcBucket, manySrc)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	var done atomic.Int64
	for i := range all {
		g.Go(func() error {
			o := manyObject(i)
			_, err := h.mc.PutObject(gctx, srcBucket, manySrc+manyKey(i, small), io.NewSectionReader(o, 0, o.size), o.size,
				minio.PutObjectOptions{DisableContentSha256: true})
			if d := done.Add(1); d%20_000 == 0 {
				fmt.Fprintf(os.Stderr, "bench: setup: %d objects put\n", d)
			}
			return err
		})
	}
	return g.Wait()
}

// manyStep runs one step of the many-objects scenarios.
func (h *harness) manyStep(ctx context.Context, s Sample, st step, name string) Sample {
	synthetic, small, all := manySizes(h.set.Quick)
	switch st.scenario {
	case scSync100k:
		return h.syncStep(ctx, s, st, name)
	case scManySynthetic:
		return h.syntheticStep(s, synthetic, st.variant == headHeld)
	}
	n, srcPrefix := small, manySrc+"a/"
	if st.scenario == scCpR100k {
		n, srcPrefix = all, manySrc
	}
	j := job{op: "copydir", endpoint: h.endpoint, srcBucket: srcBucket, srcKey: srcPrefix,
		bucket: dstBucket, prefix: st.scenario + "/" + name + "/", concurrency: st.concurrency}
	s.Bytes = manyBytes(n)
	s.Extra = map[string]float64{"objects": float64(n)}
	cmd, err := h.command(st.tool, j)
	if err != nil {
		return na(s, err)
	}
	m := h.runMeasured(cmd, "", h.timeout(), nil)
	defer removePrefix(ctx, h.mc, dstBucket, j.prefix)
	s = h.finish(s, m, func() error {
		return h.verifyMany(ctx, j.prefix, n, small, strings.TrimPrefix(srcPrefix, manySrc))
	})
	if s.OK && s.Wall > 0 {
		s.Extra["objects_per_s"] = float64(n) / s.Wall
	}
	return s
}

func manyBytes(n int) int64 {
	var b int64
	for i := range n {
		b += manyObject(i).size
	}
	return b
}

// verifyMany lists the destination prefix and checks it holds exactly objects 0..n-1,
// each with its key (the source's after strip), size and MD5 ETag.
func (h *harness) verifyMany(ctx context.Context, prefix string, n, small int, strip string) error {
	const first = 0
	i := first
	for o := range h.mc.ListObjects(ctx, dstBucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		if i >= first+n {
			return fmt.Errorf("more than %d objects under %s/%s: %s", n, dstBucket, prefix, o.Key)
		}
		want := prefix + strings.TrimPrefix(manyKey(i, small), strip)
		if o.Key != want {
			return fmt.Errorf("object %d of %s/%s is %s, want %s", i-first, dstBucket, prefix, o.Key, want)
		}
		if sz := manyObject(i).size; o.Size != sz {
			return fmt.Errorf("%s has %d bytes, want %d", o.Key, o.Size, sz)
		}
		if etag := strings.Trim(o.ETag, `"`); etag != manyETag(i) {
			return fmt.Errorf("%s has ETag %s, want %s (MD5 of the source)", o.Key, etag, manyETag(i))
		}
		i++
	}
	if i != first+n {
		return fmt.Errorf("%d objects under %s/%s, want %d", i-first, dstBucket, prefix, n)
	}
	return nil
}

// syntheticStep runs cmd/manyobjects: CopyDir over a synthetic store of n objects.
func (h *harness) syntheticStep(s Sample, n int, held bool) Sample {
	p := filepath.Join(h.bin, manyBin)
	if _, err := os.Stat(p); err != nil {
		return na(s, errNA)
	}
	cmd := exec.Command(p, "--objects", strconv.Itoa(n))
	if held {
		cmd.Args = append(cmd.Args, "--stall-first")
	}
	cmd.Env = append(os.Environ(), "HOME="+h.home)
	s.Bytes = int64(n) * 300
	m := h.runMeasured(cmd, "", h.timeout(), nil)
	var rep struct {
		Objects, Done int
		Copies        int64
		ObjectsPerSec float64 `json:"objects_per_s"`
		PeakRSSKiB    int64   `json:"peak_rss_kib"`
		PeakHeapKiB   int64   `json:"peak_heap_kib"`
	}
	s = h.finish(s, m, func() error {
		if err := json.Unmarshal([]byte(strings.TrimSpace(m.stdout)), &rep); err != nil {
			return fmt.Errorf("manyobjects printed %q: %w", lastLine(m.stdout), err)
		}
		if rep.Objects != n || rep.Done != n || rep.Copies != int64(n) {
			return fmt.Errorf("manyobjects copied %d (%d copies) of %d objects", rep.Done, rep.Copies, n)
		}
		return nil
	})
	s.Extra = map[string]float64{"objects": float64(n), "objects_per_s": rep.ObjectsPerSec,
		"vmhwm_kib": float64(rep.PeakRSSKiB), "peak_heap_kib": float64(rep.PeakHeapKiB)}
	return s
}

// copyDirURLs are the source and destination of a prefix-to-prefix copy (op "copydir")
// as s3:// URLs.
func copyDirURLs(j job) (src, dst string) {
	return "s3://" + j.srcBucket + "/" + j.srcKey, "s3://" + j.bucket + "/" + j.prefix
}

func init() { maps.Copy(titles, manyTitles) }

// manyTitles and manySizeOf name the scenarios in the report.
var manyTitles = map[string]string{
	scManySynthetic: "Directory job over a synthetic store (CopyDir, cmd/manyobjects)",
	scCpR30k:        "cp -r prefix to prefix, small objects (server-side copies)",
	scCpR100k:       "cp -r prefix to prefix, small objects, s3xfer alone (memory)",
}

func manySizeOf(sc string, quick bool) string {
	synthetic, small, all := manySizes(quick)
	switch sc {
	case scManySynthetic:
		return fmt.Sprintf("%d objects", synthetic)
	case scCpR30k:
		return fmt.Sprintf("%d objects of 200..399 B", small)
	case scCpR100k:
		return fmt.Sprintf("%d objects of 200..399 B", all)
	case scSync100k:
		return syncSizeOf(quick)
	}
	return ""
}

// renderMany writes the table of a many-objects scenario.
func renderMany(b *strings.Builder, t *table, sc string, rows []*row) {
	if sc == scSync100k {
		renderSync(b, t, rows)
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("| tool | variant | settings | wall s | objects/s | CPU s | peak RSS MiB | s3xfer-cli ÷ tool | ok |\n")
	w("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		cli := t.find(sc, s3xferCLI, r.variant)
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.tool, r.variant, settingStr(r), f(r.wall(), 2),
			f(r.extra("objects_per_s"), 0), f(r.cpu(), 2), f(r.peakRSS(), 1), f(ratio(cli, r, t.runs), 2), status(r))
	}
	if sc == scManySynthetic && len(rows) > 0 {
		w("\nThe synthetic store answers at once: this is the library's cost per object (listing, job, stat, copy, verify), " +
			"not a store's. Peak RSS from the client's rusage; VmHWM and the Go heap's high-water mark as the program saw them:")
		for _, r := range rows {
			w(" %s %s MiB and %s MiB;", r.variant, f(r.extra("vmhwm_kib")/1024, 1), f(r.extra("peak_heap_kib")/1024, 1))
		}
		w(" %q holds the first object's copy until every other one is done, as a large file at the head of a job would.\n", headHeld)
	}
}

// metCell is a targets table's "met" cell: "–" when v was not measured.
func metCell(ok bool, v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case ok:
		return "yes"
	}
	return "**no**"
}

// renderManyTargets adds the many-objects targets to the targets table.
func renderManyTargets(b *strings.Builder, t *table) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	for _, v := range []string{"default", headHeld} {
		if r := t.find(scManySynthetic, s3xferLib, v); r != nil {
			x := r.peakRSS()
			w("| Peak RSS ≤ %d MiB, CopyDir of a synthetic listing, %s (MiB) | %s | – | %s / – |\n", manyTarget, v, f(x, 1), metCell(x <= manyTarget, x))
		}
	}
	if r := t.find(scCpR100k, s3xferCLI, "default"); r != nil {
		v := r.peakRSS()
		w("| Peak RSS ≤ %d MiB, cp -r prefix to prefix on MinIO (MiB) | – | %s | – / %s |\n", manyTarget, f(v, 1), metCell(v <= manyTarget, v))
	}
	if rows := t.scenario(scCpR30k); len(rows) > 0 {
		for _, v := range []string{"default", "matched"} {
			r, best := ratioToBest(t.find(scCpR30k, s3xferCLI, v), peers(rows), t.runs)
			speed := 1 / r
			w("| cp -r of small objects ≥ 2 × the fastest peer's speed, s3xfer %s | – | %s | – / %s (fastest: %s) |\n",
				v, f(speed, 2), metCell(speed >= 2, speed), best)
		}
		if r := t.find(scCpR30k, s3xferCLI, "default"); r != nil {
			v := r.peakRSS()
			w("| Peak RSS ≤ %d MiB, cp -r of small objects (MiB) | – | %s | – / %s |\n", manyTarget, f(v, 1), metCell(v <= manyTarget, v))
		}
	}
	renderSyncTargets(b, t)
}
