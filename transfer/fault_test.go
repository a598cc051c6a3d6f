package transfer

// Fault injection between the engine and a real MinIO: internal/faultproxy sits on
// 127.0.0.1 in front of the test bed's MinIO and injects S3 errors, resets, stalls and
// store quirks; every transfer must end byte-identical with nothing left behind.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

const fpMiB = 1 << 20

// fpMinio returns the test bed's MinIO, or skips the test.
func fpMinio(t testing.TB) testbed.Store {
	t.Helper()
	for _, s := range testbed.RealStores(t) {
		if s.Name == "minio" {
			return s
		}
	}
	t.Skip("no MinIO among the real stores: " + testbed.NoStoresMessage)
	return testbed.Store{}
}

// fpBytes is n pseudo-random bytes from seed.
func fpBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 0xfa}).Read(b)
	return b
}

// syncBuffer is a bytes.Buffer safe for concurrent writes: the Manager's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// faultBed is MinIO, one bucket, a fault proxy in front of it and a client through the
// proxy. Objects are checked, and leftovers looked for, directly on MinIO.
type faultBed struct {
	t       testing.TB
	store   testbed.Store
	bucket  string
	proxy   *faultproxy.Proxy
	tr      *http.Transport
	core    *minio.Core // through the proxy
	log     *syncBuffer // the Manager's debug log
	journal *resume.Store
	dir     string // for local files
}

func newFaultBed(t testing.TB, rule faultproxy.Rule) *faultBed {
	t.Helper()
	st := fpMinio(t)
	b := &faultBed{t: t, store: st, bucket: st.NewBucket(t), log: &syncBuffer{},
		journal: &resume.Store{Dir: t.TempDir()}, dir: t.TempDir()}
	p, err := faultproxy.Start(faultproxy.Config{Target: st.Endpoint, Rule: rule,
		Credentials: &faultproxy.Credentials{AccessKey: st.AccessKey, SecretKey: st.SecretKey}, VirtualDomain: "s3.test"})
	if err != nil {
		t.Fatal(err)
	}
	b.proxy = p
	t.Cleanup(func() { p.Close() })
	b.core = b.client(ClientConfig{})
	return b
}

// client returns a client through the proxy; cc's endpoint and keys are filled in.
func (b *faultBed) client(cc ClientConfig) *minio.Core {
	b.t.Helper()
	if cc.Endpoint == "" {
		cc.Endpoint = b.proxy.URL()
	}
	if cc.Addressing == "" {
		cc.Addressing = AddressingPath
	}
	cc.AccessKey, cc.SecretKey = b.store.AccessKey, b.store.SecretKey
	if cc.Transport == nil {
		tr := newTransport(16, DefaultIdleTimeout)
		tr.Proxy = nil
		b.tr = tr
		b.t.Cleanup(tr.CloseIdleConnections)
		cc.Transport = tr
	}
	core, err := NewClient(cc)
	if err != nil {
		b.t.Fatal(err)
	}
	return core
}

// manager returns a Manager through the proxy, logging to b.log, with fast retries and,
// unless cfg says otherwise, a 1 s idle timeout and the bed's journal.
func (b *faultBed) manager(cfg Config) *Manager {
	return b.managerOn(b.core, cfg)
}

func (b *faultBed) managerOn(core *minio.Core, cfg Config) *Manager {
	if cfg.Endpoint == "" {
		cfg.Endpoint = b.proxy.URL()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.Retry == (RetryPolicy{}) {
		cfg.Retry = RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond}
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Second
	}
	if cfg.Journal == nil {
		cfg.Journal = b.journal
	}
	return New(core, cfg)
}

