package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/ratelimit"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// events records progress events, safe for concurrent Report calls.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) Report(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) list() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

func (e *events) notices() []string {
	var msgs []string
	for _, ev := range e.list() {
		if ev.Kind == Notice {
			msgs = append(msgs, ev.Msg)
		}
	}
	return msgs
}

// checkBytes fails the test unless the PartDone events count up to want without ever
// passing it: a retried range is never counted twice.
func (e *events) checkBytes(t *testing.T, want int64) {
	t.Helper()
	var last int64
	for _, ev := range e.list() {
		if ev.Bytes > want {
			t.Fatalf("event %+v counts more bytes than the %d of the object", ev, want)
		}
		if ev.Kind == PartDone {
			last = max(last, ev.Bytes)
		}
	}
	if want > 0 && last != want {
		t.Fatalf("PartDone events reached %d bytes, want %d", last, want)
	}
}

// fakeManager returns a fake store with bucket "bkt" and a Manager on it whose retries do
// not sleep.
func fakeManager(t *testing.T, cfg Config) (*transfertest.Fake, *Manager, *events) {
	t.Helper()
	f := transfertest.New()
	f.MinPartSize = 1
	f.MakeBucket("bkt")
	m, ev := testManager(f, cfg)
	return f, m, ev
}

// testManager returns a Manager on s whose retries do not sleep, and its events.
func testManager(s S3, cfg Config) (*Manager, *events) {
	ev := &events{}
	cfg.Progress = ev
	m := New(s, cfg)
	m.store.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	return m, ev
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

// journaled is fakeManager with a journal Store and an object bkt/k of size random
// bytes; it also returns the Store and a destination path.
func journaled(t *testing.T, concurrency, size int) (*transfertest.Fake, *Manager, *events, *resume.Store, string) {
	t.Helper()
	journal := &resume.Store{Dir: t.TempDir()}
	f, m, ev := fakeManager(t, Config{Concurrency: concurrency, Journal: journal})
	putObject(t, f, "k", randomBytes(size))
	return f, m, ev, journal, filepath.Join(t.TempDir(), "out")
}

func putObject(t *testing.T, f *transfertest.Fake, key string, data []byte) {
	t.Helper()
	sum := md5.Sum(data)
	_, err := f.PutObject(context.Background(), "bkt", key, bytes.NewReader(data), int64(len(data)),
		b64(sum[:]), "", minio.PutObjectOptions{ContentType: "text/plain", UserMetadata: map[string]string{"color": "blue"}})
	if err != nil {
		t.Fatal(err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// ops lists the operations of calls, for call-sequence assertions.
func ops(calls []transfertest.Call) []string {
	var s []string
	for _, c := range calls {
		s = append(s, c.Op)
	}
	return s
}

func countOp(f *transfertest.Fake, op string) int {
	n := 0
	for _, c := range f.Calls() {
		if c.Op == op {
			n++
		}
	}
	return n
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (err %v); it should not", path, err)
	}
}

func TestDownloadFileIsByteIdenticalAndVerified(t *testing.T) {
	f, m, ev := fakeManager(t, Config{Concurrency: 4})
	data := randomBytes(1<<20 + 12345)
	putObject(t, f, "k", data)
	dst := filepath.Join(t.TempDir(), "out")
	res, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dst); !bytes.Equal(got, data) {
		t.Fatal("downloaded bytes differ from the object")
	}
	noFile(t, dst+PartialSuffix)
	if res.Size != int64(len(data)) || res.Parts != 11 || res.Checksum != ChecksumMD5 || res.BytesSent != res.Size {
		t.Fatalf("result %+v", res)
	}
	if n := countOp(f, "GetObject"); n != 11 {
		t.Fatalf("%d GETs, want 11", n)
	}
	ev.checkBytes(t, res.Size)
	if last := ev.list()[len(ev.list())-1]; last.Kind != Finished || last.Op != "download" || last.Err != nil {
		t.Fatalf("last event %+v", last)
	}
}

func TestDownloadRetryAfterResetMidBodyIsByteIdentical(t *testing.T) {
	f, m, ev := fakeManager(t, Config{Concurrency: 3})
	data := randomBytes(700 << 10)
	putObject(t, f, "k", data)
	// The first three GETs break after half their body.
	f.Fault = transfertest.On("GetObject", 3, transfertest.Fault{Err: transfertest.ConnReset(), MidBody: true})
	dst := filepath.Join(t.TempDir(), "out")
	res, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst), data) {
		t.Fatal("bytes differ after retries")
	}
	if n := countOp(f, "GetObject"); n != 6+3 {
		t.Fatalf("%d GETs, want 6 ranges + 3 retries", n)
	}
	ev.checkBytes(t, res.Size)
}

