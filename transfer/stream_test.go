package transfer

import (
	"bytes"
	"context"
	"errors"
	"hash/crc64"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/internal/failpoint"
	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// onlyReader hides every method but Read, as stdin or a pipe offers.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestUploadStream100MiB(t *testing.T) { // 25 MiB with -short
	f, m, ev := fakeManager(t, Config{Concurrency: 4})
	size := 100 * mib
	if testing.Short() {
		size = 25 * mib
	}
	data := randomBytes(size)
	res, err := m.UploadStream(context.Background(), "bkt", "k", onlyReader{bytes.NewReader(data)}, UploadOptions{PartSize: 5 * mib})
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := f.Object("bkt", "k")
	if !bytes.Equal(got, data) {
		t.Fatal("stored object differs from the stream")
	}
	parts := size / (5 * mib)
	if res.Size != int64(size) || res.Parts != parts || res.BytesSent != res.Size || res.Checksum != ChecksumCRC32C {
		t.Fatalf("result %+v", res)
	}
	if n := countOp(f, "PutObjectPart"); n != parts+1 {
		t.Fatalf("%d parts sent, want %d and the empty probe", n, parts)
	}
	for _, e := range ev.list() {
		if e.Kind != Finished && e.Size != -1 {
			t.Fatalf("size is unknown until the stream ends: %+v", e)
		}
	}
	if last := ev.list()[len(ev.list())-1]; last.Size != res.Size || last.Parts != parts {
		t.Fatalf("Finished %+v", last)
	}
	ev.checkBytes(t, res.Size)
}

func TestUploadStreamWithinOnePartIsOnePut(t *testing.T) {
	for _, n := range []int{0, 1000, 5 * mib} {
		f, m, _ := fakeManager(t, Config{})
		data := randomBytes(n)
		res, err := m.UploadStream(context.Background(), "bkt", "k", onlyReader{bytes.NewReader(data)}, UploadOptions{PartSize: 5 * mib})
		if err != nil {
			t.Fatal(err)
		}
		got, _, _ := f.Object("bkt", "k")
		if !bytes.Equal(got, data) || res.Size != int64(n) || res.Parts != 0 {
			t.Fatalf("%d bytes: result %+v", n, res)
		}
		if calls := ops(f.Calls()); !slices.Equal(calls, []string{"PutObject"}) {
			t.Fatalf("%d bytes: calls %v", n, calls)
		}
	}
}

func TestUploadStreamPartsGrow(t *testing.T) {
	// S3's limits scaled down: 4 parts hold 75 MiB, growing 5, 10, 20, 40 MiB.
	f, m, _ := fakeManager(t, Config{Concurrency: 2})
	data := randomBytes(60 * mib)
	res, err := m.uploadStream(t.Context(), "bkt", "k", onlyReader{bytes.NewReader(data)}, UploadOptions{PartSize: 5 * mib}, 4, 75*mib)
	if err != nil || res.Parts != 4 {
		t.Fatalf("60 MiB in 4 growing parts: %v %+v", err, res)
	}
	if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) {
		t.Fatal("stored object differs from the stream")
	}

	data = randomBytes(75*mib + 1)
	_, err = m.uploadStream(t.Context(), "bkt", "k2", bytes.NewReader(data), UploadOptions{PartSize: 5 * mib}, 4, 75*mib)
	if err == nil || !strings.Contains(err.Error(), "the stream is longer than 75 MiB, the most S3's 4 parts can hold") ||
		!strings.Contains(err.Error(), "after reading 75 MiB of the stream") {
		t.Fatalf("err %v, want the limit named and how much was read", err)
	}
	if _, _, ok := f.Object("bkt", "k2"); ok || len(f.Uploads()) != 0 || countOp(f, "AbortMultipartUpload") != 1 {
		t.Fatalf("a stream over the limit must be aborted, never stored truncated; uploads %+v", f.Uploads())
	}
	if got := thousands(10000); got != "10,000" {
		t.Fatalf("thousands: %s", got)
	}
}

