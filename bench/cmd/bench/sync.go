package main

// sync-100k (issue 14): `s3xfer sync`, `aws s3 sync` and `rclone sync` of a local tree of
// 100,000 small files to a fresh prefix on MinIO (the first sync), then the same command
// again (the no-op re-sync, which must write nothing). One step runs both, so the
// interleaving's reversed runs cannot put a re-sync before its first sync; the sample is
// the first sync's and its extras are the re-sync's.
//
// The tree is written once per bench run into the work dir: file i is manyObject(i)
// (200..399 bytes) at manyKey(i) without its set, e.g. 042/0042137, 1,000 files a
// directory, its mtime a day back (files that were there before the sync, as a user's are).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

const scSync100k = "sync-100k"

// rcloneInformed is rclone as its S3 documentation advises for a sync ("Avoiding HEAD
// requests to read the modification time"): at its defaults rclone reads each object's
// mtime (metadata) with a HEAD, so its no-op re-sync costs a request per file; --checksum
// compares sizes and MD5s from the listing instead, and --fast-list lists in one go.
const rcloneInformed = "--fast-list --checksum"

// The sync scenario joins the others at start-up: its steps, sizes and tables are in this
// file, and many.go hands it its steps.
func init() {
	allScenarios = append(allScenarios, scSync100k)
	noWarmUp = append(noWarmUp, scSync100k)
	titles[scSync100k] = "sync, local tree to a fresh prefix, then the same sync again (a no-op)"
}

// syncFiles is the number of files in the tree.
func syncFiles(quick bool) int {
	if quick {
		return 300
	}
	return 100_000
}

// syncRel is file i's path in the tree, and its key under the destination prefix.
func syncRel(i, n int) string { return strings.TrimPrefix(manyKey(i, n), "a/") }

// syncTimeout bounds each sync: aws cli puts about 100 small objects a second here.
func (h *harness) syncTimeout() time.Duration {
	if h.set.Quick {
		return h.timeout()
	}
	return time.Hour
}

func (h *harness) syncEntries() []step {
	return []step{
		{tool: s3xferCLI, variant: "default"},
		{tool: awsCLI, variant: "default"},
		{tool: rclone, variant: "default"},
		{tool: rclone, variant: rcloneInformed},
	}
}

// syncTree writes the tree unless an earlier step did (its marker file is written last),
// and returns its directory.
func (h *harness) syncTree() (string, error) {
	dir := filepath.Join(h.work, "sync-src")
	done := dir + ".done"
	if _, err := os.Stat(done); err == nil {
		return dir, nil
	}
	n := syncFiles(h.set.Quick)
	fmt.Fprintf(os.Stderr, "bench: setup: writing %d files of 200..399 B under %s\n", n, dir)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	old := time.Now().Add(-24 * time.Hour)
	buf := make([]byte, 400)
	for i := range n {
		p := filepath.Join(dir, filepath.FromSlash(syncRel(i, n)))
		if i%1000 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", err
			}
		}
		g := manyObject(i)
		if _, err := g.ReadAt(buf[:g.size], 0); err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		if err := os.WriteFile(p, buf[:g.size], 0o644); err != nil {
			return "", err
		}
		if err := os.Chtimes(p, old, old); err != nil {
			return "", err
		}
	}
	settle()
	return dir, os.WriteFile(done, nil, 0o644)
}

// syncStep runs one tool's first sync and its no-op re-sync, and verifies both.
func (h *harness) syncStep(ctx context.Context, s Sample, st step, name string) Sample {
	n := syncFiles(h.set.Quick)
	s.Bytes = manyBytes(n)
	s.Extra = map[string]float64{"objects": float64(n)}
	dir, err := h.syncTree()
	if err != nil {
		s.Err = "setup: " + err.Error()
		return s
	}
	j := job{op: "sync", endpoint: h.endpoint, dir: dir, bucket: dstBucket,
		prefix: st.scenario + "/" + keySafe(name) + "/", concurrency: st.concurrency}
	if st.tool == rclone && st.variant == rcloneInformed {
		j.flags = strings.Fields(rcloneInformed)
	}
	removePrefix(ctx, h.mc, dstBucket, j.prefix)
	defer removePrefix(ctx, h.mc, dstBucket, j.prefix)
	cmd, err := h.command(st.tool, j)
	if err != nil {
		return na(s, err)
	}
	first := h.runMeasured(cmd, "", h.syncTimeout(), nil)
	s = h.finish(s, first, func() error { return h.verifyMany(ctx, j.prefix, n, n, "a/") })
	if !s.OK {
		return s
	}
	s.Extra["objects_per_s"] = float64(n) / s.Wall

	if !h.set.Quick {
		settle()
	}
	// Anything the re-sync writes has a LastModified at or after its start; MinIO keeps it
	// to the millisecond, and the first sync ended well before (settle, the listing).
	started := time.Now().Truncate(time.Millisecond)
	cmd, _ = h.command(st.tool, j)
	again := h.runMeasured(cmd, "", h.syncTimeout(), nil)
	s.Extra["noop_wall_s"] = again.wall
	s.Extra["noop_cpu_s"] = again.user + again.sys
	s.Extra["noop_rss_kib"] = float64(again.maxRSS)
	if again.wall > 0 {
		s.Extra["noop_objects_per_s"] = float64(n) / again.wall
	}
	if again.err != nil {
		s.OK, s.Err = false, fmt.Sprintf("no-op re-sync: %v: %s", again.err, lastLine(again.stderr))
		return s
	}
	written, err := h.writtenSince(ctx, j.prefix, started)
	s.Extra["noop_written"] = float64(written)
	if err == nil && written > 0 {
		err = fmt.Errorf("the no-op re-sync wrote %d of the %d objects again", written, n)
	}
	if err == nil {
		err = h.verifyMany(ctx, j.prefix, n, n, "a/")
	}
	if err != nil {
		s.OK, s.Err = false, "verify no-op re-sync: "+err.Error()
		return s
	}
	fmt.Fprintf(os.Stderr, "bench: %s %s %s: no-op re-sync %.2fs cpu %.2fs rss %d MiB, nothing written\n",
		st.scenario, st.tool, st.variant, again.wall, again.user+again.sys, again.maxRSS>>10)
	return s
}