// replaceOn replaces bkt/k with next on the nth GET of it, before that GET is served.
func replaceOn(f *transfertest.Fake, n int, next []byte) transfertest.Rule {
	var gets atomic.Int32
	return func(c transfertest.Call, _ int) transfertest.Fault {
		if c.Op != "GetObject" || gets.Add(1) != int32(n) {
			return transfertest.Fault{}
		}
		sum := md5.Sum(next)
		f.PutObject(context.Background(), "bkt", "k", bytes.NewReader(next), int64(len(next)), b64(sum[:]), "", minio.PutObjectOptions{})
		return transfertest.Fault{}
	}
}

func TestDownloadRestartsOnceWhenObjectChanges(t *testing.T) {
	f, m, ev, _, dst := journaled(t, 1, 500<<10)
	next := randomBytes(300 << 10)
	f.Fault = replaceOn(f, 2, next)
	res, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst), next) || res.Size != int64(len(next)) {
		t.Fatal("the download does not hold the new version alone")
	}
	if n := countOp(f, "StatObject"); n != 2 {
		t.Fatalf("%d StatObject calls, want 2 (one per start)", n)
	}
	if msgs := ev.notices(); len(msgs) != 1 || !strings.Contains(msgs[0], "changed during the download") {
		t.Fatalf("notices %q", msgs)
	}
	ev.checkBytes(t, res.Size)
}

func TestDownloadFailsWhenObjectChangesTwice(t *testing.T) {
	f, m, _, _, dst := journaled(t, 1, 500<<10)
	f.Fault = transfertest.Faults(replaceOn(f, 2, randomBytes(400<<10)), replaceOn(f, 4, randomBytes(300<<10)))
	_, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("err %v, want ErrSourceChanged", err)
	}
	noFile(t, dst)
	noFile(t, dst+PartialSuffix)
}

func TestDownloadNoRestartFailsOnChange(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	putObject(t, f, "k", randomBytes(500<<10))
	f.Fault = replaceOn(f, 2, randomBytes(10))
	dst := filepath.Join(t.TempDir(), "out")
	_, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10, NoRestart: true})
	var e *Error
	if !errors.Is(err, ErrSourceChanged) || !errors.As(err, &e) || e.Op != "download" {
		t.Fatalf("err %v, want a download *Error matching ErrSourceChanged", err)
	}
	if n := countOp(f, "StatObject"); n != 1 {
		t.Fatalf("%d StatObject calls, want 1: no restart", n)
	}
	noFile(t, dst+PartialSuffix)
}

// failAfter fails every GET after the first n with a permanent error.
func failAfter(n int) transfertest.Rule {
	var gets atomic.Int32
	return func(c transfertest.Call, _ int) transfertest.Fault {
		if c.Op == "GetObject" && gets.Add(1) > int32(n) {
			return transfertest.Fail(transfertest.S3Error("AccessDenied"))
		}
		return transfertest.Fault{}
	}
}

