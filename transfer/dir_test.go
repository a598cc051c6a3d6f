package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// makeDir writes n small files under a fresh directory, some nested, and returns it.
func makeDir(t *testing.T, n int) (string, map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	files := map[string][]byte{}
	for i := range n {
		rel := fmt.Sprintf("f%03d", i)
		if i%3 == 0 {
			rel = fmt.Sprintf("sub %d/é-%03d", i%2, i)
		}
		data := randomBytes(100 + i)
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files[rel] = data
	}
	return root, files
}

// collect gathers a job's per-file results.
type collect struct {
	mu    sync.Mutex
	found int
	files []FileResult
}

func (c *collect) opts(o DirOptions) DirOptions {
	o.OnFound = func(int64) { c.mu.Lock(); c.found++; c.mu.Unlock() }
	o.OnFile = func(fr FileResult) { c.mu.Lock(); c.files = append(c.files, fr); c.mu.Unlock() }
	return o
}

func TestUploadDirThenDownloadAndCopy(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 3})
	ctx := context.Background()
	root, files := makeDir(t, 25)
	var c collect
	res, err := m.UploadDir(ctx, root, "bkt", "up", c.opts(DirOptions{}))
	if err != nil || res.Files != 25 || res.Done != 25 || res.Failed != 0 || c.found != 25 || len(c.files) != 25 {
		t.Fatalf("upload: %+v, %v; found %d, results %d", res, err, c.found, len(c.files))
	}
	for rel, data := range files {
		if got, _, ok := f.Object("bkt", "up/"+rel); !ok || !bytes.Equal(got, data) {
			t.Fatalf("up/%s: present %v, equal %v", rel, ok, bytes.Equal(got, data))
		}
	}
	res, err = m.CopyDir(ctx, "bkt", "up/", "bkt", "copy", DirOptions{Filter: Filter{Exclude: []string{"sub 1"}}})
	if err != nil || res.Done != 25-4 {
		t.Fatalf("copy: %+v, %v; want the 21 files outside sub 1", res, err)
	}
	if _, err := m.CopyDir(ctx, "bkt", "up", "bkt", "up/inside", DirOptions{}); err == nil {
		t.Fatal("a copy into its own source was accepted")
	}
	back := t.TempDir()
	res, err = m.DownloadDir(ctx, "bkt", "up", back, DirOptions{})
	if err != nil || res.Done != 25 {
		t.Fatalf("download: %+v, %v", res, err)
	}
	for rel, data := range files {
		if got, err := os.ReadFile(filepath.Join(back, filepath.FromSlash(rel))); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v, equal %v", rel, err, bytes.Equal(got, data))
		}
	}
}

