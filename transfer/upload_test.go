package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/sse"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// uploadBytes uploads data as "obj" in 5 MiB parts (the smallest S3 allows).
func uploadBytes(m *Manager, ctx context.Context, data []byte, opts UploadOptions) (Result, error) {
	if opts.PartSize == 0 {
		opts.PartSize = 5 * mib
	}
	return m.UploadReaderAt(ctx, "bkt", "obj", bytes.NewReader(data), int64(len(data)), opts)
}

func wantObject(t *testing.T, f *transfertest.Fake, want []byte) {
	t.Helper()
	got, _, ok := f.Object("bkt", "obj")
	if !ok || !bytes.Equal(got, want) {
		t.Fatalf("object: present %v, %d bytes, equal %v; want %d bytes", ok, len(got), bytes.Equal(got, want), len(want))
	}
	if ups := f.Uploads(); len(ups) != 0 {
		t.Errorf("incomplete uploads left: %+v", ups)
	}
}

func wantNoObject(t *testing.T, f *transfertest.Fake) {
	t.Helper()
	if _, _, ok := f.Object("bkt", "obj"); ok {
		t.Error("an object was created")
	}
	if ups := f.Uploads(); len(ups) != 0 {
		t.Errorf("incomplete uploads left: %+v", ups)
	}
}

// Part 2 failing permanently: Create, the empty CRC32C probe, UploadPart 1, UploadPart 2,
// Abort; nothing else.
func TestUploadPermanentPartFailureAborts(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	f.Fault = transfertest.OnPart(2, 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	_, err := uploadBytes(m, context.Background(), randomBytes(16*mib), UploadOptions{})
	var te *Error
	if !errors.As(err, &te) || te.UploadID == "" || !isCode(err, "AccessDenied") {
		t.Fatalf("want a transfer.Error carrying the upload ID and AccessDenied, got %v", err)
	}
	want := []string{"NewMultipartUpload", "PutObjectPart", "PutObjectPart", "PutObjectPart", "AbortMultipartUpload"}
	if got := ops(f.Calls()); !slices.Equal(got, want) {
		t.Errorf("calls %v\nwant  %v", got, want)
	}
	wantNoObject(t, f)
}

// A cancelled ctx stops the upload and aborts it on a fresh ctx.
func TestUploadCancelledAborts(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	ctx, cancel := context.WithCancel(context.Background())
	f.After = func(c transfertest.Call) {
		if c.Op == "PutObjectPart" && c.Part == 2 {
			cancel()
		}
	}
	_, err := uploadBytes(m, ctx, randomBytes(26*mib), UploadOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	calls := ops(f.Calls())
	if calls[len(calls)-1] != "AbortMultipartUpload" || slices.Contains(calls, "CompleteMultipartUpload") {
		t.Errorf("calls %v: want them to end with an abort and never complete", calls)
	}
	wantNoObject(t, f)
}

// Transient faults everywhere (SlowDown, 500, a reset mid-body, a 200 OK Complete that
// carries an error, a Complete whose answer is lost) still end in the exact object, and
// progress counts every byte once.
func TestUploadSurvivesTransientFaults(t *testing.T) {
	f, m, ev := fakeManager(t, Config{Concurrency: 4})
	f.Fault = transfertest.Faults(
		transfertest.OnPart(1, 2, transfertest.Fail(transfertest.S3Error("SlowDown"))),
		transfertest.OnPart(2, 1, transfertest.ResetMidBody()),
		transfertest.OnPart(3, 1, transfertest.Fail(transfertest.S3Error("InternalError"))),
		transfertest.OnPart(4, 1, transfertest.Fail(transfertest.ConnReset())),
		transfertest.On("CompleteMultipartUpload", 1, transfertest.CompleteOKWithError()),
	)
	data := randomBytes(23 * mib)
	res, err := uploadBytes(m, context.Background(), data, UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantObject(t, f, data)
	if res.Parts != 5 || res.BytesSent != int64(len(data)) || res.Checksum != ChecksumCRC32C {
		t.Errorf("result %+v", res)
	}
	var last Event
	for _, e := range ev.list() {
		if e.Bytes < last.Bytes || e.Bytes > int64(len(data)) {
			t.Fatalf("progress went from %d to %d bytes of %d", last.Bytes, e.Bytes, len(data))
		}
		last = e
	}
	if last.Kind != Finished || last.Bytes != int64(len(data)) || last.PartsDone != 5 {
		t.Errorf("last event %+v", last)
	}
}

func TestUploadCompleteAnswerLost(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 2})
	f.Fault = transfertest.On("CompleteMultipartUpload", 1, transfertest.LostResponse())
	data := randomBytes(11 * mib)
	if _, err := uploadBytes(m, context.Background(), data, UploadOptions{Checksum: ChecksumMD5}); err != nil {
		t.Fatalf("a Complete that succeeded but whose answer was lost: %v", err)
	}
	wantObject(t, f, data)
}

// Retries give up after the policy's attempts, and the upload is aborted.
func TestUploadRetriesExhausted(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1, Retry: RetryPolicy{Attempts: 3}})
	f.Fault = transfertest.OnPart(1, 0, transfertest.Fail(transfertest.S3Error("SlowDown")))
	_, err := uploadBytes(m, context.Background(), randomBytes(11*mib), UploadOptions{Checksum: ChecksumMD5})
	if !isCode(err, "SlowDown") {
		t.Fatalf("want SlowDown after the retries, got %v", err)
	}
	if n := countOp(f, "PutObjectPart"); n != 3 {
		t.Errorf("part 1 tried %d times, want 3", n)
	}
	wantNoObject(t, f)
}