func TestDownloadResumesFromJournal(t *testing.T) {
	f, m, _, journal, dst := journaled(t, 1, 1000<<10)
	data, _, _ := f.Object("bkt", "k")
	f.Fault = failAfter(4)
	if _, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10}); err == nil {
		t.Fatal("the first run should fail")
	}
	noFile(t, dst)
	if _, err := os.Stat(dst + PartialSuffix); err != nil {
		t.Fatalf("the partial file should stay for a resume: %v", err)
	}

	f.Fault = nil
	before := countOp(f, "GetObject")
	m2, ev := testManager(f, Config{Concurrency: 2, Journal: journal})
	// Another part size: a resume keeps the one it started with.
	res, err := m2.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst), data) {
		t.Fatal("resumed download differs")
	}
	if !res.Resumed || res.BytesSent != int64(len(data))-400<<10 || res.Parts != 10 {
		t.Fatalf("result %+v", res)
	}
	if n := countOp(f, "GetObject") - before; n != 6 {
		t.Fatalf("resume made %d GETs, want the 6 missing ranges", n)
	}
	if msgs := ev.notices(); len(msgs) != 1 || !strings.Contains(msgs[0], "4 of 10") {
		t.Fatalf("notices %q", msgs)
	}
	ev.checkBytes(t, res.Size)
	if infos, _ := journal.List(); len(infos) != 0 {
		t.Fatalf("journal left behind: %+v", infos)
	}
	noFile(t, dst+PartialSuffix)
}

func TestDownloadJournalOfOldVersionStartsOver(t *testing.T) {
	f, m, ev, _, dst := journaled(t, 1, 500<<10)
	f.Fault = failAfter(2)
	if _, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10}); err == nil {
		t.Fatal("the first run should fail")
	}
	f.Fault = nil
	next := randomBytes(300 << 10)
	putObject(t, f, "k", next)

	_, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10, NoRestart: true})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("NoRestart: err %v, want ErrSourceChanged", err)
	}
	res, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst), next) || res.Resumed {
		t.Fatalf("want the new version, downloaded from scratch; result %+v", res)
	}
	if msgs := ev.notices(); len(msgs) != 1 || !strings.Contains(msgs[0], "changed") {
		t.Fatalf("notices %q", msgs)
	}
}

// corrupting flips a byte of every GET body: a store or network that damages data.
type corrupting struct{ *transfertest.Fake }

func (c corrupting) GetObject(ctx context.Context, bucket, key string, opts minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error) {
	body, info, h, err := c.Fake.GetObject(ctx, bucket, key, opts)
	if err != nil {
		return body, info, h, err
	}
	b, err := io.ReadAll(body)
	if len(b) > 0 {
		b[len(b)/2] ^= 1
	}
	return io.NopCloser(bytes.NewReader(b)), info, h, err
}

func TestDownloadCorruptBytesFailIntegrity(t *testing.T) {
	f, _, _ := fakeManager(t, Config{})
	putObject(t, f, "k", randomBytes(300<<10))
	m, _ := testManager(corrupting{f}, Config{Journal: &resume.Store{Dir: t.TempDir()}})
	dst := filepath.Join(t.TempDir(), "out")
	_, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10})
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("err %v, want ErrIntegrity", err)
	}
	noFile(t, dst)
	noFile(t, dst+PartialSuffix)
	_, _, err = m.DownloadBytes(context.Background(), "bkt", "k", DownloadOptions{})
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("DownloadBytes: err %v, want ErrIntegrity", err)
	}
}

func TestDownloadBytesAndWriterAt(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 5})
	data := randomBytes(333 << 10)
	putObject(t, f, "k", data)
	putObject(t, f, "empty", nil)
	for _, key := range []string{"k", "empty"} {
		want, _, _ := f.Object("bkt", key)
		got, res, err := m.DownloadBytes(context.Background(), "bkt", key, DownloadOptions{PartSize: 50 << 10})
		if err != nil || !bytes.Equal(got, want) || res.Checksum != ChecksumMD5 {
			t.Fatalf("DownloadBytes %s: err %v, equal %v, result %+v", key, err, bytes.Equal(got, want), res)
		}
		fw, err := os.Create(filepath.Join(t.TempDir(), "w"))
		if err != nil {
			t.Fatal(err)
		}
		res, err = m.DownloadWriterAt(context.Background(), "bkt", key, fw, DownloadOptions{PartSize: 50 << 10})
		fw.Close()
		if err != nil || !bytes.Equal(readFile(t, fw.Name()), want) || res.Checksum != ChecksumMD5 {
			t.Fatalf("DownloadWriterAt %s: err %v, result %+v", key, err, res)
		}
	}
	dst := filepath.Join(t.TempDir(), "empty")
	if _, err := m.Download(context.Background(), "bkt", "empty", dst, DownloadOptions{}); err != nil || len(readFile(t, dst)) != 0 {
		t.Fatalf("empty object: %v", err)
	}
}