func TestUploadStreamExpectedSize(t *testing.T) {
	for _, tc := range []struct {
		name     string
		expected int64
		size     int
		parts    int
	}{
		// 400 GiB in 10,000 parts needs 41 MiB parts (41+41+18 MiB).
		{"as expected", 400 << 30, 100 * mib, 3},
		// More than expected: parts sized for 1 KiB (16 MiB, the default) go on.
		{"longer than expected", 1 << 10, 40 * mib, 3},
	} {
		f, m, _ := fakeManager(t, Config{Concurrency: 2})
		data := randomBytes(tc.size)
		res, err := m.uploadStream(t.Context(), "bkt", "k", bytes.NewReader(data), UploadOptions{ExpectedSize: tc.expected}, 10000, 5<<40)
		if err != nil || res.Parts != tc.parts {
			t.Fatalf("%s: %v %+v, want %d parts", tc.name, err, res, tc.parts)
		}
		if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) {
			t.Fatalf("%s: stored object differs", tc.name)
		}
	}
	_, m, _ := fakeManager(t, Config{})
	if _, err := m.UploadStream(t.Context(), "bkt", "k", bytes.NewReader(nil), UploadOptions{ExpectedSize: 6 << 40}); err == nil {
		t.Fatal("an expected size over 5 TiB must be refused")
	}
}

func TestUploadStreamMemoryBudgetUnderRetries(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 8})
	var inFlight, peak atomic.Int32
	slow := func(c transfertest.Call, attempt int) transfertest.Fault {
		if c.Op != "PutObjectPart" {
			return transfertest.Fault{}
		}
		return transfertest.Fault{Wait: func(ctx context.Context) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
			}
			return nil
		}}
	}
	f.Fault = transfertest.Faults(transfertest.OnPart(3, 1, transfertest.ResetMidBody()), slow)
	data := randomBytes(40 * mib)
	res, err := m.UploadStream(t.Context(), "bkt", "k", bytes.NewReader(data), UploadOptions{PartSize: 5 * mib, StreamMemory: 10 * mib})
	if err != nil || res.Parts != 8 {
		t.Fatalf("%v %+v", err, res)
	}
	if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) {
		t.Fatal("stored object differs")
	}
	if p := peak.Load(); p > 2 || p < 1 {
		t.Fatalf("%d parts in flight at once; a 10 MiB budget holds two 5 MiB buffers", p)
	}
}

func TestUploadStreamPartFailureAborts(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	f.Fault = transfertest.OnPart(2, 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	_, err := m.UploadStream(context.Background(), "bkt", "k", bytes.NewReader(randomBytes(20*mib)), UploadOptions{PartSize: 5 * mib, Checksum: ChecksumMD5})
	var e *Error
	if !errors.As(err, &e) || e.Op != "upload" || !isCode(err, "AccessDenied") {
		t.Fatalf("err %v", err)
	}
	calls := ops(f.Calls())
	if calls[0] != "NewMultipartUpload" || calls[len(calls)-1] != "AbortMultipartUpload" || len(f.Uploads()) != 0 {
		t.Fatalf("calls %v", calls)
	}
}

// failingReader yields n bytes, then fails.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestUploadStreamReadErrorAborts(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	boom := errors.New("boom")
	_, err := m.UploadStream(context.Background(), "bkt", "k", &failingReader{n: 12 * mib, err: boom}, UploadOptions{PartSize: 5 * mib})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want the stream's", err)
	}
	if len(f.Uploads()) != 0 || countOp(f, "AbortMultipartUpload") != 1 {
		t.Fatalf("uploads %+v", f.Uploads())
	}
}

func TestUploadStreamRetriesAPart(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 3})
	f.Fault = transfertest.OnPart(3, 1, transfertest.ResetMidBody())
	data := randomBytes(23 * mib)
	if _, err := m.UploadStream(context.Background(), "bkt", "k", bytes.NewReader(data), UploadOptions{PartSize: 5 * mib}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) {
		t.Fatal("object differs")
	}
}

func TestUploadStreamBadPartSize(t *testing.T) {
	_, m, _ := fakeManager(t, Config{})
	if _, err := m.UploadStream(context.Background(), "bkt", "k", bytes.NewReader(nil), UploadOptions{PartSize: 1}); err == nil {
		t.Fatal("a 1-byte part size must be refused")
	}
}

func TestPartBuffersBudget(t *testing.T) {
	b := newPartBuffers(20)
	ctx, cancel := context.WithCancel(context.Background())
	x, _ := b.get(ctx, 10)
	y, _ := b.get(ctx, 10)
	cancel()
	if _, err := b.get(ctx, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("a third buffer over a budget of 2: %v", err)
	}
	b.put(x[:3])
	if z, err := b.get(context.Background(), 10); err != nil || len(z) != 10 || &z[0] != &x[0] {
		t.Fatal("a returned buffer is reused at full size")
	}
	b.put(y)
	b.put(x)
	// Free buffers too small for 15 bytes give their room.
	if z, err := b.get(context.Background(), 15); err != nil || len(z) != 15 || b.used != 15 {
		t.Fatalf("%v, %d bytes used", err, b.used)
	}
	c := newPartBuffers(20)
	if big, err := c.get(context.Background(), 50); err != nil || len(big) != 50 {
		t.Fatal("a lone buffer over the budget is allowed")
	}
}