// A directory job of small files holds, per file in flight, about the file, not a
// part-sized buffer: with 64 in flight that was 16 MiB of a 64 MiB budget (issue 14).
func TestSmallFilesInFlightHoldLittle(t *testing.T) {
	const inFlight = 64
	f, m, _ := fakeManager(t, Config{Concurrency: inFlight})
	root, _ := makeDir(t, inFlight)
	arrived, release := make(chan struct{}, inFlight), make(chan struct{})
	f.Fault = func(c transfertest.Call, _ int) transfertest.Fault {
		if c.Op != "PutObject" {
			return transfertest.Fault{}
		}
		return transfertest.Fault{Wait: func(ctx context.Context) error {
			arrived <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // a second cycle empties sync.Pools, whose buffers would count otherwise
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	done := make(chan error, 1)
	go func() {
		_, err := m.UploadDir(context.Background(), root, "bkt", "up", DirOptions{})
		done <- err
	}()
	for range inFlight {
		<-arrived
	}
	during := heap()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Each request in flight holds its goroutines, body and a few small buffers: a few
	// KiB. The budget leaves room for what the runtime and the job allocate once.
	grown := int64(during) - int64(before)
	t.Logf("heap grew %d KiB", grown>>10)
	if grown > inFlight*32<<10 {
		t.Errorf("%d uploads of small files in flight grew the heap by %d KiB, want at most %d KiB",
			inFlight, grown>>10, inFlight*32)
	}
}

// A job that fails for one file keeps a checkpoint: run again, it sends only that file,
// with no request for the files done, and then deletes its journal.
func TestDirJobResumesFromCheckpoint(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 2, Journal: &resume.Store{Dir: t.TempDir()}})
	ctx := context.Background()
	root, _ := makeDir(t, 30)
	f.Fault = transfertest.When(func(c transfertest.Call) bool { return c.Op == "PutObject" && c.Key == "up/f010" }, 0,
		transfertest.Fail(transfertest.S3Error("AccessDenied")))
	res, err := m.UploadDir(ctx, root, "bkt", "up", DirOptions{})
	var je *JobError
	if !errors.As(err, &je) || je.Stopped || je.Failed != 1 || res.Done != 29 || !isCode(err, "AccessDenied") {
		t.Fatalf("first run: %+v, %v; want one AccessDenied of 30", res, err)
	}
	infos, _ := m.cfg.Journal.List()
	if len(infos) != 1 || infos[0].Header.Kind != resume.UploadDir || infos[0].Err != nil {
		t.Fatalf("journals after a failed job: %+v", infos)
	}
	f.Fault = nil
	before := len(f.Calls())
	var c collect
	res, err = m.UploadDir(ctx, root, "bkt", "up", c.opts(DirOptions{}))
	if err != nil || res.Done != 1 || res.Skipped != 29 {
		t.Fatalf("second run: %+v, %v; want 1 done, 29 skipped", res, err)
	}
	var ops []string
	for _, call := range f.Calls()[before:] {
		ops = append(ops, call.Op+" "+call.Key)
	}
	if len(ops) != 1 || ops[0] != "PutObject up/f010" {
		t.Errorf("second run's requests: %q; want only the failed file's upload", ops)
	}
	if infos, _ := m.cfg.Journal.List(); len(infos) != 0 {
		t.Errorf("journal kept after the job completed: %+v", infos)
	}
	// Fresh ignores the checkpoint: everything again.
	res, err = m.UploadDir(ctx, root, "bkt", "up", DirOptions{Fresh: true})
	if err != nil || res.Done != 30 {
		t.Fatalf("fresh run: %+v, %v", res, err)
	}
}

func TestDirJobStops(t *testing.T) {
	root, _ := makeDir(t, 40)
	// Refused for every file, but not a failure every file must meet: after 10 in a row.
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	f.Fault = transfertest.On("PutObject", 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	res, err := m.UploadDir(context.Background(), root, "bkt", "up", DirOptions{})
	var je *JobError
	if !errors.As(err, &je) || !je.Stopped || res.Failed != 10 || res.Files > 10+4 { // 4 more at most were under way
		t.Fatalf("%+v, %v; want a stop after 10 failures in a row", res, err)
	}
	// A missing bucket stops at once.
	_, m, _ = fakeManager(t, Config{Concurrency: 1})
	res, err = m.UploadDir(context.Background(), root, "no-such-bucket", "up", DirOptions{})
	if !errors.As(err, &je) || !je.Stopped || res.Failed != 1 || !isCode(err, "NoSuchBucket") {
		t.Fatalf("%+v, %v; want a stop at the first NoSuchBucket", res, err)
	}
	// A missing source directory is an error before anything moves.
	_, err = m.UploadDir(context.Background(), filepath.Join(root, "nope"), "bkt", "up", DirOptions{})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing source: %v", err)
	}
}

// Files move while the listing goes on: the first download starts before the listing's
// last page is asked for.
func TestDownloadDirOverlapsListing(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 2})
	for i := range 2500 {
		putObject(t, f, fmt.Sprintf("dir/%05d", i), []byte("x"))
	}
	res, err := m.DownloadDir(context.Background(), "bkt", "dir", t.TempDir(), DirOptions{})
	if err != nil || res.Done != 2500 {
		t.Fatalf("%+v, %v", res, err)
	}
	firstGet, lastList := -1, -1
	for i, c := range f.Calls() {
		switch {
		case c.Op == "GetObject" && firstGet < 0:
			firstGet = i
		case c.Op == "ListObjects":
			lastList = i
		}
	}
	if firstGet < 0 || lastList < 0 || firstGet > lastList {
		t.Fatalf("first GetObject at call %d, last listing page at %d: the transfers waited for the listing", firstGet, lastList)
	}
}