func TestDownloadMissingObject(t *testing.T) {
	_, m, _ := fakeManager(t, Config{})
	dst := filepath.Join(t.TempDir(), "out")
	_, err := m.Download(context.Background(), "bkt", "nope", dst, DownloadOptions{})
	var e *Error
	if !errors.As(err, &e) || !isCode(err, "NoSuchKey") {
		t.Fatalf("err %v, want NoSuchKey in an *Error", err)
	}
	noFile(t, dst+PartialSuffix)
}

func TestDownloadCancelKeepsPartialWithJournal(t *testing.T) {
	f, m, _, journal, dst := journaled(t, 2, 500<<10)
	ctx, cancel := context.WithCancel(context.Background())
	var gets atomic.Int32
	f.After = func(c transfertest.Call) {
		if c.Op == "GetObject" && gets.Add(1) == 3 {
			cancel()
		}
	}
	_, err := m.Download(ctx, "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if _, err := os.Stat(dst + PartialSuffix); err != nil {
		t.Fatalf("partial file: %v", err)
	}
	if infos, _ := journal.List(); len(infos) != 1 || infos[0].Header.Kind != resume.Download {
		t.Fatalf("journals %+v", infos)
	}
}

// TestLearnWithoutLayout: what verifies an object that needs no part layout.
func TestLearnWithoutLayout(t *testing.T) {
	md5ETag := "9e107d9d372bb6826bd81d3542a419d6"
	cases := []struct {
		name string
		info minio.ObjectInfo
		want Checksum
	}{
		{"plain md5 etag", minio.ObjectInfo{ETag: md5ETag}, ChecksumMD5},
		{"full-object crc32c", minio.ObjectInfo{ETag: md5ETag + "-3", ChecksumCRC32C: "AAAAAA==", ChecksumMode: "FULL_OBJECT"}, ChecksumCRC32C},
		{"single put crc32c", minio.ObjectInfo{ETag: md5ETag, ChecksumCRC32C: "AAAAAA=="}, ChecksumCRC32C},
		{"sha256", minio.ObjectInfo{ETag: md5ETag, ChecksumSHA256: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", ChecksumMode: "FULL_OBJECT"}, ChecksumSHA256},
		{"crc64nvme of multipart", minio.ObjectInfo{ETag: md5ETag + "-2", ChecksumCRC64NVME: "AAAAAAAAAAA="}, ChecksumCRC64NVME},
		{"sse-kms etag", minio.ObjectInfo{ETag: md5ETag, Metadata: http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}}}, ChecksumNone},
		{"sse-s3 etag", minio.ObjectInfo{ETag: md5ETag, Metadata: http.Header{"X-Amz-Server-Side-Encryption": {"AES256"}}}, ChecksumMD5},
		{"opaque etag", minio.ObjectInfo{ETag: "abc"}, ChecksumNone},
	}
	m := New(transfertest.New(), Config{})
	for _, c := range cases {
		c.info.Size = 1
		d := &download{m: m, bucket: "bkt", key: "k", info: c.info}
		if err := d.learn(context.Background()); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := ChecksumNone
		if d.in.algo != nil {
			got = d.in.algo.name
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// keepsChecksum says whether the store keeps a checksum of bucket/key that a download can
// verify it by: moto keeps none for a multipart object, and nothing then can check the
// bytes of a partial file, so a download beside one starts over, by design.
func keepsChecksum(t *testing.T, s testbed.Store, bucket, key string) bool {
	t.Helper()
	st, err := s.Core.StatObject(context.Background(), bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	return st.ChecksumCRC32C != "" || st.ChecksumCRC32 != "" || st.ChecksumSHA256 != "" || st.ChecksumSHA1 != "" || st.ChecksumCRC64NVME != ""
}

// onStores runs fn on each real store (testbed.RealStores) with a new bucket and a
// Manager configured by cfg, or skips without stores.
func onStores(t *testing.T, cfg Config, fn func(t *testing.T, s testbed.Store, m *Manager, bucket string)) {
	stores := testbed.RealStores(t)
	if len(stores) == 0 {
		t.Skip(testbed.NoStoresMessage)
	}
	for _, s := range stores {
		t.Run(s.Name, func(t *testing.T) {
			cfg := cfg
			cfg.Endpoint = s.Endpoint
			fn(t, s, New(s.Core, cfg), s.NewBucket(t))
		})
	}
}

// patternAt is a deterministic, incompressible object of any size that needs neither
// memory nor disk: byte i comes from a hash of i/8.
type patternAt struct{ size int64 }

func (p patternAt) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.size-off))
	for i := 0; i < n; {
		w := uint64(off+int64(i)) / 8
		z := w*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019 // splitmix64
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		for j := (off + int64(i)) % 8; j < 8 && i < n; j++ {
			b[i] = byte(z >> (8 * j))
			i++
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// sameAs is a writer that checks what it is given against r from offset 0 on.
type sameAs struct {
	r   io.ReaderAt
	off int64
	buf []byte
	bad int64 // offset of the first difference + 1; 0 if none
}

func (s *sameAs) Write(p []byte) (int, error) {
	if len(s.buf) < len(p) {
		s.buf = make([]byte, len(p))
	}
	n, _ := s.r.ReadAt(s.buf[:len(p)], s.off)
	if s.bad == 0 && (n != len(p) || !bytes.Equal(s.buf[:n], p)) {
		s.bad = s.off + 1
	}
	s.off += int64(len(p))
	return len(p), nil
}

func TestRealDownload(t *testing.T) {
	onStores(t, Config{Concurrency: 8}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		ctx := context.Background()
		data := randomBytes(21*mib + 3)
		// One object sent in one PUT (MD5 ETag), one in parts (md5-N ETag).
		if _, err := m.UploadReaderAt(ctx, bucket, "single", bytes.NewReader(data), int64(len(data)), UploadOptions{Threshold: 64 * mib}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.UploadReaderAt(ctx, bucket, "multi", bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 5 * mib}); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"single", "multi"} {
			dst := filepath.Join(t.TempDir(), key)
			res, err := m.Download(ctx, bucket, key, dst, DownloadOptions{PartSize: 4 * mib})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readFile(t, dst), data) || res.Parts != 6 {
				t.Fatalf("%s: download differs; result %+v", key, res)
			}
			if key == "single" && res.Checksum == ChecksumNone {
				t.Fatalf("%s: a single-PUT object has a whole-object checksum; result %+v", key, res)
			}
			w := &sameAs{r: bytes.NewReader(data)}
			if _, err := m.DownloadStream(ctx, bucket, key, w, DownloadOptions{PartSize: 3 * mib}); err != nil || w.bad != 0 || w.off != int64(len(data)) {
				t.Fatalf("%s: DownloadStream: %v, first difference at %d, %d bytes", key, err, w.bad-1, w.off)
			}
		}
	})
}

// TestRealDownloadResumesAfterKill SIGKILLs a download (this test binary, re-run as a
// child) after 3 s, then runs the same download again: it must resume from the journal
// and end byte-identical, verified. Of an object s3xfer uploads (a full-object CRC32C),
// and of one in 8 MiB parts kept by their MD5s only, each fetched in 4 ranges, hashed in
// order: the kill comes in the middle of some of them.
func TestRealDownloadResumesAfterKill(t *testing.T) {
	if os.Getenv("S3XFER_KILL_CHILD") == "1" {
		killChild(t)
		return
	}
	onStores(t, Config{Concurrency: 4}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		for _, c := range []struct {
			key  string
			opts UploadOptions
		}{{"k", UploadOptions{}}, {"md5-parts", UploadOptions{PartSize: 8 * mib, Checksum: ChecksumMD5}}} {
			t.Run(c.key, func(t *testing.T) { killAndResume(t, s, m, bucket, c.key, c.opts) })
		}
	})
}