// orderedWriter records the bytes and fails the test if two Writes overlap.
type orderedWriter struct {
	buf    bytes.Buffer
	active atomic.Int32
	t      *testing.T
}

func (w *orderedWriter) Write(p []byte) (int, error) {
	if w.active.Add(1) != 1 {
		w.t.Error("concurrent Write")
	}
	defer w.active.Add(-1)
	return w.buf.Write(p)
}

func TestDownloadStreamInOrder(t *testing.T) {
	f, m, ev := fakeManager(t, Config{Concurrency: 4})
	data := randomBytes(2*mib + 7)
	putObject(t, f, "k", data)
	f.Fault = transfertest.On("GetObject", 2, transfertest.Fault{Err: transfertest.ConnReset(), MidBody: true})
	w := &orderedWriter{t: t}
	res, err := m.DownloadStream(context.Background(), "bkt", "k", w, DownloadOptions{PartSize: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.buf.Bytes(), data) || res.Checksum != ChecksumMD5 || res.Parts != 21 {
		t.Fatalf("stream differs or result %+v", res)
	}
	ev.checkBytes(t, res.Size)
}

func TestDownloadStreamFailure(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 3})
	putObject(t, f, "k", randomBytes(1*mib))
	f.Fault = failAfter(4)
	var w bytes.Buffer
	_, err := m.DownloadStream(context.Background(), "bkt", "k", &w, DownloadOptions{PartSize: 100 << 10})
	if !isCode(err, "AccessDenied") {
		t.Fatalf("err %v", err)
	}
	if w.Len() > 4*100<<10 {
		t.Fatalf("%d bytes written; only the ranges before the failure may be", w.Len())
	}

	f.Fault = replaceOn(f, 3, randomBytes(10))
	_, err = m.DownloadStream(context.Background(), "bkt", "k", io.Discard, DownloadOptions{PartSize: 100 << 10})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("err %v, want ErrSourceChanged", err)
	}
}

func TestDownloadStreamCorruptionIsReported(t *testing.T) {
	f, _, _ := fakeManager(t, Config{})
	putObject(t, f, "k", randomBytes(300<<10))
	m, _ := testManager(corrupting{f}, Config{})
	if _, err := m.DownloadStream(context.Background(), "bkt", "k", io.Discard, DownloadOptions{PartSize: 100 << 10}); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("err %v, want ErrIntegrity", err)
	}
}

func TestRealUploadStream(t *testing.T) {
	onStores(t, Config{Concurrency: 4}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		ctx := context.Background()
		for _, n := range []int{100, 17*mib + 5} {
			data := randomBytes(n)
			res, err := m.UploadStream(ctx, bucket, "k", onlyReader{bytes.NewReader(data)}, UploadOptions{PartSize: 5 * mib})
			if err != nil {
				t.Fatal(err)
			}
			var w bytes.Buffer
			if _, err := m.DownloadStream(ctx, bucket, "k", &w, DownloadOptions{}); err != nil || !bytes.Equal(w.Bytes(), data) {
				t.Fatalf("%d bytes: stored object differs (%v); result %+v", n, err, res)
			}
		}
		// Growth forced early (S3's limits scaled down): parts of 5, 10, 20 and 25 MiB,
		// which the store must take and the download verify part by part.
		data := randomBytes(60 * mib)
		res, err := m.uploadStream(ctx, bucket, "grown", onlyReader{bytes.NewReader(data)}, UploadOptions{PartSize: 5 * mib}, 4, 75*mib)
		if err != nil || res.Parts != 4 {
			t.Fatalf("grown parts: %v %+v", err, res)
		}
		var w bytes.Buffer
		if dres, err := m.DownloadStream(ctx, bucket, "grown", &w, DownloadOptions{}); err != nil || !bytes.Equal(w.Bytes(), data) || dres.Checksum == "" {
			t.Fatalf("grown parts: stored object differs or went unverified (%v, %+v)", err, dres)
		}
	})
}