// A store that ignores checksum headers: the first upload probes a trailing CRC32C with a
// one-byte part 1 and CRC32C with an empty part 1, finds no echo, sends every part with
// Content-MD5; later uploads use MD5 from the start.
func TestUploadAutoFallsBackToMD5Once(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 2})
	f.IgnoreChecksums = true
	data := randomBytes(16 * mib)
	res, err := uploadBytes(m, context.Background(), data, UploadOptions{})
	if err != nil || res.Checksum != ChecksumMD5 {
		t.Fatalf("first upload: %v, checksum %q; want md5", err, res.Checksum)
	}
	wantObject(t, f, data)
	if n := countOp(f, "PutObjectPart"); n != 6 {
		t.Errorf("first upload sent %d parts, want 6 (the two probes, then 4)", n)
	}
	before := countOp(f, "PutObjectPart")
	if _, err := uploadBytes(m, context.Background(), data, UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := countOp(f, "PutObjectPart") - before; n != 4 {
		t.Errorf("second upload sent %d parts, want 4: the store's answer should be remembered", n)
	}
	// Asking for CRC32C explicitly on such a store fails clearly rather than trusting it.
	if _, err := uploadBytes(m, context.Background(), data, UploadOptions{Checksum: ChecksumCRC32C}); !errors.Is(err, ErrIntegrity) {
		t.Errorf("explicit crc32c on a store that ignores it: %v, want ErrIntegrity", err)
	}
}

func TestUploadThreshold(t *testing.T) {
	for _, c := range []struct {
		size      int
		multipart bool
	}{{0, false}, {1, false}, {8*mib - 1, false}, {8 * mib, true}, {8*mib + 1, true}} {
		f, m, _ := fakeManager(t, Config{})
		data := randomBytes(c.size)
		res, err := uploadBytes(m, context.Background(), data, UploadOptions{Threshold: 8 * mib})
		if err != nil {
			t.Fatalf("%d bytes: %v", c.size, err)
		}
		wantObject(t, f, data)
		if got := countOp(f, "NewMultipartUpload") == 1; got != c.multipart || (res.Parts > 0) != c.multipart {
			t.Errorf("%d bytes at an 8 MiB threshold: multipart %v, want %v", c.size, got, c.multipart)
		}
	}
}