// file writes data to a new local file and returns its path.
func (b *faultBed) file(name string, data []byte) string {
	b.t.Helper()
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// put stores an object directly on MinIO.
func (b *faultBed) put(key string, data []byte) {
	b.t.Helper()
	_, err := b.store.Core.PutObject(context.Background(), b.bucket, key, bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{})
	if err != nil {
		b.t.Fatal(err)
	}
}

// object reads an object directly from MinIO.
func (b *faultBed) object(key string) ([]byte, error) {
	rc, _, _, err := b.store.Core.GetObject(context.Background(), b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// wantObject fails unless the object on MinIO is want, byte for byte.
func (b *faultBed) wantObject(key string, want []byte) {
	b.t.Helper()
	got, err := b.object(key)
	if err != nil {
		b.t.Fatalf("object %s: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		b.t.Fatalf("object %s: %d bytes (sha256 %x), want %d bytes (sha256 %x)", key, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// wantFile fails unless the local file holds want.
func (b *faultBed) wantFile(path string, want []byte) {
	b.t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		b.t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		b.t.Fatalf("%s: %d bytes (sha256 %x), want %d bytes (sha256 %x)", path, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// incomplete lists the bucket's incomplete multipart uploads, directly on MinIO.
func (b *faultBed) incomplete() []minio.ObjectMultipartInfo {
	b.t.Helper()
	res, err := b.store.Core.ListMultipartUploads(context.Background(), b.bucket, "", "", "", "", 1000)
	if err != nil {
		b.t.Fatal(err)
	}
	return res.Uploads
}

// journals lists the journal files left in the bed's journal dir.
func (b *faultBed) journals() []string {
	m, _ := filepath.Glob(filepath.Join(b.journal.Dir, "*.journal"))
	return m
}

// wantClean fails if an incomplete upload, a journal or a partial file is left.
func (b *faultBed) wantClean() {
	b.t.Helper()
	if ups := b.incomplete(); len(ups) != 0 {
		b.t.Errorf("incomplete uploads left behind: %+v", ups)
	}
	if j := b.journals(); len(j) != 0 {
		b.t.Errorf("journals left behind: %v", j)
	}
	if m, _ := filepath.Glob(filepath.Join(b.dir, "*"+PartialSuffix)); len(m) != 0 {
		b.t.Errorf("partial downloads left behind: %v", m)
	}
}

// faults counts the faults the proxy injected of the given kinds.
func (b *faultBed) faults(kinds ...faultproxy.Fault) int {
	n := 0
	for f, c := range b.proxy.Stats().Total().Faults {
		if slices.Contains(kinds, f) {
			n += c
		}
	}
	return n
}

// records returns the requests of op the proxy received.
func (b *faultBed) records(op faultproxy.Op) []faultproxy.Record {
	var out []faultproxy.Record
	for _, r := range b.proxy.Requests() {
		if r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// bounded is a context for one transfer: a transfer that hangs fails the test instead of
// hanging it.
func bounded(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func notHung(t testing.TB, ctx context.Context, err error) {
	t.Helper()
	if ctx.Err() != nil {
		t.Fatalf("the transfer hung until the test's deadline: %v", err)
	}
}

// workload is one kind of transfer the fault tests run.
type workload struct {
	name string
	run  func(b *faultBed, m *Manager, ctx context.Context) error
}

// uploadWork uploads a file of size bytes in 5 MiB parts (one PUT below 5 MiB) and checks
// the object.
func uploadWork(size int) workload {
	return workload{fmt.Sprintf("upload %d", size), func(b *faultBed, m *Manager, ctx context.Context) error {
		data := fpBytes(size, uint64(size))
		_, err := m.Upload(ctx, b.bucket, "up", b.file("up.bin", data), UploadOptions{PartSize: 5 * fpMiB})
		if err == nil {
			b.wantObject("up", data)
		}
		return err
	}}
}

// downloadWork downloads an object of size bytes in 4 MiB ranges, to a file or as a stream.
func downloadWork(size int, stream bool) workload {
	name := fmt.Sprintf("download %d", size)
	if stream {
		name += " stream"
	}
	return workload{name, func(b *faultBed, m *Manager, ctx context.Context) error {
		data := fpBytes(size, uint64(size)+1)
		b.put("down", data)
		if stream {
			var buf bytes.Buffer
			_, err := m.DownloadStream(ctx, b.bucket, "down", &buf, DownloadOptions{PartSize: 4 * fpMiB})
			if err == nil && !bytes.Equal(buf.Bytes(), data) {
				b.t.Fatalf("stream: %d bytes differ from the object's %d", buf.Len(), len(data))
			}
			return err
		}
		dst := filepath.Join(b.dir, "down.bin")
		_, err := m.Download(ctx, b.bucket, "down", dst, DownloadOptions{PartSize: 4 * fpMiB})
		if err == nil {
			b.wantFile(dst, data)
		}
		return err
	}}
}

// copyWork copies an object of size bytes, in 5 MiB part copies from 5 MiB on.
func copyWork(size int) workload {
	return workload{fmt.Sprintf("copy %d", size), func(b *faultBed, m *Manager, ctx context.Context) error {
		data := fpBytes(size, uint64(size)+2)
		b.put("src", data)
		_, err := m.Copy(ctx, b.bucket, "src", b.bucket, "dst", CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * fpMiB, Threshold: 5 * fpMiB}})
		if err == nil {
			b.wantObject("dst", data)
		}
		return err
	}}
}

// TestFaultsEachOnEveryFirstAttempt injects each fault into the first attempt of every
// request of each kind the engine sends (every part's, for parts): S3 errors, a 200 OK
// Complete carrying an error, a reset before the request reaches the store, and a reset
// after it took effect with the answer lost. Every transfer must still end byte-identical,
// with no incomplete upload, journal or partial file left behind.
func TestFaultsEachOnEveryFirstAttempt(t *testing.T) {
	fpMinio(t)
	upload, single := uploadWork(11*fpMiB+5), uploadWork(fpMiB)
	down, stream := downloadWork(9*fpMiB+7, false), downloadWork(9*fpMiB+7, true)
	cp, cpSingle := copyWork(11*fpMiB+3), copyWork(fpMiB+3)
	ops := []struct {
		op    faultproxy.Op
		works []workload
	}{
		{faultproxy.CreateMultipartUpload, []workload{upload, cp}},
		{faultproxy.UploadPart, []workload{upload}},
		{faultproxy.CompleteMultipartUpload, []workload{upload, cp}},
		{faultproxy.PutObject, []workload{single}},
		{faultproxy.HeadObject, []workload{down, cp}},
		{faultproxy.GetObject, []workload{down, stream}},
		{faultproxy.UploadPartCopy, []workload{cp}},
		{faultproxy.CopyObject, []workload{cpSingle}},
	}
	faults := []struct {
		name string
		act  faultproxy.Action
	}{
		{"503 SlowDown", faultproxy.SlowDown()},
		{"500 InternalError", faultproxy.InternalError()},
		{"reset mid-request", faultproxy.Action{Fault: faultproxy.ResetRequest, After: 64 << 10}},
		{"reset mid-answer", faultproxy.Action{Fault: faultproxy.ResetResponse}}, // After set below
		{"200 OK carrying an error", faultproxy.Action{Fault: faultproxy.CompleteError}},
	}
	for _, o := range ops {
		for _, f := range faults {
			if f.act.Fault == faultproxy.CompleteError && o.op != faultproxy.CompleteMultipartUpload {
				continue
			}
			for _, w := range o.works {
				t.Run(fmt.Sprintf("%s/%s/%s", o.op, f.name, w.name), func(t *testing.T) {
					act := f.act
					if act.Fault == faultproxy.ResetResponse && o.op == faultproxy.GetObject {
						act.After = 100 << 10 // within the body; elsewhere, right after the headers
					}
					b := newFaultBed(t, faultproxy.When(firstOfRange(o.op), 1, act))
					ctx := bounded(t)
					err := w.run(b, b.manager(Config{Concurrency: 4}), ctx)
					notHung(t, ctx, err)
					if err != nil {
						t.Fatalf("%v\nproxy:\n%s", err, b.proxy.Stats())
					}
					if b.faults(f.act.Fault) == 0 {
						t.Fatalf("no %s was injected into %s: the test proves nothing", f.name, o.op)
					}
					b.wantClean()
				})
			}
		}
	}
}

// firstOfRange matches the requests of op; of GetObject only those for a whole range (a
// retry resumes mid-range, and a fault on every resumption would be a connection that
// dies every few KiB, which no retry policy outlasts).
func firstOfRange(op faultproxy.Op) func(*faultproxy.Request) bool {
	return func(r *faultproxy.Request) bool {
		if r.Op != op {
			return false
		}
		if op == faultproxy.GetObject {
			from, _, _ := strings.Cut(strings.TrimPrefix(r.Header.Get("Range"), "bytes="), "-")
			n, err := strconv.ParseInt(from, 10, 64)
			return err == nil && n%(4*fpMiB) == 0
		}
		return true
	}
}

// TestFaultsStallIsCutAndRetried stalls one request of each kind for good (the proxy
// holds it until the test ends): only the engine's idle watchdog can end it, and the
// transfer must then retry and finish byte-identical. Upload parts and ranged download
// GETs stall mid-body; the others stall before any answer.
func TestFaultsStallIsCutAndRetried(t *testing.T) {
	fpMinio(t)
	range2 := func(r *faultproxy.Request) bool { // the second 4 MiB range, first try
		return r.Op == faultproxy.GetObject && strings.HasPrefix(r.Header.Get("Range"), fmt.Sprintf("bytes=%d-", 4*fpMiB)) && r.Attempt == 1
	}
	part2 := func(r *faultproxy.Request) bool { return r.Part() == 2 && r.Attempt == 1 }
	first := func(op faultproxy.Op) func(*faultproxy.Request) bool {
		return func(r *faultproxy.Request) bool { return r.Op == op && r.Attempt == 1 }
	}
	cases := []struct {
		name  string
		match func(*faultproxy.Request) bool
		act   faultproxy.Action
		work  workload
	}{
		{"upload part mid-body", part2, faultproxy.Action{Fault: faultproxy.StallRequest, After: fpMiB}, uploadWork(11 * fpMiB)},
		{"upload part answer withheld", part2, faultproxy.Action{Fault: faultproxy.StallResponse}, uploadWork(11 * fpMiB)},
		{"single PUT mid-body", first(faultproxy.PutObject), faultproxy.Action{Fault: faultproxy.StallRequest, After: 300 << 10}, uploadWork(2 * fpMiB)},
		{"ranged GET before its answer", range2, faultproxy.Action{Fault: faultproxy.StallRequest}, downloadWork(10*fpMiB, false)},
		{"ranged GET mid-body", range2, faultproxy.Action{Fault: faultproxy.StallResponse, After: 256 << 10}, downloadWork(10*fpMiB, false)},
		{"streamed ranged GET mid-body", range2, faultproxy.Action{Fault: faultproxy.StallResponse, After: 256 << 10}, downloadWork(10*fpMiB, true)},
		{"CreateMultipartUpload", first(faultproxy.CreateMultipartUpload), faultproxy.Action{Fault: faultproxy.StallRequest}, uploadWork(11 * fpMiB)},
		{"CompleteMultipartUpload", first(faultproxy.CompleteMultipartUpload), faultproxy.Action{Fault: faultproxy.StallRequest}, uploadWork(11 * fpMiB)},
		// The store acts, the answer never comes: a stray upload to clean up, a completion to recognise.
		{"CreateMultipartUpload answer withheld", first(faultproxy.CreateMultipartUpload), faultproxy.Action{Fault: faultproxy.StallResponse}, uploadWork(11 * fpMiB)},
		{"CompleteMultipartUpload answer withheld", first(faultproxy.CompleteMultipartUpload), faultproxy.Action{Fault: faultproxy.StallResponse}, copyWork(11 * fpMiB)},
		{"HeadObject", first(faultproxy.HeadObject), faultproxy.Action{Fault: faultproxy.StallRequest}, downloadWork(5*fpMiB, false)},
		{"UploadPartCopy", part2, faultproxy.Action{Fault: faultproxy.StallRequest}, copyWork(11 * fpMiB)},
		{"CopyObject", first(faultproxy.CopyObject), faultproxy.Action{Fault: faultproxy.StallRequest}, copyWork(fpMiB)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newFaultBed(t, faultproxy.When(tc.match, 0, tc.act))
			ctx := bounded(t)
			err := tc.work.run(b, b.manager(Config{Concurrency: 4, IdleTimeout: 700 * time.Millisecond}), ctx)
			notHung(t, ctx, err)
			if err != nil {
				t.Fatalf("%v\nproxy:\n%s", err, b.proxy.Stats())
			}
			if n := b.faults(tc.act.Fault); n != 1 {
				t.Fatalf("%d stalls injected, want 1", n)
			}
			if !strings.Contains(b.log.String(), "request stalled") {
				t.Errorf("the log does not show the watchdog cutting the stalled request:\n%s", b.log.String())
			}
			b.wantClean()
		})
	}
	// The retry of a range stalled mid-body asks only for what had not arrived.
	t.Run("retry resumes within the range", func(t *testing.T) {
		b := newFaultBed(t, faultproxy.When(range2, 0, faultproxy.Action{Fault: faultproxy.StallResponse, After: 256 << 10}))
		ctx := bounded(t)
		err := downloadWork(10*fpMiB, false).run(b, b.manager(Config{Concurrency: 1, IdleTimeout: 700 * time.Millisecond}), ctx)
		notHung(t, ctx, err)
		if err != nil {
			t.Fatal(err)
		}
		var ranges []string
		for _, r := range b.records(faultproxy.GetObject) {
			ranges = append(ranges, r.Header.Get("Range"))
		}
		want := fmt.Sprintf("bytes=%d-%d", 4*fpMiB+256<<10, 8*fpMiB-1)
		if !slices.Contains(ranges, want) {
			t.Errorf("GET ranges %v: want the retry to ask for %s", ranges, want)
		}
	})
}

// TestQuirkGatewayWithoutMultipart is seed 003's gateway: NotImplemented to every
// CreateMultipartUpload. An upload falls back to one PUT and says so; the Manager
// remembers, so the next upload does not ask again; over 5 GiB it fails at once with a
// clear message.
func TestQuirkGatewayWithoutMultipart(t *testing.T) {
	b := newFaultBed(t, faultproxy.When(faultproxy.IsOp(faultproxy.CreateMultipartUpload), 0, faultproxy.NotImplemented()))
	ev := &events{}
	m := b.manager(Config{Progress: ev})
	ctx := bounded(t)
	for i, size := range []int{12 * fpMiB, 7 * fpMiB} {
		data := fpBytes(size, uint64(i))
		key := fmt.Sprintf("gw-%d", i)
		res, err := m.Upload(ctx, b.bucket, key, b.file(key, data), UploadOptions{PartSize: 5 * fpMiB})
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		if res.Parts != 0 || res.Size != int64(size) {
			t.Errorf("upload %d: %+v, want one PUT of %d bytes", i, res, size)
		}
		b.wantObject(key, data)
	}
	s := b.proxy.Stats()
	if c, p := s[faultproxy.CreateMultipartUpload], s[faultproxy.PutObject]; c == nil || c.Requests != 1 || p == nil || p.Requests != 2 {
		t.Errorf("want 1 CreateMultipartUpload (the first upload finds out) and 2 PUTs:\n%s", s)
	}
	if n := ev.count("does not support multipart uploads"); n != 1 {
		t.Errorf("%d notices of the fallback, want 1: %v", n, ev.notices())
	}
	b.wantClean()

	// A copy falls back the same way, to one CopyObject (a fresh Manager finds out again).
	b.proxy.Reset()
	if err := copyWork(12*fpMiB).run(b, b.manager(Config{}), ctx); err != nil {
		t.Fatalf("copy without multipart: %v", err)
	}
	if s := b.proxy.Stats(); s[faultproxy.CopyObject] == nil || s[faultproxy.CopyObject].Requests != 1 || s[faultproxy.UploadPartCopy] != nil {
		t.Errorf("want one CopyObject and no part copies:\n%s", s)
	}
	b.wantClean()

	// Over 5 GiB: no PUT can carry it. Nothing is read or sent.
	m2 := b.manager(Config{})
	b.proxy.Reset()
	huge := int64(5<<30) + 1
	_, err := m2.UploadReaderAt(ctx, b.bucket, "huge", fpZeros{}, huge, UploadOptions{})
	if err == nil || !strings.Contains(err.Error(), "does not support multipart") || !strings.Contains(err.Error(), "5 GiB") {
		t.Fatalf("over 5 GiB without multipart: %v; want a clear error naming both", err)
	}
	if s := b.proxy.Stats(); s[faultproxy.PutObject] != nil || s[faultproxy.UploadPart] != nil {
		t.Errorf("bytes were sent for an upload that cannot succeed:\n%s", s)
	}
	b.wantClean()
}

// fpZeros is an endless source of zeros for ReadAt.
type fpZeros struct{}

func (fpZeros) ReadAt(p []byte, _ int64) (int, error) { clear(p); return len(p), nil }

// reset forgets the events recorded so far.
func (e *events) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = nil
}

// wantCounts checks the PartDone events of one transfer: bytes and parts acknowledged
// only grow, never pass the totals, and reach them.
func (e *events) wantCounts(t *testing.T, size int64, parts int) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	var bytes int64
	done := 0
	for _, ev := range e.all {
		if ev.Kind != PartDone {
			continue
		}
		if ev.Bytes < bytes || ev.PartsDone < done || ev.Bytes > size || ev.PartsDone > parts {
			t.Fatalf("progress went from %d bytes, %d parts to %d bytes, %d parts (of %d, %d)", bytes, done, ev.Bytes, ev.PartsDone, size, parts)
		}
		bytes, done = ev.Bytes, ev.PartsDone
	}
	if bytes != size || done != parts {
		t.Errorf("progress ended at %d bytes, %d parts; want %d, %d", bytes, done, size, parts)
	}
}

func (e *events) count(sub string) int {
	n := 0
	for _, m := range e.notices() {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// TestQuirkStoreIgnoresChecksums: the proxy strips x-amz-checksum-* both ways, so the
// store neither sees nor echoes them. Auto integrity probes CRC32C with an empty part 1 on
// the first upload, falls back to Content-MD5 (which MinIO verifies), and the Manager remembers:
// the second upload sends no CRC32C and no probe.
func TestQuirkStoreIgnoresChecksums(t *testing.T) {
	b := newFaultBed(t, faultproxy.Every(faultproxy.Action{StripChecksums: true}))
	ev := &events{}
	m := b.manager(Config{Concurrency: 4, Progress: ev})
	ctx := bounded(t)
	crcParts := func() (trailer, crc, all int, part1 int) {
		for _, r := range b.records(faultproxy.UploadPart) {
			if r.Part() == markerPart {
				continue // the marker that lets another machine resume (anywhere.go)
			}
			all++
			if r.Part() == 1 {
				part1++
			}
			if r.Header.Get("X-Amz-Trailer") != "" {
				trailer++ // the trailing-checksum probe (its CRC32C after the body)
				continue
			}
			if r.Header.Get("X-Amz-Checksum-Crc32c") != "" {
				crc++
				if r.ContentLength != 0 {
					t.Errorf("the CRC32C probe carried %d bytes; want an empty part", r.ContentLength)
				}
			}
			if r.Header.Get("X-Amz-Checksum-Crc32c") == "" && r.Header.Get("Content-Md5") == "" {
				t.Errorf("part %d went with neither CRC32C nor Content-MD5", r.Part())
			}
		}
		return
	}
	for i := range 2 {
		data := fpBytes(16*fpMiB, uint64(10+i))
		key := fmt.Sprintf("ignores-%d", i)
		b.proxy.Reset()
		ev.reset()
		res, err := m.Upload(ctx, b.bucket, key, b.file(key, data), UploadOptions{PartSize: 5 * fpMiB})
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		if res.Checksum != ChecksumMD5 {
			t.Errorf("upload %d verified by %q, want md5", i, res.Checksum)
		}
		if res.BytesSent != int64(len(data)) || res.Parts != 4 {
			t.Errorf("upload %d: %d bytes in %d parts acknowledged, want %d in 4 (the probe not counted)", i, res.BytesSent, res.Parts, len(data))
		}
		ev.wantCounts(t, int64(len(data)), 4)
		b.wantObject(key, data)
		trailer, crc, all, part1 := crcParts()
		switch {
		case i == 0 && (trailer != 1 || crc != 1 || all != 6 || part1 != 3):
			t.Errorf("first upload: %d of %d part requests with a CRC32C trailer, %d with its header, part 1 sent %d times; want the two probes: 1 and 1 of 6, part 1 three times", trailer, all, crc, part1)
		case i == 1 && (trailer != 0 || crc != 0 || all != 4):
			t.Errorf("second upload: %d and %d of %d part requests with CRC32C; want 0 of 4: the store was probed again", trailer, crc, all)
		}
		if i == 1 {
			for _, r := range b.records(faultproxy.CreateMultipartUpload) {
				if r.Header.Get("X-Amz-Checksum-Algorithm") != "" {
					t.Errorf("second upload created with checksum algorithm %q", r.Header.Get("X-Amz-Checksum-Algorithm"))
				}
			}
		}
	}
	if !strings.Contains(b.log.String(), "does not verify CRC32C") {
		t.Errorf("the fallback is not logged:\n%s", b.log.String())
	}
	b.wantClean()
}

// TestQuirkSignatureV2: MinIO accepts AWS signature version 2, as old Ceph RGW and KS3
// require it (seed 001 shows "Authorization: AWS key:sig"): multipart and single uploads,
// a ranged download and a multipart copy all work with it.
func TestQuirkSignatureV2(t *testing.T) {
	b := newFaultBed(t, nil)
	m := b.managerOn(b.client(ClientConfig{SignatureV2: true}), Config{Concurrency: 4})
	ctx := bounded(t)
	for _, w := range []workload{uploadWork(11 * fpMiB), uploadWork(fpMiB), downloadWork(9*fpMiB, false), copyWork(11 * fpMiB)} {
		if err := w.run(b, m, ctx); err != nil {
			t.Fatalf("%s with SigV2: %v", w.name, err)
		}
	}
	for _, r := range b.proxy.Requests() {
		if a := r.Header.Get("Authorization"); !strings.HasPrefix(a, "AWS "+b.store.AccessKey+":") {
			t.Fatalf("%s request signed %q, want SigV2 (AWS key:signature)", r.Op, a)
		}
	}
	b.wantClean()
}

// TestQuirkAddressing: path style puts the bucket in the path; virtual-host style in the
// host name, "BUCKET.s3.test", which a custom dialer sends to the proxy (the proxy
// forwards it path-style, re-signed, to MinIO). Uploads, downloads and copies work both
// ways, and every request was addressed as asked.
func TestQuirkAddressing(t *testing.T) {
	b := newFaultBed(t, nil)
	_, port, _ := net.SplitHostPort(b.proxy.Addr())
	vtr := newTransport(16, DefaultIdleTimeout)
	vtr.Proxy = nil
	vtr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); host == "s3.test" || strings.HasSuffix(host, ".s3.test") {
			addr = b.proxy.Addr()
		}
		return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	}
	t.Cleanup(vtr.CloseIdleConnections)
	for _, tc := range []struct {
		style Addressing
		cc    ClientConfig
	}{
		{AddressingPath, ClientConfig{Addressing: AddressingPath}},
		{AddressingVirtual, ClientConfig{Endpoint: "http://s3.test:" + port, Addressing: AddressingVirtual, Transport: vtr}},
	} {
		t.Run(string(tc.style), func(t *testing.T) {
			b.t = t
			b.proxy.Reset()
			m := b.managerOn(b.client(tc.cc), Config{Concurrency: 4, Endpoint: tc.cc.Endpoint})
			ctx := bounded(t)
			for _, w := range []workload{uploadWork(11 * fpMiB), uploadWork(fpMiB), downloadWork(9*fpMiB, false), copyWork(11 * fpMiB)} {
				if err := w.run(b, m, ctx); err != nil {
					t.Fatalf("%s, %s addressing: %v", w.name, tc.style, err)
				}
			}
			recs := b.proxy.Requests()
			if len(recs) == 0 {
				t.Fatal("no requests went through the proxy")
			}
			for _, r := range recs {
				virtual := r.Host == b.bucket+".s3.test:"+port && !strings.HasPrefix(r.Path, "/"+b.bucket)
				path := strings.HasPrefix(r.Path, "/"+b.bucket+"/") && !strings.Contains(r.Host, b.bucket)
				if (tc.style == AddressingVirtual && (!virtual || !r.VirtualHost)) || (tc.style == AddressingPath && !path) {
					t.Fatalf("%s request to host %q path %q is not %s-style", r.Op, r.Host, r.Path, tc.style)
				}
			}
			b.wantClean()
		})
	}
}

// TestQuirkClockSkew: a store whose clock is 20 minutes ahead refuses every request with
// RequestTimeTooSkewed. The engine does not retry it and reports it as such (the CLI
// turns it into the measured skew: cmd/s3xfer/fault_test.go).
func TestQuirkClockSkew(t *testing.T) {
	b := newFaultBed(t, faultproxy.Every(faultproxy.Skewed(20*time.Minute)))
	m := b.manager(Config{})
	ctx := bounded(t)
	_, err := m.Upload(ctx, b.bucket, "skewed", b.file("skewed", fpBytes(1000, 3)), UploadOptions{})
	var te *Error
	if !isCode(err, "RequestTimeTooSkewed") || !errors.As(err, &te) || te.Key != "skewed" {
		t.Fatalf("want a transfer.Error with RequestTimeTooSkewed, got %v", err)
	}
	if n := b.proxy.Stats().Total().Requests; n != 1 {
		t.Errorf("%d requests: a skewed clock must not be retried", n)
	}
}

// TestFaultsLostCreateLeavesNoOrphan: the store creates an upload but the answer is lost;
// the retry creates another. The first must not stay behind as an incomplete upload that
// no journal points at.
func TestFaultsLostCreateLeavesNoOrphan(t *testing.T) {
	b := newFaultBed(t, faultproxy.When(faultproxy.IsOp(faultproxy.CreateMultipartUpload), 2, faultproxy.Action{Fault: faultproxy.ResetResponse}))
	m := b.manager(Config{})
	ctx := bounded(t)
	data := fpBytes(11*fpMiB, 4)
	if _, err := m.Upload(ctx, b.bucket, "lost", b.file("lost", data), UploadOptions{PartSize: 5 * fpMiB}); err != nil {
		t.Fatal(err)
	}
	b.wantObject("lost", data)
	if n := len(b.records(faultproxy.CreateMultipartUpload)); n != 3 {
		t.Fatalf("%d CreateMultipartUpload requests, want 3 (two answers lost)", n)
	}
	b.wantClean()
}

// TestFaultsCreateFailsThenRunsAgain: every CreateMultipartUpload of a first run loses its
// answer (the store creates the uploads), so the run fails; its journal of intent stays.
// The same transfer run again in the same process takes that journal over, cleans up
// the uploads the first run left and completes.
func TestFaultsCreateFailsThenRunsAgain(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	b := newFaultBed(t, func(r *faultproxy.Request) faultproxy.Action {
		if failing.Load() && r.Op == faultproxy.CreateMultipartUpload {
			return faultproxy.Action{Fault: faultproxy.ResetResponse}
		}
		return faultproxy.Action{}
	})
	m := b.manager(Config{Retry: RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}})
	ctx := bounded(t)
	data := fpBytes(11*fpMiB, 5)
	src := b.file("again", data)
	_, err := m.Upload(ctx, b.bucket, "again", src, UploadOptions{PartSize: 5 * fpMiB})
	var te *Error
	if err == nil || !errors.As(err, &te) {
		t.Fatalf("every Create answer lost: want a transfer.Error, got %v", err)
	}
	if n := len(b.incomplete()); n != 3 {
		t.Fatalf("%d uploads on the store after 3 lost answers, want 3", n)
	}
	if n := len(b.journals()); n != 1 {
		t.Fatalf("%d journals after the failed run, want the journal of intent", n)
	}
	failing.Store(false)
	if _, err := m.Upload(ctx, b.bucket, "again", src, UploadOptions{PartSize: 5 * fpMiB}); err != nil {
		t.Fatalf("the same upload run again: %v", err)
	}
	b.wantObject("again", data)
	b.wantClean()
}

// motoStore returns the moto_server of S3XFER_TEST_MOTO_{ENDPOINT,ACCESS_KEY,SECRET_KEY}
// (scripts/test.sh starts one), or skips; with S3XFER_REQUIRE_MOTO=1 it fails instead.
// moto is not in S3XFER_TEST_STORES: it lacks too much for the whole suite.
func motoStore(t testing.TB) testbed.Store {
	t.Helper()
	ep := os.Getenv("S3XFER_TEST_MOTO_ENDPOINT")
	if ep == "" {
		if os.Getenv("S3XFER_REQUIRE_MOTO") == "1" {
			t.Fatal("S3XFER_REQUIRE_MOTO=1 but S3XFER_TEST_MOTO_ENDPOINT is not set")
		}
		t.Skip("no moto_server: scripts/test.sh starts one and sets S3XFER_TEST_MOTO_ENDPOINT")
	}
	st := testbed.Store{Name: "moto", Endpoint: ep, AccessKey: os.Getenv("S3XFER_TEST_MOTO_ACCESS_KEY"), SecretKey: os.Getenv("S3XFER_TEST_MOTO_SECRET_KEY")}
	core, err := NewClient(ClientConfig{Endpoint: ep, AccessKey: st.AccessKey, SecretKey: st.SecretKey, Addressing: AddressingPath})
	if err != nil {
		t.Fatal(err)
	}
	st.Core = core
	return st
}

// motoDeviations are the conformance subtests moto fails, each at its first deviation
// from S3 (docs/STORES.md lists them). A subtest stops at its first failure, so the
// checks after it are not run on moto.
var motoDeviations = map[string]string{
	"Multipart":       "Complete with parts out of order: succeeded",
	"MultipartErrors": "PutObjectPart after Abort: got 500",
	"ContentMD5":      "PutObject with a wrong Content-MD5: succeeded",
	"CopyObject":      "CopyObject with a wrong x-amz-copy-source-if-match: succeeded",
	"CopyObjectPart":  "CopyObjectPart with a wrong x-amz-copy-source-if-match: succeeded",
}

// TestConformanceMoto runs the conformance suite on moto_server, a third S3
// implementation, in a child process (a subtest cannot be excused from failing): every
// subtest must pass but those in motoDeviations, which must fail exactly as documented,
// so docs/STORES.md goes stale loudly if moto changes.
func TestConformanceMoto(t *testing.T) {
	motoStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestConformanceMotoChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "S3XFER_MOTO_CHILD=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the suite on moto did not finish: %v\n%s", err, out)
	}
	passed, failed := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		for prefix, set := range map[string]map[string]bool{"--- PASS: TestConformanceMotoChild/": passed, "--- FAIL: TestConformanceMotoChild/": failed} {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				set[strings.Fields(rest)[0]] = true
			}
		}
	}
	for name, msg := range motoDeviations {
		if !failed[name] {
			t.Errorf("%s passes on moto now: remove it from motoDeviations and docs/STORES.md", name)
		} else if !strings.Contains(string(out), msg) {
			t.Errorf("%s fails on moto, but not with %q: update motoDeviations and docs/STORES.md", name, msg)
		}
	}
	for name := range failed {
		if _, known := motoDeviations[name]; !known {
			t.Errorf("%s fails on moto: a new deviation", name)
		}
	}
	if len(passed) < 8 {
		t.Errorf("only %d subtests passed on moto: %v", len(passed), passed)
	}
	if t.Failed() {
		t.Logf("the suite on moto:\n%s", out)
	}
}

// TestConformanceMotoChild is TestConformanceMoto's child: the suite itself.
func TestConformanceMotoChild(t *testing.T) {
	if os.Getenv("S3XFER_MOTO_CHILD") != "1" {
		t.Skip("run by TestConformanceMoto")
	}
	st := motoStore(t)
	transfertest.Run(t, func(t *testing.T) (transfertest.S3, string) { return st.Core, st.NewBucket(t) })
}

// TestMotoRoundTrip: the engine's transfers on moto. moto neither echoes CRC32C nor
// checks Content-MD5, so auto integrity falls back to MD5, which only the ETag comparison
// then verifies.
func TestMotoRoundTrip(t *testing.T) {
	st := motoStore(t)
	bucket := st.NewBucket(t)
	jdir := t.TempDir()
	m := New(st.Core, Config{Endpoint: st.Endpoint, Journal: &resume.Store{Dir: jdir}, Concurrency: 4})
	ctx := bounded(t)
	data := fpBytes(11*fpMiB+9, 21)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(what string, res Result, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s on moto: %v", what, err)
		}
		rc, _, _, err := st.Core.GetObject(ctx, bucket, res.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s on moto: the object differs (%d bytes, %v)", what, len(got), err)
		}
	}
	res, err := m.Upload(ctx, bucket, "up", src, UploadOptions{PartSize: 5 * fpMiB})
	check("multipart upload", res, err)
	if res.Checksum != ChecksumMD5 || res.BytesSent != int64(len(data)) {
		t.Errorf("upload on moto: %+v; want md5 (moto does not echo CRC32C) and every byte counted once", res)
	}
	res, err = m.UploadStream(ctx, bucket, "stream", bytes.NewReader(data), UploadOptions{PartSize: 5 * fpMiB})
	check("stream upload", res, err)
	res, err = m.Copy(ctx, bucket, "up", bucket, "copy", CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * fpMiB, Threshold: 5 * fpMiB}})
	check("multipart copy", res, err)
	res, err = m.Copy(ctx, bucket, "up", bucket, "copy1", CopyOptions{})
	check("single copy", res, err)
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := m.Download(ctx, bucket, "copy", dst, DownloadOptions{PartSize: 4 * fpMiB}); err != nil {
		t.Fatalf("download on moto: %v", err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("download on moto: the file differs")
	}
	var buf bytes.Buffer
	if _, err := m.DownloadStream(ctx, bucket, "stream", &buf, DownloadOptions{PartSize: 4 * fpMiB}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("stream download on moto: %v", err)
	}
	if inc, err := m.ListIncomplete(ctx, bucket, ""); err != nil || len(inc) != 0 {
		t.Errorf("incomplete uploads on moto: %+v, %v", inc, err)
	}
	if m, _ := filepath.Glob(filepath.Join(jdir, "*.journal")); len(m) != 0 {
		t.Errorf("journals left: %v", m)
	}
}