func TestDownloadStreamEmptyObject(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	putObject(t, f, "empty", nil)
	var w bytes.Buffer
	res, err := m.DownloadStream(context.Background(), "bkt", "empty", &w, DownloadOptions{})
	if err != nil || w.Len() != 0 || res.Checksum != ChecksumMD5 || countOp(f, "GetObject") != 0 {
		t.Fatalf("err %v, %d bytes, result %+v", err, w.Len(), res)
	}
}

// spillWatch follows a stream's temporary files through its failpoints: how many were
// made, closed and open at once, and what TempDir held as each was made.
type spillWatch struct {
	dir      string
	onCreate func(created int) // if set, called as each file is made

	mu                          sync.Mutex
	created, closed, open, peak int
	listed                      []string // TempDir's entries when a file was made
}

func newSpillWatch(t *testing.T) *spillWatch { return &spillWatch{dir: t.TempDir()} }

func (w *spillWatch) ctx(ctx context.Context) context.Context {
	return failpoint.WithHook(ctx, func(name string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		switch name {
		case "spill-created":
			w.created++
			w.open++
			w.peak = max(w.peak, w.open)
			w.listed = append(w.listed, w.entries()...)
			if w.onCreate != nil {
				w.onCreate(w.created)
			}
		case "spill-closed":
			w.closed++
			w.open--
		}
	})
}

func (w *spillWatch) entries() []string {
	es, _ := os.ReadDir(w.dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// done checks that every temporary file was closed and TempDir is left empty.
func (w *spillWatch) done(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed != w.created {
		t.Errorf("%d temporary files made, %d closed", w.created, w.closed)
	}
	if names := w.entries(); len(names) != 0 {
		t.Errorf("TempDir holds %v after the upload", names)
	}
}

func TestUploadStreamSpillsPartsOverTheBudget(t *testing.T) {
	// Parts grow 5, 5, 10, 10, 20 MiB (S3's limits scaled down); two of 10 and 20 MiB do
	// not fit the 12 MiB budget, so those three go through temporary files.
	f, m, _ := fakeManager(t, Config{Concurrency: 4})
	w := newSpillWatch(t)
	data := randomBytes(47 * mib)
	opts := UploadOptions{PartSize: 5 * mib, StreamMemory: 12 * mib, TempDir: w.dir}
	res, err := m.uploadStream(w.ctx(t.Context()), "bkt", "k", onlyReader{bytes.NewReader(data)}, opts, 20, 1<<30)
	if err != nil || res.Parts != 5 {
		t.Fatalf("%v %+v", err, res)
	}
	if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) {
		t.Fatal("stored object differs from the stream")
	}
	if w.created != 3 {
		t.Errorf("%d parts spilled, want the three over the budget", w.created)
	}
	for _, name := range w.listed {
		if !strings.HasPrefix(name, "s3xfer-part-") {
			t.Errorf("TempDir holds %q", name)
		}
	}
	if len(w.listed) < 3 {
		t.Errorf("TempDir held %v as parts spilled, want each part's file", w.listed)
	}
	w.done(t)
}

// A part's file is gone from TempDir as soon as it is made (not on Windows), so a killed
// process leaves none; it stays readable and writable until released.
func TestTempPartsRemovedOnceOpen(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("an open file cannot be removed on Windows")
	}
	dir := t.TempDir()
	tp := newTempParts(dir, 2)
	f, err := tp.create(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Fatalf("TempDir holds %d entries while the part's file is open", len(es))
	}
	if _, err := f.WriteAt([]byte("part bytes"), 0); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 10)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "part bytes" {
		t.Fatalf("read back %q, %v", b, err)
	}
	tp.release(t.Context(), f)
	if _, err := f.Write(b); err == nil {
		t.Fatal("the file is still open after release")
	}
}

func TestUploadStreamSpillsAFewPartsAtATime(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 8})
	f.Fault = transfertest.On("PutObjectPart", 0, transfertest.Fault{Wait: func(ctx context.Context) error {
		select {
		case <-time.After(30 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	}})
	w := newSpillWatch(t)
	data := randomBytes(60 * mib)
	res, err := m.UploadStream(w.ctx(t.Context()), "bkt", "k", bytes.NewReader(data), UploadOptions{PartSize: 6 * mib, StreamMemory: 5 * mib, TempDir: w.dir})
	if err != nil || res.Parts != 10 {
		t.Fatalf("%v %+v", err, res)
	}
	if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) {
		t.Fatal("stored object differs from the stream")
	}
	if w.created != 11 || w.peak != StreamSpillParts { // and an empty one that found the end
		t.Errorf("%d temporary files, %d at once; want 11, %d at once", w.created, w.peak, StreamSpillParts)
	}
	w.done(t)
}