// killAndResume uploads 48 MiB to bucket/key with opts, kills a journaled download of it
// half way and runs it again.
func killAndResume(t *testing.T, s testbed.Store, m *Manager, bucket, key string, opts UploadOptions) {
	ctx := context.Background()
	data := randomBytes(48 * mib)
	if _, err := m.UploadReaderAt(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		t.Fatal(err)
	}
	journal := &resume.Store{Dir: t.TempDir()}
	dst := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRealDownloadResumesAfterKill$")
	cmd.Env = append(os.Environ(), "S3XFER_KILL_CHILD=1", "S3XFER_KILL_STORE="+s.Name, "S3XFER_KILL_KEY="+key,
		"S3XFER_KILL_BUCKET="+bucket, "S3XFER_KILL_DST="+dst, "S3XFER_KILL_JOURNAL="+journal.Dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	noFile(t, dst)
	if _, err := os.Stat(dst + PartialSuffix); err != nil {
		t.Fatalf("the killed download left no partial file: %v", err)
	}

	m.cfg.Journal = journal
	res, err := m.Download(ctx, bucket, key, dst, DownloadOptions{PartSize: 2 * mib})
	m.cfg.Journal = nil
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst), data) {
		t.Fatal("resumed download differs")
	}
	if !res.Resumed || res.BytesSent == 0 || res.BytesSent >= res.Size || (res.Checksum == ChecksumNone && keepsChecksum(t, s, bucket, key)) {
		t.Fatalf("want a verified resume that fetched only the rest; result %+v", res)
	}
	t.Logf("resumed: %d of %d bytes were left, verified by %s", res.BytesSent, res.Size, res.Checksum)
}