func TestUploadObjectAttributes(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	path := filepath.Join(t.TempDir(), "page.html")
	os.WriteFile(path, []byte("<p>hi</p>"), 0o644)
	_, err := m.Upload(context.Background(), "bkt", "obj", path, UploadOptions{
		Metadata: map[string]string{"owner": "ops"}, CacheControl: "max-age=60", Tagging: map[string]string{"env": "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, info, _ := f.Object("bkt", "obj")
	if !strings.HasPrefix(info.ContentType, "text/html") {
		t.Errorf("content type %q, want text/html guessed from .html", info.ContentType)
	}
	if info.UserMetadata["Owner"] != "ops" && info.UserMetadata["owner"] != "ops" {
		t.Errorf("metadata %v", info.UserMetadata)
	}
}

// A file that changes while it is uploaded is never completed as a mix of versions.
func TestUploadSourceChangedIsNotCompleted(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	path := filepath.Join(t.TempDir(), "grows.bin")
	if err := os.WriteFile(path, randomBytes(12*mib), 0o644); err != nil {
		t.Fatal(err)
	}
	f.After = func(c transfertest.Call) {
		if c.Op == "PutObjectPart" && c.Part == 1 {
			fh, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			fh.Write([]byte("more"))
			fh.Close()
		}
	}
	_, err := m.Upload(context.Background(), "bkt", "obj", path, UploadOptions{PartSize: 5 * mib})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("want ErrSourceChanged, got %v", err)
	}
	wantNoObject(t, f)
}

// With a journal, a failed upload keeps its parts; the next run sends only the rest.
func TestUploadResumesFromJournal(t *testing.T) {
	f, m, ev := fakeManager(t, Config{Concurrency: 1, Journal: &resume.Store{Dir: t.TempDir()}, Endpoint: "fake"})
	path := filepath.Join(t.TempDir(), "src.bin")
	data := randomBytes(23 * mib)
	os.WriteFile(path, data, 0o644)
	f.Fault = transfertest.OnPart(3, 1, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	if _, err := m.Upload(context.Background(), "bkt", "obj", path, UploadOptions{PartSize: 5 * mib}); err == nil {
		t.Fatal("first run: want the injected failure")
	}
	if len(f.Uploads()) != 1 {
		t.Fatalf("the failed upload should stay for a resume; uploads: %v", f.Uploads())
	}
	before := len(f.Calls())
	res, err := m.Upload(context.Background(), "bkt", "obj", path, UploadOptions{PartSize: 5 * mib})
	if err != nil {
		t.Fatal(err)
	}
	wantObject(t, f, data)
	var resent []int
	for _, c := range f.Calls()[before:] {
		if c.Op == "PutObjectPart" {
			resent = append(resent, c.Part)
		}
	}
	if !slices.Equal(resent, []int{3, 4, 5}) || !res.Resumed || res.BytesSent != int64(len(data))-10*mib {
		t.Errorf("resume sent parts %v (want [3 4 5]), result %+v", resent, res)
	}
	if !slices.ContainsFunc(ev.notices(), func(s string) bool { return strings.Contains(s, "resuming: 2 of 5 parts") }) {
		t.Errorf("notices %q: want the resume announced", ev.notices())
	}
	if ents, _ := os.ReadDir(m.cfg.Journal.Dir); len(ents) != 0 {
		t.Errorf("journal left after success: %v", ents)
	}
}

func TestListIncompleteAndCleanup(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	f.Fault = transfertest.OnPart(2, 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	for _, key := range []string{"dir/a", "dir/b", "other"} {
		m.UploadReaderAt(context.Background(), "bkt", key, bytes.NewReader(randomBytes(11*mib)), 11*mib,
			UploadOptions{PartSize: 5 * mib, LeaveParts: true})
	}
	incs, err := m.ListIncomplete(context.Background(), "bkt", "dir/")
	if err != nil || len(incs) != 2 || incs[0].Parts != 1 || incs[0].Bytes != 5*mib {
		t.Fatalf("ListIncomplete(dir/) = %+v, %v; want dir/a and dir/b with 1 part of 5 MiB each", incs, err)
	}
	gone, err := m.Cleanup(context.Background(), "bkt", "dir/", 0, true)
	if err != nil || len(gone) != 2 || len(f.Uploads()) != 3 {
		t.Fatalf("dry run: %v, %v; %d uploads left, want all 3", gone, err, len(f.Uploads()))
	}
	if gone, err = m.Cleanup(context.Background(), "bkt", "dir/", time.Hour, false); err != nil || len(gone) != 0 {
		t.Fatalf("cleanup of uploads older than an hour took %v, %v", gone, err)
	}
	if gone, err = m.Cleanup(context.Background(), "bkt", "dir/", 0, false); err != nil || len(gone) != 2 {
		t.Fatalf("cleanup: %v, %v", gone, err)
	}
	if ups := f.Uploads(); len(ups) != 1 || ups[0].Key != "other" {
		t.Errorf("left after cleanup of dir/: %+v, want only other", ups)
	}
}

// ListIncomplete counts the data of an upload, not s3xfer's marker part, and says the
// upload is s3xfer's own.
func TestListIncompleteLeavesOutTheMarker(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1, Journal: &resume.Store{Dir: t.TempDir()}, Endpoint: "fake"})
	interruptedUpload(t, f, m) // a file: marked; its first part sent
	f.Fault = transfertest.OnPart(3, 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	m.UploadReaderAt(context.Background(), "bkt", "plain", bytes.NewReader(randomBytes(11*mib)), 11*mib,
		UploadOptions{PartSize: 5 * mib, LeaveParts: true}) // no file, no marker
	f.Fault = nil
	ups := f.Uploads()
	if len(ups) != 2 || ups[0].Key != "obj" || ups[0].Parts != 2 {
		t.Fatalf("uploads on the store %+v, want obj's with its first part and its marker", ups)
	}
	incs, err := m.ListIncomplete(context.Background(), "bkt", "")
	if err != nil || len(incs) != 2 {
		t.Fatalf("ListIncomplete = %+v, %v", incs, err)
	}
	want := []Incomplete{
		{Bucket: "bkt", Key: "obj", UploadID: ups[0].UploadID, Initiated: incs[0].Initiated, Parts: 1, Bytes: 5 * mib, Marked: true},
		{Bucket: "bkt", Key: "plain", UploadID: ups[1].UploadID, Initiated: incs[1].Initiated, Parts: 2, Bytes: 10 * mib},
	}
	if !slices.Equal(incs, want) {
		t.Errorf("ListIncomplete = %+v\nwant %+v", incs, want)
	}
}

// A part answered without an ETag cannot be completed: it is sent again, not taken as done.
func TestUploadPartWithoutETagIsResent(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	inner := &noETagOnce{S3: f}
	m.store.s3 = inner
	data := randomBytes(11 * mib)
	if _, err := uploadBytes(m, context.Background(), data, UploadOptions{Checksum: ChecksumMD5}); err != nil {
		t.Fatal(err)
	}
	wantObject(t, f, data)
	if n := countOp(f, "PutObjectPart"); n != 4 {
		t.Errorf("%d part requests, want 4: part 1 again after its answer lacked an ETag", n)
	}
}

type noETagOnce struct {
	S3
	done bool
}

func (n *noETagOnce) PutObjectPart(ctx context.Context, bucket, object, uploadID string, partID int, data io.Reader, size int64, opts minio.PutObjectPartOptions) (minio.ObjectPart, error) {
	p, err := n.S3.PutObjectPart(ctx, bucket, object, uploadID, partID, data, size, opts)
	if !n.done {
		n.done = true
		p.ETag = ""
	}
	return p, err
}

// On the real stores, auto integrity settles on what each one verifies, probed with one
// empty part per Manager, and the object reads back whole.
func TestRealUploadAutoChecksum(t *testing.T) {
	onStores(t, Config{Concurrency: 4}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		data := randomBytes(12 * mib)
		for i := range 2 {
			key := fmt.Sprintf("auto-%d", i)
			res, err := m.UploadReaderAt(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 5 * mib})
			if err != nil {
				t.Fatal(err)
			}
			want := ChecksumCRC32C // MinIO and versitygw verify it; others may need MD5
			if s.Name != "minio" && s.Name != "versitygw" && res.Checksum == ChecksumMD5 {
				want = ChecksumMD5
			}
			if res.Parts != 3 || res.Checksum != want {
				t.Fatalf("result %+v, want 3 parts verified by %s", res, want)
			}
			got, _, err := m.DownloadBytes(context.Background(), bucket, key, DownloadOptions{})
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: err %v, equal %v", err, bytes.Equal(got, data))
			}
		}
	})
}