func TestUploadStreamSpilledPartsRetried(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 3})
	f.Fault = transfertest.Faults(
		transfertest.OnPart(2, 2, transfertest.ResetMidBody()),
		transfertest.OnPart(3, 1, transfertest.Fail(transfertest.S3Error("InternalError"))),
		transfertest.OnPart(4, 1, transfertest.ResetMidBody()))
	w := newSpillWatch(t)
	data := randomBytes(23 * mib)
	res, err := m.UploadStream(w.ctx(t.Context()), "bkt", "k", onlyReader{bytes.NewReader(data)}, UploadOptions{PartSize: 6 * mib, StreamMemory: 5 * mib, TempDir: w.dir})
	if err != nil || res.Parts != 4 {
		t.Fatalf("%v %+v", err, res)
	}
	if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) {
		t.Fatal("stored object differs from the stream")
	}
	if n := countOp(f, "PutObjectPart"); n != 4+4+1 {
		t.Errorf("%d PutObjectPart calls, want 4 parts, 4 retries and the probe", n)
	}
	if w.created == 0 {
		t.Error("no part spilled")
	}
	w.done(t)
}

func TestUploadStreamSpillFailureCleansUp(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name   string
		r      func() io.Reader
		fault  transfertest.Rule
		cancel int // cancel as the cancel-th file is made
		want   error
	}{
		{"a part fails", func() io.Reader { return bytes.NewReader(randomBytes(40 * mib)) },
			transfertest.OnPart(3, 0, transfertest.Fail(transfertest.S3Error("AccessDenied"))), 0, nil},
		{"the stream fails within a spilled part", func() io.Reader { return &failingReader{n: 15 * mib, err: boom} }, nil, 0, boom},
		{"cancelled", func() io.Reader { return bytes.NewReader(randomBytes(40 * mib)) }, nil, 3, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, m, _ := fakeManager(t, Config{Concurrency: 2})
			f.Fault = tc.fault
			w := newSpillWatch(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			w.onCreate = func(n int) {
				if n == tc.cancel {
					cancel()
				}
			}
			_, err := m.UploadStream(w.ctx(ctx), "bkt", "k", tc.r(), UploadOptions{PartSize: 6 * mib, StreamMemory: 5 * mib, TempDir: w.dir})
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && !isCode(err, "AccessDenied") {
				t.Fatalf("err %v", err)
			}
			if _, _, ok := f.Object("bkt", "k"); ok || len(f.Uploads()) != 0 || countOp(f, "AbortMultipartUpload") != 1 {
				t.Fatalf("the upload must be aborted; uploads %+v", f.Uploads())
			}
			if w.created < 2 {
				t.Errorf("%d temporary files; the failure must come after some", w.created)
			}
			w.done(t)
		})
	}
}

func TestUploadStreamTempDirUnusable(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  func(t *testing.T) string
		is   error
	}{
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }, fs.ErrNotExist},
		{"read-only", func(t *testing.T) string { return testbed.Tmpfs(t, "8m", true) }, syscall.EROFS},
		{"full", func(t *testing.T) string { return testbed.Tmpfs(t, "8m", false) }, syscall.ENOSPC}, // a 10 MiB part
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Parts 5, 5, 10 MiB: the third, over half the 12 MiB budget, spills after the
			// upload began.
			f, m, _ := fakeManager(t, Config{Concurrency: 2})
			w := &spillWatch{dir: tc.dir(t)}
			opts := UploadOptions{PartSize: 5 * mib, StreamMemory: 12 * mib, TempDir: w.dir}
			_, err := m.uploadStream(w.ctx(t.Context()), "bkt", "k", bytes.NewReader(randomBytes(30*mib)), opts, 20, 1<<30)
			var oe *OptionError
			if !errors.Is(err, tc.is) || !errors.As(err, &oe) || oe.Option != "TempDir" {
				t.Fatalf("err %v, want %v and the TempDir option named", err, tc.is)
			}
			wantErrSays(t, err, "a 10 MiB part is larger than half of StreamMemory", "temporary file in "+w.dir)
			if !strings.Contains(oe.Want, "room for 4 parts of 10 MiB") {
				t.Errorf("the option's hint %q does not say how much room", oe.Want)
			}
			if _, _, ok := f.Object("bkt", "k"); ok || len(f.Uploads()) != 0 || countOp(f, "AbortMultipartUpload") != 1 {
				t.Fatalf("the upload must be aborted; uploads %+v", f.Uploads())
			}
			w.done(t)
		})
	}
}

