package main

// Directory jobs under heavy throttling: the CLI through internal/faultproxy in front of
// the real MinIO, with 40% of every kind of request (listings included) answered 503
// SlowDown. Every command must finish on its first run; with one try per request the
// same jobs must fail (the test can fail).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
)

// throttleTree is ~200 small files in a few directories (one empty) and two files of
// 12 MiB, which go in three 5 MiB parts.
func throttleTree() map[string][]byte {
	tree := map[string][]byte{}
	for i := range 200 {
		tree[fmt.Sprintf("d%d/f%03d.txt", i%7, i)] = fxBytes(i*37%4000, uint64(1000+i))
	}
	tree["big/one.bin"] = fxBytes(12*fxMiB+11, 501)
	tree["big/two.bin"] = fxBytes(12*fxMiB+5000, 502)
	return tree
}

// writeTree writes tree under b.dir/name and returns that directory.
func (b *cliBed) writeTree(name string, tree map[string][]byte) string {
	b.t.Helper()
	for rel, data := range tree {
		b.file(filepath.Join(name, filepath.FromSlash(rel)), data)
	}
	return filepath.Join(b.dir, name)
}

// wantTree fails unless the files under dir are tree's, byte for byte, and no others.
func (b *cliBed) wantTree(dir string, tree map[string][]byte) {
	b.t.Helper()
	got := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		want, ok := tree[filepath.ToSlash(rel)]
		if !ok {
			b.t.Errorf("%s: not in the tree", p)
			return nil
		}
		got++
		if data, err := os.ReadFile(p); err != nil || !bytes.Equal(data, want) {
			b.t.Errorf("%s: %d bytes (err %v), want %d", p, len(data), err, len(want))
		}
		return nil
	})
	if err != nil || got != len(tree) {
		b.t.Fatalf("%s holds %d of the tree's %d files (err %v)", dir, got, len(tree), err)
	}
}

// wantObjects fails unless the objects under prefix, read directly from MinIO, are
// tree's, byte for byte, and no others.
func (b *cliBed) wantObjects(prefix string, tree map[string][]byte) {
	b.t.Helper()
	ctx := context.Background()
	got := 0
	for o := range b.st.Core.Client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			b.t.Fatal(o.Err)
		}
		want, ok := tree[strings.TrimPrefix(o.Key, prefix)]
		if !ok {
			b.t.Errorf("object %s: not in the tree", o.Key)
			continue
		}
		got++
		rc, _, _, err := b.st.Core.GetObject(ctx, b.bucket, o.Key, minio.GetObjectOptions{})
		if err != nil {
			b.t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(data, want) {
			b.t.Errorf("object %s: %d bytes (err %v), want %d", o.Key, len(data), err, len(want))
		}
	}
	if got != len(tree) {
		b.t.Fatalf("%s holds %d of the tree's %d objects", prefix, got, len(tree))
	}
}