// writtenSince counts the objects under prefix whose LastModified is at or after t.
func (h *harness) writtenSince(ctx context.Context, prefix string, t time.Time) (int, error) {
	n := 0
	for o := range h.mc.ListObjects(ctx, dstBucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return n, o.Err
		}
		if !o.LastModified.Before(t) {
			n++
		}
	}
	return n, nil
}

func syncSizeOf(quick bool) string {
	return fmt.Sprintf("%d files of 200..399 B", syncFiles(quick))
}

// syncCommand is what a sync row ran, for the table.
func syncCommand(r *row) string {
	switch r.tool {
	case s3xferCLI:
		return "`s3xfer sync DIR/ s3://b/p/ --quiet`"
	case awsCLI:
		return "`aws s3 sync --only-show-errors DIR s3://b/p/`"
	case rclone:
		if r.variant == rcloneInformed {
			return "`rclone sync DIR bench:b/p/ -q " + rcloneInformed + "`"
		}
		return "`rclone sync DIR bench:b/p/ -q`"
	}
	return r.tool + " " + r.variant
}

// noopWall and firstWall are what the sync targets compare, per sample.
func noopWall(s Sample) float64  { return s.Extra["noop_wall_s"] }
func firstWall(s Sample) float64 { return s.Wall }

// fastestBy is the row of rows with the lowest median measure.
func fastestBy(rows []*row, by func(Sample) float64) *row {
	var best *row
	bestV := math.Inf(1)
	for _, r := range rows {
		if v := r.med(by); !math.IsNaN(v) && v < bestV {
			best, bestV = r, v
		}
	}
	return best
}

func renderSync(b *strings.Builder, t *table, rows []*row) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	cli := t.find(scSync100k, s3xferCLI, "default")
	w("| tool | variant | command | first sync wall s | objects/s | CPU s | peak RSS MiB | no-op wall s | no-op CPU s | no-op peak RSS MiB | s3xfer ÷ tool, first | s3xfer ÷ tool, no-op | ok |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.tool, r.variant, syncCommand(r),
			f(r.wall(), 2), f(r.extra("objects_per_s"), 0), f(r.cpu(), 2), f(r.peakRSS(), 1),
			f(r.extra("noop_wall_s"), 2), f(r.extra("noop_cpu_s"), 2), f(maxOver(r, "noop_rss_kib")/1024, 1),
			f(ratioBy(cli, r, t.runs, firstWall), 2), f(ratioBy(cli, r, t.runs, noopWall), 2), status(r))
	}
	w("\nEach step: the first sync into a fresh prefix, verified by listing it (every key, size and MD5 ETag); then " +
		"the same command again, which must write nothing (no object's LastModified at or after its start; listed and " +
		"verified again). rclone at its defaults reads each object's mtime with a HEAD; `" + rcloneInformed +
		"` is what rclone's S3 documentation advises instead.\n")
}

// maxOver is the highest value of an extra over a row's successful samples.
func maxOver(r *row, k string) float64 {
	m := math.NaN()
	for _, s := range r.ok() {
		if v := s.Extra[k]; math.IsNaN(m) || v > m {
			m = v
		}
	}
	return m
}

// renderSyncTargets adds issue 14's sync targets to the targets table: s3xfer at its
// defaults at least twice as fast as the fastest peer variant, on the first sync and on the
// no-op, and within the memory target on both.
func renderSyncTargets(b *strings.Builder, t *table) {
	rows := t.scenario(scSync100k)
	cli := t.find(scSync100k, s3xferCLI, "default")
	if len(rows) == 0 || cli == nil {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	for _, m := range []struct {
		what string
		by   func(Sample) float64
	}{{"first sync", firstWall}, {"no-op re-sync", noopWall}} {
		best := fastestBy(peers(rows), m.by)
		speed := 1 / ratioBy(cli, best, t.runs, m.by)
		name := "–"
		if best != nil {
			name = best.tool + " " + best.variant
		}
		w("| sync of small files, %s: ≥ 2 × the fastest peer's speed, s3xfer at its defaults | – | %s | – / %s (fastest: %s) |\n",
			m.what, f(speed, 2), metCell(speed >= 2, speed), name)
	}
	rss := math.Max(cli.peakRSS(), maxOver(cli, "noop_rss_kib")/1024)
	w("| Peak RSS ≤ %d MiB, sync of small files, first and no-op (MiB) | – | %s | – / %s |\n", manyTarget, f(rss, 1), metCell(rss <= manyTarget, rss))
}