// killChild is the download TestRealDownloadResumesAfterKill kills: 2 MiB ranges at
// 8 MiB/s, so it is half done after 3 s.
func killChild(t *testing.T) {
	for _, s := range testbed.RealStores(t) {
		if s.Name != os.Getenv("S3XFER_KILL_STORE") {
			continue
		}
		m := New(s.Core, Config{Concurrency: 4, Endpoint: s.Endpoint, DownloadLimiter: ratelimit.New(8 * mib),
			Journal: &resume.Store{Dir: os.Getenv("S3XFER_KILL_JOURNAL")}})
		_, err := m.Download(context.Background(), os.Getenv("S3XFER_KILL_BUCKET"), os.Getenv("S3XFER_KILL_KEY"), os.Getenv("S3XFER_KILL_DST"), DownloadOptions{PartSize: 2 * mib})
		t.Fatalf("the download should have been killed; it ended with %v", err)
	}
	t.Fatal("no such store")
}

// A NoSync download journals its ranges without fsyncing them, and names its boot: it
// resumes within the same boot, and starts over after a restart, when the page cache
// that held those ranges may be gone.
func TestDownloadNoSyncJournalHoldsWithinItsBoot(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot ID on this system: NoSync journals fsync their ranges")
	}
	for _, restarted := range []bool{false, true} {
		t.Run(fmt.Sprintf("restarted=%v", restarted), func(t *testing.T) {
			f, m, ev, journal, dst := journaled(t, 1, 1000<<10)
			data, _, _ := f.Object("bkt", "k")
			opts := DownloadOptions{PartSize: 100 << 10, NoSync: true}
			f.Fault = failAfter(4)
			if _, err := m.Download(context.Background(), "bkt", "k", dst, opts); err == nil {
				t.Fatal("the first run should fail")
			}
			f.Fault = nil
			infos, err := journal.List()
			if err != nil || len(infos) != 1 || infos[0].Header.BootID != bootID() || infos[0].Parts != 4 {
				t.Fatalf("journal %+v, err %v: want 4 ranges and this boot's ID", infos, err)
			}
			if restarted {
				rewriteBoot(t, journal, infos[0].ID, "another-boot")
			}
			res, err := m.Download(context.Background(), "bkt", "k", dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readFile(t, dst), data) || res.Resumed == restarted {
				t.Fatalf("equal %v, result %+v", bytes.Equal(readFile(t, dst), data), res)
			}
			msgs := ev.notices()
			if want := map[bool]string{false: "4 of 10", true: "restarted"}[restarted]; len(msgs) != 1 || !strings.Contains(msgs[0], want) {
				t.Fatalf("notices %q, want one with %q", msgs, want)
			}
			if infos, _ := journal.List(); len(infos) != 0 {
				t.Fatalf("journal left behind: %+v", infos)
			}
			noFile(t, dst+PartialSuffix)
		})
	}
}