// A stream of several GiB on a real store, with growth forced early (S3's limits scaled
// down: 100 parts, sizes doubling every 10 from 5 MiB) so that its parts reach 160 MiB,
// and a 128 MiB budget so that those of 80 and 160 MiB go through temporary files. The
// bytes come from a generator, hashed as they are read, and the object's bytes are
// hashed as they are downloaded: neither side holds them in memory or on disk.
func TestRealUploadStreamSeveralGiB(t *testing.T) {
	if testing.Short() || raceEnabled() {
		t.Skip("uploads and downloads 3 GiB: minutes under -race, whose checks of this code the fake store's tests make")
	}
	onStores(t, Config{Concurrency: 4}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		if s.Name != "minio" {
			t.Skip("several GiB run on MinIO only, the fastest of the test stores")
		}
		const size = 3 << 30
		w := newSpillWatch(t)
		sent := crc64.New(crc64.MakeTable(crc64.ECMA))
		r := onlyReader{io.TeeReader(io.NewSectionReader(patternAt{size: size}, 0, size), sent)}
		opts := UploadOptions{PartSize: 5 * mib, StreamMemory: 128 * mib, TempDir: w.dir}
		start := time.Now()
		res, err := m.uploadStream(w.ctx(t.Context()), bucket, "big", r, opts, 100, 5<<30)
		if err != nil || res.Size != size || res.Parts != 60 {
			t.Fatalf("%v %+v", err, res)
		}
		t.Logf("uploaded %d parts in %s, %d through temporary files", res.Parts, time.Since(start), w.created)
		if w.created != 20 {
			t.Errorf("%d parts spilled, want the 20 of 80 and 160 MiB", w.created)
		}
		w.done(t)
		got := crc64.New(crc64.MakeTable(crc64.ECMA))
		start = time.Now()
		if dres, err := m.DownloadStream(t.Context(), bucket, "big", got, DownloadOptions{}); err != nil || dres.Checksum == "" {
			t.Fatalf("download: %v %+v", err, dres)
		}
		t.Logf("downloaded in %s", time.Since(start))
		if !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
			t.Fatal("stored object differs from the stream")
		}
	})
}

func TestUploadStreamBudgetOfOnePart(t *testing.T) {
	// Two 5 MiB parts do not fit 6 MiB: they spill rather than wait forever for the
	// first, which is not sent until the second is read.
	f, m, _ := fakeManager(t, Config{})
	w := newSpillWatch(t)
	data := randomBytes(12 * mib)
	res, err := m.UploadStream(w.ctx(bounded(t)), "bkt", "k", bytes.NewReader(data), UploadOptions{PartSize: 5 * mib, StreamMemory: 6 * mib, TempDir: w.dir})
	if err != nil || res.Parts != 3 {
		t.Fatalf("%v %+v", err, res)
	}
	if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) || w.created != 3 {
		t.Fatalf("stored object differs, or %d parts spilled, want 3", w.created)
	}
	w.done(t)
}

func TestUploadStreamSpillOutsideTheParts(t *testing.T) {
	// Spilled parts that never reach a part's send: a stream within one part goes up in
	// one PutObject, and a refused CreateMultipartUpload leaves its first two parts unsent.
	f, m, _ := fakeManager(t, Config{})
	w := newSpillWatch(t)
	data := randomBytes(3 * mib)
	opts := UploadOptions{PartSize: 5 * mib, StreamMemory: 6 * mib, TempDir: w.dir}
	if _, err := m.UploadStream(w.ctx(t.Context()), "bkt", "one", bytes.NewReader(data), opts); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Object("bkt", "one"); !bytes.Equal(got, data) || w.created != 1 {
		t.Fatalf("stored object differs, or %d parts spilled, want 1", w.created)
	}
	w.done(t)

	f.Fault = transfertest.On("NewMultipartUpload", 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	w = newSpillWatch(t)
	opts.TempDir = w.dir
	if _, err := m.UploadStream(w.ctx(t.Context()), "bkt", "two", bytes.NewReader(randomBytes(12*mib)), opts); !isCode(err, "AccessDenied") {
		t.Fatalf("err %v", err)
	}
	if w.created != 2 {
		t.Fatalf("%d parts spilled, want 2", w.created)
	}
	w.done(t)
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}