// On a bucket encrypted by default with SSE-KMS (MinIO with a KMS key: scripts/servers.sh
// gives it one) ETags are no MD5s: uploads checked by MD5, in parts and in one PUT, succeed,
// and read back whole. The answers' headers that say so reach the engine through
// NewClient's transport.
func TestRealMD5UploadToSSEKMSBucket(t *testing.T) {
	onStores(t, Config{}, func(t *testing.T, s testbed.Store, _ *Manager, bucket string) {
		kmsKey := os.Getenv("S3XFER_TEST_MINIO_KMS_KEY")
		if s.Name != "minio" || kmsKey == "" {
			t.Skip("needs the MinIO of scripts/servers.sh, which has a KMS key (S3XFER_TEST_MINIO_KMS_KEY)")
		}
		core, err := NewClient(ClientConfig{Endpoint: s.Endpoint, AccessKey: s.AccessKey, SecretKey: s.SecretKey, Addressing: AddressingPath})
		if err != nil {
			t.Fatal(err)
		}
		m := New(core, Config{Endpoint: s.Endpoint, Concurrency: 4})
		ctx := context.Background()
		if err := s.Core.SetBucketEncryption(ctx, bucket, sse.NewConfigurationSSEKMS(kmsKey)); err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{12 * mib, 300} {
			data := randomBytes(size)
			key := fmt.Sprintf("kms-%d", size)
			res, err := m.UploadReaderAt(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 5 * mib, Checksum: ChecksumMD5})
			if err != nil {
				t.Fatalf("%d bytes: %v", size, err)
			}
			st, err := s.Core.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
			if err != nil || st.Metadata.Get("X-Amz-Server-Side-Encryption") != "aws:kms" {
				t.Fatalf("%d bytes: not stored under SSE-KMS: %v, %v", size, st.Metadata, err)
			}
			got, _, err := m.DownloadBytes(ctx, bucket, key, DownloadOptions{})
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes (%+v): read back: err %v, equal %v", size, res, err, bytes.Equal(got, data))
			}
		}
	})
}