// rewriteBoot makes journal id look written in another boot, keeping its parts.
func rewriteBoot(t *testing.T, store *resume.Store, id, boot string) {
	t.Helper()
	j, err := store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	parts, h := j.Parts(), j.Header()
	h.BootID = boot
	if err := j.Reset(h); err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if err := j.Append(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
}

// writebacks: a range's add does not wait for the writebacks before it, however long
// they block; they run in the order added, and close returns once all have started.
func TestWritebacksDoNotHoldTheRanges(t *testing.T) {
	release := make(chan struct{})
	var started []int64
	w := startWritebacks(3, func(r chunk.Part) {
		if r.Offset == 0 {
			<-release // the disk's queue is full
		}
		started = append(started, r.Offset)
	})
	added := make(chan struct{})
	go func() {
		for off := range int64(3) {
			w.add(chunk.Part{Offset: off, Size: 1})
		}
		close(added)
	}()
	select {
	case <-added:
	case <-time.After(10 * time.Second):
		t.Fatal("add waited for a blocked writeback")
	}
	close(release)
	w.close()
	if !slices.Equal(started, []int64{0, 1, 2}) {
		t.Errorf("writebacks started %v, want 0, 1, 2 in order", started)
	}
}

// groupSync: a write is covered only by an fsync that started after it, and writers that
// finish while an fsync runs share the next one.
func TestGroupSyncCoversEachWriteOnce(t *testing.T) {
	g := &groupSync{}
	var syncs, coveredUpTo atomic.Uint64
	fsync := func() error {
		coveredUpTo.Store(g.requested.Load()) // the writes done before this fsync began
		syncs.Add(1)
		return nil
	}
	g.sync = fsync
	first := g.written()
	if err := g.after(first); err != nil || syncs.Load() != 1 {
		t.Fatalf("first write: err %v, %d fsyncs", err, syncs.Load())
	}
	if err := g.after(first); err != nil || syncs.Load() != 1 {
		t.Fatalf("a covered write synced again: %d fsyncs", syncs.Load())
	}
	// Every writer has its ticket before the first concurrent fsync ends, so the next
	// fsync covers all the rest: two at most.
	const writers = 32
	var issued, wg sync.WaitGroup
	issued.Add(writers)
	g.sync = func() error { err := fsync(); issued.Wait(); return err }
	for range writers {
		wg.Go(func() {
			ticket := g.written()
			issued.Done()
			if err := g.after(ticket); err != nil {
				t.Error(err)
			}
			if coveredUpTo.Load() < ticket {
				t.Errorf("ticket %d returned before an fsync that covers it (last covered %d)", ticket, coveredUpTo.Load())
			}
		})
	}
	wg.Wait()
	if n := syncs.Load() - 1; n < 1 || n > 2 {
		t.Errorf("%d writers took %d fsyncs; want them shared by 1 or 2", writers, n)
	}
}