// TestSecretsNeverInOutputs runs succeeding, failing and interrupted transfers (through
// faults, with a wrong secret, against a skewed clock) and scans everything the library
// produces, its debug log, progress events, errors and journal files, for the secret
// key, the real one and a distinctive wrong one. Journals are 0600 in a 0700 directory.
func TestSecretsNeverInOutputs(t *testing.T) {
	const canary = "s3xfer-CANARY-secret-5f1e2d3c4b5a"
	var failing atomic.Bool
	b := newFaultBed(t, func(r *faultproxy.Request) faultproxy.Action {
		if failing.Load() && r.Op == faultproxy.UploadPart && r.Part() == 2 {
			return faultproxy.InternalError()
		}
		return faultproxy.Random(3, faultproxy.Rates{Fail: 0.1, Reset: 0.05})(r)
	})
	ev := &events{}
	var errs []string
	jdir := filepath.Join(t.TempDir(), "journals")
	cfg := Config{Concurrency: 2, Progress: ev, Journal: &resume.Store{Dir: jdir}, Retry: RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond}}
	m := b.manager(cfg)
	ctx := bounded(t)
	data := fpBytes(12*fpMiB, 30)
	src := b.file("src", data)
	record := func(_ Result, err error) {
		if err != nil {
			errs = append(errs, err.Error(), fmt.Sprintf("%+v", err))
		}
	}
	// Fails for good at part 2: its journal stays, and is checked below.
	failing.Store(true)
	record(m.Upload(ctx, b.bucket, "k", src, UploadOptions{PartSize: 5 * fpMiB}))
	infos, err := cfg.Journal.List()
	if err != nil || len(infos) != 1 {
		t.Fatalf("want the failed upload's journal, got %v, %v", infos, err)
	}
	journal, err := os.ReadFile(infos[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(infos[0].Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("journal %s has mode %v, want 0600", infos[0].Path, fi.Mode().Perm())
	}
	failing.Store(false)
	record(m.Upload(ctx, b.bucket, "k", src, UploadOptions{PartSize: 5 * fpMiB}))
	record(m.Download(ctx, b.bucket, "k", filepath.Join(b.dir, "out"), DownloadOptions{PartSize: 4 * fpMiB}))
	record(m.Copy(ctx, b.bucket, "k", b.bucket, "k2", CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * fpMiB, Threshold: 5 * fpMiB}}))
	// A wrong secret, and a skewed clock.
	wrong := b.managerOn(b.client(ClientConfig{}), cfg)
	cc := ClientConfig{Endpoint: b.proxy.URL(), AccessKey: b.store.AccessKey, SecretKey: canary, Addressing: AddressingPath}
	if core, err := NewClient(cc); err == nil {
		wrong = b.managerOn(core, cfg)
	}
	record(wrong.Upload(ctx, b.bucket, "w", src, UploadOptions{PartSize: 5 * fpMiB}))
	record(wrong.Download(ctx, b.bucket, "k", filepath.Join(b.dir, "w"), DownloadOptions{}))
	b.proxy.SetRule(faultproxy.Every(faultproxy.Skewed(-20 * time.Minute)))
	record(m.Upload(ctx, b.bucket, "s", src, UploadOptions{PartSize: 5 * fpMiB}))
	if len(errs) < 3 {
		t.Fatalf("only %d errors: the failing cases did not fail", len(errs)/2)
	}

	var all strings.Builder
	all.WriteString(b.log.String())
	for _, e := range errs {
		all.WriteString(e + "\n")
	}
	ev.mu.Lock()
	for _, e := range ev.all {
		fmt.Fprintf(&all, "%+v\n", e)
	}
	ev.mu.Unlock()
	all.Write(journal)
	if fi, err := os.Stat(jdir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("journal directory: %v, %v; want mode 0700", fi.Mode().Perm(), err)
	}
	for _, secret := range []string{b.store.SecretKey, canary} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("a secret key appears in the library's output:\n%s", all.String())
		}
	}
	if !strings.Contains(all.String(), "SignatureDoesNotMatch") && !strings.Contains(all.String(), "signature") {
		t.Errorf("the wrong secret's failure is not in the output scanned: the scan proves nothing")
	}
}