// staleUploads starts n multipart uploads under prefix directly on MinIO, one 1 KiB part
// each, and leaves them incomplete; it returns their IDs.
func (b *cliBed) staleUploads(prefix string, n int) []string {
	b.t.Helper()
	ctx := context.Background()
	var ids []string
	for i := range n {
		key := fmt.Sprintf("%sstale-%d", prefix, i)
		id, err := b.st.Core.NewMultipartUpload(ctx, b.bucket, key, minio.PutObjectOptions{})
		if err != nil {
			b.t.Fatal(err)
		}
		part := fxBytes(1024, uint64(700+i))
		if _, err := b.st.Core.PutObjectPart(ctx, b.bucket, key, id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
			b.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// mustRun runs one command, which must exit 0 on its first run, within 3 minutes.
func (b *cliBed) mustRun(args ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	code, out, errOut := b.cli(ctx, nil, args...)
	if code != exitOK {
		b.t.Fatalf("s3xfer %s: exit %d after %v, want 0 under throttling\n%s%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), out, errOut)
	}
	b.t.Logf("s3xfer %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out
}

// jsonIDs returns the upload IDs of the JSON events named event in out, sorted.
func jsonIDs(t *testing.T, out, event string) []string {
	t.Helper()
	var ids []string
	for line := range strings.Lines(out) {
		var ev struct {
			Event    string `json:"event"`
			UploadID string `json:"upload_id"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		if ev.Event == event {
			ids = append(ids, ev.UploadID)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestThrottledCLIDirectoryJobs runs a directory job each way and within the store, then
// ls-uploads and cleanup, through a proxy that answers 40% of every request with 503
// SlowDown (a fixed schedule): listings, HEAD, PUT, multipart create, parts and complete,
// ranged GET, copies, upload listings and aborts. Every command exits 0 on its first run,
// the trees are byte-identical, ls-uploads lists exactly the six uploads left incomplete
// on purpose and cleanup aborts them, and nothing is left behind. The proxy must have
// throttled listings, later pages included, and every kind of request. The retry
// backoff is the CLI's own (200ms doubling, full jitter): it has no option to shorten it.
func TestThrottledCLIDirectoryJobs(t *testing.T) {
	start := time.Now()
	b := newCLIBed(t, faultproxy.Throttle(13, 0.4, nil))
	tree := throttleTree()
	src, back := b.writeTree("src", tree), filepath.Join(b.dir, "back")
	stale := b.staleUploads("stale/", 6) // enough that the seed's schedule throttles aborts too
	opts := []string{"--part-size", "5MiB", "--threshold", "5MiB", "--concurrency", "32"}

	step := func(name string, f func(t *testing.T)) { // in order; the bed's helpers report to the step
		ok := t.Run(name, func(st *testing.T) {
			b.t = st
			defer func() { b.t = t }()
			f(st)
		})
		if !ok {
			t.FailNow()
		}
	}
	copied := false
	step("upload", func(t *testing.T) {
		b.mustRun(append([]string{"cp", "-r", src, b.url("tree/")}, opts...)...)
		b.wantObjects("tree/", tree)
	})
	step("download", func(t *testing.T) {
		b.mustRun(append([]string{"cp", "-r", b.url("tree/"), back}, opts...)...)
		b.wantTree(back, tree)
	})
	step("copy", func(t *testing.T) {
		b.mustRun(append([]string{"cp", "-r", b.url("tree/"), b.url("copy/")}, opts...)...)
		b.wantObjects("copy/", tree)
		copied = true
	})
	step("ls-uploads and cleanup", func(t *testing.T) {
		if ids := jsonIDs(t, b.mustRun("ls-uploads", "s3://"+b.bucket, "--json"), "upload"); !slices.Equal(ids, stale) {
			t.Fatalf("ls-uploads listed the uploads %v, want the stale ones %v", ids, stale)
		}
		if ids := jsonIDs(t, b.mustRun("cleanup", "s3://"+b.bucket, "--older-than", "0s", "--json"), "aborted"); !slices.Equal(ids, stale) {
			t.Fatalf("cleanup aborted %v, want the stale uploads %v", ids, stale)
		}
		b.wantClean()
	})

	stats := b.proxy.Stats()
	listings, throttled, later := 0, 0, 0
	for _, rec := range b.proxy.Requests() {
		if faultproxy.IsListing(&rec.Request) {
			listings++
			if rec.Action.Fault == faultproxy.Respond {
				throttled++
				if rec.Query.Get("continuation-token") != "" || rec.Query.Get("start-after") != "" || rec.Query.Get("marker") != "" {
					later++
				}
			}
		}
	}
	total := stats.Total()
	t.Logf("all in %v: %d requests, %d throttled; %d listing requests, %d throttled (%d resuming a listing); proxy:\n%s",
		time.Since(start).Round(time.Millisecond), total.Requests, total.Injected(), listings, throttled, later, stats)
	if throttled == 0 {
		t.Error("no listing was throttled")
	}
	ops := []faultproxy.Op{faultproxy.HeadObject, faultproxy.PutObject, faultproxy.CreateMultipartUpload,
		faultproxy.UploadPart, faultproxy.CompleteMultipartUpload, faultproxy.GetObject,
		faultproxy.ListMultipartUploads, faultproxy.ListParts, faultproxy.AbortMultipartUpload}
	if copied {
		ops = append(ops, faultproxy.CopyObject, faultproxy.UploadPartCopy)
	}
	for _, op := range ops {
		if o := stats[op]; o == nil || o.Faults[faultproxy.Respond] == 0 {
			t.Errorf("no %s was throttled: the run does not prove the CLI survives throttling there", op)
		}
	}
}

// TestThrottledCLIOneTryFails is the control: with --max-attempts 1 (one try, throttled
// or not) the same directory jobs under the same throttling fail, each with a clear
// failure (exit 1).
func TestThrottledCLIOneTryFails(t *testing.T) {
	b := newCLIBed(t, faultproxy.Throttle(13, 0.4, nil))
	tree := map[string][]byte{}
	for i := range 30 {
		tree[fmt.Sprintf("f%02d", i)] = fxBytes(100+i, uint64(i))
	}
	src := b.writeTree("src", tree)
	for _, args := range [][]string{
		{"cp", "-r", src, b.url("tree/"), "--max-attempts", "1"},
		{"cp", "-r", b.url("tree/"), filepath.Join(b.dir, "back"), "--max-attempts", "1"},
	} {
		if args[2] != src { // the download needs the objects: put them directly
			for name, data := range tree {
				if _, err := b.st.Core.PutObject(context.Background(), b.bucket, "tree/"+name, bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		code, out, errOut := b.cli(ctx, nil, args...)
		cancel()
		if code != exitFailed || !strings.HasPrefix(errOut, "s3xfer: ") && !strings.Contains(errOut, "\ns3xfer: ") {
			t.Fatalf("s3xfer %s under 40%% SlowDown: exit %d, want a clear failure (1)\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		if !strings.Contains(strings.ToLower(errOut), "slow") && !strings.Contains(errOut, "reduce your request rate") {
			t.Errorf("s3xfer %s: the failure does not say the store throttled:\n%s", strings.Join(args, " "), errOut)
		}
		t.Logf("s3xfer %s: exit %d: %s", strings.Join(args, " "), code, lastLine(errOut))
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