// uncheckedStore keeps a PUT's body with its middle byte flipped and checks no
// Content-MD5, as a store that does not verify it lets corruption in transit through.
type uncheckedStore struct{ *transfertest.Fake }

func (s uncheckedStore) PutObject(ctx context.Context, bucket, key string, data io.Reader, size int64, _, _ string, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	b, err := io.ReadAll(data)
	if err != nil {
		return minio.UploadInfo{}, err
	}
	b[len(b)/2] ^= 1
	return s.Fake.PutObject(ctx, bucket, key, bytes.NewReader(b), size, "", "", opts)
}

// An object whose store's answer shows other bytes than were sent is deleted, as rclone
// does, unless another writer has replaced it by then: corrupt bytes do not stay under
// the name, and nobody else's object is deleted.
func TestCorruptObjectIsDeleted(t *testing.T) {
	data := randomBytes(300)
	for _, replaced := range []bool{false, true} {
		t.Run(fmt.Sprintf("replaced %v", replaced), func(t *testing.T) {
			f, _, _ := fakeManager(t, Config{})
			m, ev := testManager(uncheckedStore{f}, Config{})
			other := []byte("another writer's object")
			if replaced {
				f.Fault = transfertest.When(func(c transfertest.Call) bool { return c.Op == "StatObject" }, 1,
					transfertest.Fault{Wait: func(context.Context) error { putObject(t, f, "obj", other); return nil }})
			}
			_, err := m.UploadReaderAt(context.Background(), "bkt", "obj", bytes.NewReader(data), int64(len(data)), UploadOptions{Checksum: ChecksumMD5})
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("err %v, want ErrIntegrity", err)
			}
			got, _, ok := f.Object("bkt", "obj")
			switch {
			case !replaced && ok:
				t.Fatalf("the corrupt object stays under its name (%d bytes)", len(got))
			case replaced && !bytes.Equal(got, other):
				t.Fatalf("another writer's object was deleted or changed: present %v", ok)
			}
			if deleted := slices.ContainsFunc(ev.notices(), func(n string) bool { return strings.Contains(n, "deleted s3://bkt/obj") }); deleted == replaced {
				t.Errorf("notices %q", ev.notices())
			}
		})
	}
}

// kmsLikeStore keeps a PUT's bytes but answers with an ETag that is no MD5 of them, as S3
// does under SSE-KMS, heads it with that ETag, and serves a GET whatever ETag it names.
type kmsLikeStore struct{ *transfertest.Fake }

func (s kmsLikeStore) PutObject(ctx context.Context, bucket, key string, data io.Reader, size int64, md5Base64, sha256Hex string, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	info, err := s.Fake.PutObject(ctx, bucket, key, data, size, md5Base64, sha256Hex, opts)
	info.ETag = "0123456789abcdef0123456789abcdef"
	return info, err
}

func (s kmsLikeStore) StatObject(ctx context.Context, bucket, key string, opts minio.StatObjectOptions) (minio.ObjectInfo, error) {
	info, err := s.Fake.StatObject(ctx, bucket, key, opts)
	info.ETag = "0123456789abcdef0123456789abcdef"
	return info, err
}

func (s kmsLikeStore) GetObject(ctx context.Context, bucket, key string, _ minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error) {
	return s.Fake.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
}

// An answer that differs from what was sent for another reason than the bytes kept (an
// ETag that is no MD5) deletes nothing, and the upload succeeds: the object read back
// is what was sent.
func TestIntactObjectIsNotDeleted(t *testing.T) {
	f, _, _ := fakeManager(t, Config{})
	m, ev := testManager(kmsLikeStore{f}, Config{})
	data := randomBytes(300)
	res, err := m.UploadReaderAt(context.Background(), "bkt", "obj", bytes.NewReader(data), int64(len(data)), UploadOptions{Checksum: ChecksumMD5})
	if err != nil || res.Checksum != ChecksumMD5 {
		t.Fatalf("result %+v, err %v: want it verified by the MD5 read back", res, err)
	}
	if got, _, ok := f.Object("bkt", "obj"); !ok || !bytes.Equal(got, data) || countOp(f, "GetObject") != 1 {
		t.Fatalf("the intact object: present %v, equal %v, read back %d times", ok, bytes.Equal(got, data), countOp(f, "GetObject"))
	}
	if n := ev.notices(); len(n) != 0 {
		t.Errorf("notices %q", n)
	}
}