// A key that would write outside the destination fails alone; a listing refused ends the
// job with its error.
func TestDownloadDirBadKeysAndListing(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	putObject(t, f, "dir/ok", []byte("x"))
	putObject(t, f, "dir/../../escape", []byte("x"))
	dest := t.TempDir()
	res, err := m.DownloadDir(context.Background(), "bkt", "dir", dest, DirOptions{})
	var je *JobError
	if !errors.As(err, &je) || res.Failed != 1 || res.Done != 1 || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("%+v, %v; want the escaping key failed alone", res, err)
	}
	if _, err := os.Stat(filepath.Join(dest, "..", "..", "escape")); err == nil {
		t.Fatal("a key wrote outside the destination")
	}
	f.Fault = transfertest.On("ListObjects", 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	_, err = m.DownloadDir(context.Background(), "bkt", "dir", dest, DirOptions{})
	if !errors.As(err, &je) || !je.Stopped || !isCode(err, "AccessDenied") {
		t.Fatalf("refused listing: %v", err)
	}
}

// N shards together take every file exactly once, each with its own checkpoint.
func TestDirJobShards(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Journal: &resume.Store{Dir: t.TempDir()}})
	root, files := makeDir(t, 60)
	const n = 3
	total := 0
	for k := range n {
		res, err := m.UploadDir(context.Background(), root, "bkt", "up", DirOptions{Filter: Filter{Shard: Shard{Index: k, Count: n}}})
		if err != nil || res.Files == 0 || res.Files == len(files) {
			t.Fatalf("shard %d: %+v, %v; want a share of the files", k, res, err)
		}
		total += res.Done
	}
	if total != len(files) {
		t.Errorf("shards did %d files in all, want %d", total, len(files))
	}
	if n := countOp(f, "PutObject"); n != len(files) {
		t.Errorf("%d uploads, want each of the %d files once", n, len(files))
	}
	for rel := range files {
		if _, _, ok := f.Object("bkt", "up/"+rel); !ok {
			t.Errorf("up/%s missing", rel)
		}
	}
	if _, err := m.UploadDir(context.Background(), root, "bkt", "up", DirOptions{Filter: Filter{Shard: Shard{Index: 3, Count: 3}}}); err == nil {
		t.Error("shard 3 of 3 accepted")
	}
}

// The checkpoint follows the oldest file in flight, and only files in flight are held: a
// slow first file does not make the job keep every file that finished after it.
func TestJobCheckpointFollowsOldestInFlight(t *testing.T) {
	_, m, _ := fakeManager(t, Config{Journal: &resume.Store{Dir: t.TempDir()}})
	jr, err := m.cfg.Journal.CreateJob("j", resume.Header{Kind: resume.UploadDir})
	if err != nil {
		t.Fatal(err)
	}
	j := &job{m: m, op: "upload", journal: jr, cancel: func() {}, flushed: make(chan struct{})}
	ctx := context.Background()
	files := map[string]*inFlight{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		files[k] = j.begin(fileTask{rel: k})
	}
	held := func() (n int) {
		for s := j.oldest; s != nil; s = s.newer {
			n++
		}
		return n
	}
	for _, k := range []string{"b", "c", "d"} {
		j.settle(ctx, files[k], fileTask{rel: k}, Result{}, nil)
	}
	if j.upto != "" || held() != 2 {
		t.Fatalf("a still in flight: checkpoint %q, %d held; want none and 2", j.upto, held())
	}
	j.settle(ctx, files["a"], fileTask{rel: "a"}, Result{}, nil)
	if j.upto != "d" || held() != 1 {
		t.Fatalf("e in flight: checkpoint %q, %d held; want d and 1", j.upto, held())
	}
	j.settle(ctx, files["e"], fileTask{rel: "e"}, Result{}, nil)
	j.wait()
	if upto, files, _ := jr.Progress(); j.upto != "e" || held() != 0 || upto != "e" || files != 5 {
		t.Fatalf("all settled: checkpoint %q (journal %q, %d files), %d held", j.upto, upto, files, held())
	}
	jr.Close()
}

// A directory copy of small objects makes one request per object: the listing gave the
// size and ETag, and the CopyObject's answer verifies it.
func TestCopyDirOneRequestPerSmallObject(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 3})
	ctx := context.Background()
	root, files := makeDir(t, 12)
	if _, err := m.UploadDir(ctx, root, "bkt", "src", DirOptions{}); err != nil {
		t.Fatal(err)
	}
	before := len(f.Calls())
	res, err := m.CopyDir(ctx, "bkt", "src", "bkt", "dst", DirOptions{})
	if err != nil || res.Done != 12 {
		t.Fatalf("copy: %+v, %v", res, err)
	}
	ops := map[string]int{}
	for _, c := range f.Calls()[before:] {
		ops[c.Op]++
	}
	if ops["CopyObject"] != 12 || ops["ListObjects"] != 1 || len(ops) != 2 {
		t.Errorf("requests of the copy: %v; want the listing and 12 CopyObject, nothing else", ops)
	}
	for rel, data := range files {
		if got, _, ok := f.Object("bkt", "dst/"+rel); !ok || !bytes.Equal(got, data) {
			t.Fatalf("dst/%s: present %v, equal %v", rel, ok, bytes.Equal(got, data))
		}
	}
}

// A source replaced between its listing and its copy is copied as it is now, not refused
// and not mixed: the copy pinned to the listed ETag fails, and a HEAD finds the new one.
func TestCopyDirSourceReplacedAfterListing(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	ctx := context.Background()
	root, _ := makeDir(t, 3)
	if _, err := m.UploadDir(ctx, root, "bkt", "src", DirOptions{}); err != nil {
		t.Fatal(err)
	}
	replaced := []byte("the new version, longer than the old one was")
	var once sync.Once
	f.Fault = func(c transfertest.Call, _ int) transfertest.Fault {
		if c.Op == "CopyObject" && c.Key == "dst/f001" {
			once.Do(func() {
				if _, err := f.PutObject(ctx, "bkt", "src/f001", bytes.NewReader(replaced), int64(len(replaced)), "", "", minio.PutObjectOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		return transfertest.Fault{}
	}
	res, err := m.CopyDir(ctx, "bkt", "src", "bkt", "dst", DirOptions{})
	if err != nil || res.Done != 3 {
		t.Fatalf("copy: %+v, %v", res, err)
	}
	if got, _, _ := f.Object("bkt", "dst/f001"); !bytes.Equal(got, replaced) {
		t.Errorf("dst/f001 is %q; want the source's new version", got)
	}
	var heads int
	for _, c := range f.Calls() {
		if c.Op == "StatObject" && c.Key == "src/f001" {
			heads++
		}
	}
	if heads == 0 {
		t.Error("the replaced source was copied without a HEAD: its new version was never looked up")
	}
}

// headCounter counts the HEAD requests a Manager makes.
type headCounter struct {
	S3
	Lister
	heads atomic.Int64
}

func (h *headCounter) StatObject(ctx context.Context, bucket, key string, opts minio.StatObjectOptions) (minio.ObjectInfo, error) {
	h.heads.Add(1)
	return h.S3.StatObject(ctx, bucket, key, opts)
}

// On the real stores, a copied small object's CopyObject answer is its source's MD5, so
// the copies verify without a HEAD of either side.
func TestRealCopyDirVerifiedByTheAnswer(t *testing.T) {
	stores := testbed.RealStores(t)
	if len(stores) == 0 {
		t.Skip(testbed.NoStoresMessage)
	}
	root, files := makeDir(t, 20)
	for _, s := range stores {
		t.Run(s.Name, func(t *testing.T) {
			ctx := context.Background()
			counted := &headCounter{S3: s.Core, Lister: s.Core.Client}
			m := New(counted, Config{Endpoint: s.Endpoint})
			bucket := s.NewBucket(t)
			if _, err := m.UploadDir(ctx, root, bucket, "src", DirOptions{}); err != nil {
				t.Fatal(err)
			}
			counted.heads.Store(0)
			var c collect
			res, err := m.CopyDir(ctx, bucket, "src", bucket, "dst", c.opts(DirOptions{}))
			if err != nil || res.Done != len(files) {
				t.Fatalf("copy: %+v, %v", res, err)
			}
			if n := counted.heads.Load(); n != 0 {
				t.Errorf("%d HEAD requests for %d small copies; want none", n, len(files))
			}
			for _, fr := range c.files {
				if fr.Result.Checksum != ChecksumMD5 {
					t.Errorf("%s verified by %q; want md5", fr.Dst, fr.Result.Checksum)
				}
			}
			for rel, data := range files {
				obj, err := s.Core.Client.GetObject(ctx, bucket, "dst/"+rel, minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(obj)
				obj.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("dst/%s: %v, equal %v", rel, err, bytes.Equal(got, data))
				}
			}
		})
	}
}
