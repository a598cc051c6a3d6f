package transfer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/failpoint"
	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// anywhereFile writes data to a new file and returns its path.
func anywhereFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// interrupt uploads path to bkt/obj in 5 MiB parts on m until part 3 is refused, leaving
// parts 1 and 2 (and the marker) on the store.
func interrupt(t *testing.T, f *transfertest.Fake, m *Manager, path string, opts UploadOptions) {
	t.Helper()
	f.Fault = transfertest.OnPart(3, 1, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	opts.PartSize = 5 * mib
	if _, err := m.Upload(context.Background(), "bkt", "obj", path, opts); err == nil {
		t.Fatal("first run: want the injected failure")
	}
	f.Fault = nil
	if len(f.Uploads()) == 0 {
		t.Fatal("the interrupted upload should stay on the store")
	}
}

// dataParts lists the data parts (not the marker) sent since call number from.
func dataParts(f *transfertest.Fake, from int) []int {
	var sent []int
	for _, c := range f.Calls()[from:] {
		if c.Op == "PutObjectPart" && c.Part != markerPart {
			sent = append(sent, c.Part)
		}
	}
	return sent
}

func uploadIDs(f *transfertest.Fake) []string {
	var ids []string
	for _, u := range f.Uploads() {
		ids = append(ids, u.UploadID)
	}
	return ids
}

// An upload interrupted on one machine resumes on another, whose journal directory is
// empty or which has none: only the missing parts are sent.
func TestUploadResumesFromStore(t *testing.T) {
	for _, c := range []struct {
		name    string
		journal bool
	}{{"empty journal", true}, {"no journal", false}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Concurrency: 1, Endpoint: "fake"}
			if c.journal {
				cfg.Journal = &resume.Store{Dir: t.TempDir()}
			}
			f, first, _ := fakeManager(t, cfg)
			data := randomBytes(23 * mib)
			path := anywhereFile(t, data)
			interrupt(t, f, first, path, UploadOptions{LeaveParts: !c.journal})

			if c.journal {
				cfg.Journal = &resume.Store{Dir: t.TempDir()} // another machine's
			}
			cfg.Concurrency = 4
			m, ev := testManager(f, cfg)
			before := len(f.Calls())
			res, err := m.Upload(context.Background(), "bkt", "obj", path, UploadOptions{PartSize: 5 * mib})
			if err != nil {
				t.Fatal(err)
			}
			wantObject(t, f, data)
			sent := dataParts(f, before)
			slices.Sort(sent)
			if !slices.Equal(sent, []int{3, 4, 5}) || !res.Resumed || res.BytesSent != int64(len(data))-10*mib {
				t.Errorf("resume sent parts %v (want [3 4 5]), result %+v", sent, res)
			}
			if slices.Contains(ops(f.Calls()[before:]), "NewMultipartUpload") {
				t.Error("a new upload was created")
			}
			if !slices.ContainsFunc(ev.notices(), func(s string) bool { return strings.Contains(s, "resuming: 2 of 5 parts already uploaded") }) {
				t.Errorf("notices %q: want the resume announced", ev.notices())
			}
			_, info, _ := f.Object("bkt", "obj")
			if v := info.UserMetadata["S3xfer-Origin"]; !strings.Contains(v, "part-size=5242880") || strings.Contains(v, path) {
				t.Errorf("origin metadata %q: want the part size and no path", v)
			}
		})
	}
}

// An interrupted upload of other bytes of the same size, or of the same bytes but not
// made by s3xfer, is neither used nor aborted.
func TestUploadIgnoresForeignUploads(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 2})
	data := randomBytes(23 * mib)
	other := bytes.Clone(data)
	other[0] ^= 1
	interrupt(t, f, m, anywhereFile(t, other), UploadOptions{LeaveParts: true})

	// Someone else's upload of the very same bytes in the same parts.
	ctx := context.Background()
	id, err := f.NewMultipartUpload(ctx, "bkt", "obj", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for n := range 2 {
		part := data[n*5*mib : (n+1)*5*mib]
		if _, err := f.PutObjectPart(ctx, "bkt", "obj", id, n+1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	foreign := uploadIDs(f)

	before := len(f.Calls())
	res, err := m.Upload(ctx, "bkt", "obj", anywhereFile(t, data), UploadOptions{PartSize: 5 * mib})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Object("bkt", "obj"); !bytes.Equal(got, data) {
		t.Fatal("object differs")
	}
	sent := dataParts(f, before)
	slices.Sort(sent)
	if res.Resumed || !slices.Equal(sent, []int{1, 2, 3, 4, 5}) {
		t.Errorf("sent %v, resumed %v: want a new upload of every part", sent, res.Resumed)
	}
	if got := uploadIDs(f); !slices.Equal(got, foreign) || slices.Contains(ops(f.Calls()[before:]), "AbortMultipartUpload") {
		t.Errorf("uploads left %v, want the foreign ones %v untouched", got, foreign)
	}
}

// A listed part whose bytes differ from the local file's at the same place is sent again.
func TestUploadFromStoreResendsDifferingPart(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1}) // parts 1 and 2 stored before part 3 fails
	data := randomBytes(23 * mib)
	path := anywhereFile(t, data)
	interrupt(t, f, m, path, UploadOptions{LeaveParts: true})
	fi, _ := os.Stat(path)
	data[6*mib] ^= 0xff // within part 2, outside the fingerprint's samples
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, time.Now(), fi.ModTime())

	m2, ev := testManager(f, Config{Concurrency: 2})
	before := len(f.Calls())
	res, err := m2.Upload(context.Background(), "bkt", "obj", path, UploadOptions{PartSize: 5 * mib})
	if err != nil {
		t.Fatal(err)
	}
	wantObject(t, f, data)
	sent := dataParts(f, before)
	slices.Sort(sent)
	if !slices.Equal(sent, []int{2, 3, 4, 5}) || !res.Resumed {
		t.Errorf("sent %v (want [2 3 4 5]), result %+v", sent, res)
	}
	if !slices.ContainsFunc(ev.notices(), func(s string) bool { return strings.Contains(s, "1 listed parts differ") }) {
		t.Errorf("notices %q: want the differing part announced", ev.notices())
	}
}

// With NoResume the matching upload is aborted, and any other left alone.
func TestUploadFromStoreNoResume(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 2})
	data := randomBytes(23 * mib)
	other := bytes.Clone(data)
	other[len(other)-1] ^= 1
	interrupt(t, f, m, anywhereFile(t, other), UploadOptions{LeaveParts: true})
	foreign := uploadIDs(f)
	path := anywhereFile(t, data)
	interrupt(t, f, m, path, UploadOptions{LeaveParts: true})
	before := len(f.Calls())
	res, err := m.Upload(context.Background(), "bkt", "obj", path, UploadOptions{PartSize: 5 * mib, NoResume: true})
	if err != nil || res.Resumed {
		t.Fatalf("%+v, %v", res, err)
	}
	if got := uploadIDs(f); !slices.Equal(got, foreign) {
		t.Errorf("uploads left %v, want only the other source's %v", got, foreign)
	}
	if n := len(dataParts(f, before)); n != 5 {
		t.Errorf("sent %d parts, want all 5", n)
	}
}

// The first run, still alive, completes the upload while the second sends the rest: the
// second checks the object and succeeds.
func TestUploadFromStoreCompletedElsewhere(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	data := randomBytes(23 * mib)
	path := anywhereFile(t, data)
	interrupt(t, f, m, path, UploadOptions{LeaveParts: true, Checksum: ChecksumMD5})
	id := f.Uploads()[0].UploadID

	var once sync.Once
	f.After = func(c transfertest.Call) {
		if c.Op != "PutObjectPart" || c.Part != 3 {
			return
		}
		once.Do(func() { // the first run sends parts 4 and 5 and completes
			ctx := context.Background()
			var cps []minio.CompletePart
			for n := 1; n <= 5; n++ {
				part := data[(n-1)*5*mib : min(n*5*mib, len(data))]
				if n >= 4 {
					if _, err := f.PutObjectPart(ctx, "bkt", "obj", id, n, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
						t.Error(err)
					}
				}
				cps = append(cps, minio.CompletePart{PartNumber: n, ETag: md5Hex(part)})
			}
			if _, err := f.CompleteMultipartUpload(ctx, "bkt", "obj", id, cps, minio.PutObjectOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	m2, ev := testManager(f, Config{Concurrency: 1})
	res, err := m2.Upload(context.Background(), "bkt", "obj", path, UploadOptions{PartSize: 5 * mib})
	if err != nil {
		t.Fatal(err)
	}
	wantObject(t, f, data)
	if !res.Resumed || res.Size != int64(len(data)) {
		t.Errorf("result %+v", res)
	}
	if !slices.ContainsFunc(ev.notices(), func(s string) bool { return strings.Contains(s, "completed meanwhile") }) {
		t.Errorf("notices %q", ev.notices())
	}
}

// countingS3 counts the data parts sent or copied, and the GETs, through it.
type countingS3 struct {
	S3
	mu    sync.Mutex
	parts []int
	gets  int
}

func (c *countingS3) PutObjectPart(ctx context.Context, bucket, key, uploadID string, n int, data io.Reader, size int64, opts minio.PutObjectPartOptions) (minio.ObjectPart, error) {
	if n != markerPart && size > 0 {
		c.mu.Lock()
		c.parts = append(c.parts, n)
		c.mu.Unlock()
	}
	return c.S3.PutObjectPart(ctx, bucket, key, uploadID, n, data, size, opts)
}

// On the real stores: an upload killed after one part resumes from a run with an empty
// journal directory, sending only the other two; another source's upload of the key is
// left alone; the object is byte-identical and no incomplete upload of ours is left.
func TestRealUploadResumesFromStore(t *testing.T) {
	onStores(t, Config{}, func(t *testing.T, s testbed.Store, _ *Manager, bucket string) {
		ctx := context.Background()
		data := randomBytes(13 * mib)
		otherData := bytes.Clone(data)
		otherData[0] ^= 1
		opts := UploadOptions{PartSize: 5 * mib}

		// Another source's interrupted upload of the same key.
		mo := New(s.Core, Config{Concurrency: 1, Endpoint: s.Endpoint, Journal: &resume.Store{Dir: t.TempDir()}})
		octx, ocancel := cancelAfter(ctx, 1)
		defer ocancel()
		if _, err := mo.Upload(octx, bucket, "k", anywhereFile(t, otherData), opts); err == nil {
			t.Fatal("the other source's upload should have been cancelled")
		}

		// Ours, killed after one part.
		path := anywhereFile(t, data)
		m1 := New(s.Core, Config{Concurrency: 1, Endpoint: s.Endpoint, Journal: &resume.Store{Dir: t.TempDir()}})
		kctx, kcancel := cancelAfter(ctx, 1)
		defer kcancel()
		if _, err := m1.Upload(kctx, bucket, "k", path, opts); err == nil {
			t.Fatal("the first run should have been cancelled")
		}
		incs, err := m1.ListIncomplete(ctx, bucket, "k")
		if err != nil || len(incs) != 2 {
			t.Fatalf("incomplete uploads %+v, %v; want 2", incs, err)
		}

		// Another machine: an empty journal directory.
		cs := &countingS3{S3: s.Core}
		m2 := New(cs, Config{Concurrency: 4, Endpoint: s.Endpoint, Journal: &resume.Store{Dir: t.TempDir()}})
		res, err := m2.Upload(ctx, bucket, "k", path, opts)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(cs.parts)
		if !res.Resumed || !slices.Equal(cs.parts, []int{2, 3}) {
			t.Errorf("resume sent parts %v (want [2 3]), result %+v", cs.parts, res)
		}
		got, _, err := m2.DownloadBytes(ctx, bucket, "k", DownloadOptions{})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
		}
		st, err := s.Core.StatObject(ctx, bucket, "k", minio.StatObjectOptions{})
		if err != nil || !strings.Contains(st.UserMetadata["S3xfer-Origin"], "size=13631488") {
			t.Errorf("origin metadata %v, %v", st.UserMetadata, err)
		}
		left, err := m2.ListIncomplete(ctx, bucket, "k")
		if err != nil || len(left) != 1 || left[0].UploadID == res.UploadID {
			t.Errorf("incomplete uploads left %+v, %v; want only the other source's", left, err)
		}
	})
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// copiedParts lists the parts copied since call number from, sorted.
func copiedParts(f *transfertest.Fake, from int) []int {
	var sent []int
	for _, c := range f.Calls()[from:] {
		if c.Op == "CopyObjectPart" {
			sent = append(sent, c.Part)
		}
	}
	slices.Sort(sent)
	return sent
}

// interruptCopy copies bkt/src to bkt/dst on m until part 3 is refused, leaving parts 1
// and 2 (and the marker) in the destination's upload: m keeps a journal.
func interruptCopy(t *testing.T, f *transfertest.Fake, m *Manager, opts CopyOptions) {
	t.Helper()
	f.Fault = transfertest.OnPart(3, 1, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	if _, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts); err == nil {
		t.Fatal("first run: want the injected failure")
	}
	f.Fault = nil
	if len(f.Uploads()) == 0 {
		t.Fatal("the interrupted copy should stay on the store")
	}
}

// A multipart copy whose journal is gone finds its upload on the store and copies only
// the parts it lacks, whatever verifies it: the source's MD5 ETag (size only for the
// parts), its full-object CRC32C (the parts' CRC32Cs), or its parts' "md5-N" ETag.
func TestCopyResumesFromStore(t *testing.T) {
	for _, c := range []struct {
		name     string
		put      func(m *Manager, data []byte) error
		opts     CopyOptions
		checksum Checksum
	}{
		{"md5 source", func(m *Manager, data []byte) error {
			_, err := m.store.s3.(*transfertest.Fake).PutObject(context.Background(), "bkt", "src", bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{})
			return err
		}, CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}}, ChecksumNone},
		{"crc32c source", func(m *Manager, data []byte) error {
			_, err := m.UploadReaderAt(context.Background(), "bkt", "src", bytes.NewReader(data), int64(len(data)), UploadOptions{Threshold: 64 * mib, Checksum: ChecksumCRC32C})
			return err
		}, CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}}, ChecksumCRC32C},
		{"parts followed", func(m *Manager, data []byte) error {
			_, err := m.UploadReaderAt(context.Background(), "bkt", "src", bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 5 * mib, Checksum: ChecksumMD5})
			return err
		}, CopyOptions{UploadOptions: UploadOptions{Threshold: 6 * mib}}, ChecksumMD5},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Concurrency: 1, Endpoint: "fake", Journal: &resume.Store{Dir: t.TempDir()}}
			f, first, _ := fakeManager(t, cfg)
			data := randomBytes(23 * mib)
			if err := c.put(first, data); err != nil {
				t.Fatal(err)
			}
			interruptCopy(t, f, first, c.opts)

			cfg.Journal = &resume.Store{Dir: t.TempDir()} // another machine's
			cfg.Concurrency = 4
			m, ev := testManager(f, cfg)
			before := len(f.Calls())
			res, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got, _, _ := f.Object("bkt", "dst"); !bytes.Equal(got, data) {
				t.Fatal("copy differs from its source")
			}
			if sent := copiedParts(f, before); !slices.Equal(sent, []int{3, 4, 5}) || !res.Resumed || res.BytesSent != int64(len(data))-10*mib || res.Checksum != c.checksum {
				t.Errorf("resume copied parts %v (want [3 4 5]), result %+v (want checksum %q)", sent, res, c.checksum)
			}
			if calls := ops(f.Calls()[before:]); slices.Contains(calls, "NewMultipartUpload") || slices.Contains(calls, "PutObjectPart") {
				t.Errorf("calls %v: a new upload was started", calls)
			}
			if !slices.ContainsFunc(ev.notices(), func(s string) bool {
				return strings.Contains(s, "resuming: 2 of 5 parts already copied (found on the store)")
			}) {
				t.Errorf("notices %q: want the resume announced", ev.notices())
			}
			if _, info, _ := f.Object("bkt", "dst"); info.UserMetadata["S3xfer-Origin"] != "" {
				t.Errorf("a copy got origin metadata: %v", info.UserMetadata)
			}
			if len(f.Uploads()) != 0 {
				t.Errorf("uploads left: %+v", f.Uploads())
			}
		})
	}
}

// A copy whose source changed since (another ETag, same size) neither uses nor aborts
// the interrupted upload of the old version; with NoResume it aborts its own only.
func TestCopyFromStoreSourceChanged(t *testing.T) {
	cfg := Config{Concurrency: 1, Endpoint: "fake", Journal: &resume.Store{Dir: t.TempDir()}}
	f, m, _ := fakeManager(t, cfg)
	opts := CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}}
	putObject(t, f, "src", randomBytes(23*mib))
	interruptCopy(t, f, m, opts)
	// And an upload of the key not made by s3xfer.
	if _, err := f.NewMultipartUpload(context.Background(), "bkt", "dst", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	old := uploadIDs(f)

	data := randomBytes(23 * mib)
	data[0] ^= 1
	putObject(t, f, "src", data)
	cfg.Journal = &resume.Store{Dir: t.TempDir()}
	m2, _ := testManager(f, cfg)
	interruptCopy(t, f, m2, opts) // the new version's, beside the old's
	if len(f.Uploads()) != 3 {
		t.Fatalf("uploads %+v: want the old version's, the foreign one and the new one's", f.Uploads())
	}

	before := len(f.Calls())
	cfg.Journal = &resume.Store{Dir: t.TempDir()}
	m3, _ := testManager(f, cfg)
	res, err := m3.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Object("bkt", "dst"); !bytes.Equal(got, data) {
		t.Fatal("copy differs from its source")
	}
	if sent := copiedParts(f, before); !res.Resumed || !slices.Equal(sent, []int{3, 4, 5}) {
		t.Errorf("copied %v, result %+v: want the new version's upload resumed", sent, res)
	}
	if got := uploadIDs(f); !slices.Equal(got, old) {
		t.Errorf("uploads left %v, want the old version's and the foreign one %v untouched", got, old)
	}

	// NoResume: the old version's upload and the foreign one are still not ours to abort.
	data[1] ^= 1
	putObject(t, f, "src", data)
	cfg.Journal = &resume.Store{Dir: t.TempDir()}
	m4, _ := testManager(f, cfg)
	interruptCopy(t, f, m4, opts)
	before = len(f.Calls())
	noResume := opts
	noResume.NoResume = true
	if res, err := m4.Copy(context.Background(), "bkt", "src", "bkt", "dst", noResume); err != nil || res.Resumed {
		t.Fatalf("%+v, %v", res, err)
	}
	if sent := copiedParts(f, before); len(sent) != 5 {
		t.Errorf("copied %v, want all 5 parts", sent)
	}
	if got := uploadIDs(f); !slices.Equal(got, old) {
		t.Errorf("uploads left %v, want only the old version's and the foreign one %v", got, old)
	}
}

func (c *countingS3) CopyObjectPart(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey, uploadID string, n int, off, size int64, meta map[string]string) (minio.CompletePart, error) {
	c.mu.Lock()
	c.parts = append(c.parts, n)
	c.mu.Unlock()
	return c.S3.CopyObjectPart(ctx, srcBucket, srcKey, dstBucket, dstKey, uploadID, n, off, size, meta)
}

// cancelAfter returns ctx with a failpoint hook that cancels it once parts parts are
// journaled.
func cancelAfter(ctx context.Context, parts int) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	n := 0
	return failpoint.WithHook(cctx, func(name string) {
		mu.Lock()
		defer mu.Unlock()
		if name == "part-journaled" {
			if n++; n == parts {
				cancel()
			}
		}
	}), cancel
}

// On the real stores: a multipart copy cancelled after one part resumes from a run with
// an empty journal directory, copying only the other parts; the interrupted copy of
// the source's previous version is left alone.
func TestRealCopyResumesFromStore(t *testing.T) {
	onStores(t, Config{}, func(t *testing.T, s testbed.Store, _ *Manager, bucket string) {
		ctx := context.Background()
		data := randomBytes(13 * mib)
		opts := CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}}
		put := func(b []byte) {
			if _, err := s.Core.Client.PutObject(ctx, bucket, "src", bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		interrupted := func() {
			t.Helper()
			m := New(s.Core, Config{Concurrency: 1, Endpoint: s.Endpoint, Journal: &resume.Store{Dir: t.TempDir()}})
			cctx, cancel := cancelAfter(ctx, 1)
			defer cancel()
			if _, err := m.Copy(cctx, bucket, "src", bucket, "dst", opts); err == nil {
				t.Fatal("the copy should have been cancelled")
			}
		}
		old := bytes.Clone(data)
		old[0] ^= 1
		put(old)
		interrupted() // the previous version's
		put(data)
		interrupted()

		cs := &countingS3{S3: s.Core}
		m := New(cs, Config{Concurrency: 4, Endpoint: s.Endpoint, Journal: &resume.Store{Dir: t.TempDir()}})
		res, err := m.Copy(ctx, bucket, "src", bucket, "dst", opts)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(cs.parts)
		if !res.Resumed || !slices.Equal(cs.parts, []int{2, 3}) {
			t.Errorf("resume copied parts %v (want [2 3]), result %+v", cs.parts, res)
		}
		got, _, err := m.DownloadBytes(ctx, bucket, "dst", DownloadOptions{})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
		}
		left, err := m.ListIncomplete(ctx, bucket, "dst")
		if err != nil || len(left) != 1 || left[0].UploadID == res.UploadID {
			t.Errorf("incomplete uploads left %+v, %v; want only the previous version's", left, err)
		}
	})
}

// interruptDownload downloads bkt/k to dst in 100 KiB ranges on a Manager journaling in a
// directory of its own until GET number gets+1 fails, leaving gets ranges in the partial
// file.
func interruptDownload(t *testing.T, f *transfertest.Fake, dst string, gets int) {
	t.Helper()
	interruptDownloadIn(t, f, dst, gets, 100<<10)
}

// interruptDownloadIn is interruptDownload in ranges of partSize.
func interruptDownloadIn(t *testing.T, f *transfertest.Fake, dst string, gets int, partSize int64) {
	t.Helper()
	m, _ := testManager(f, Config{Concurrency: 1, Endpoint: "fake", Journal: &resume.Store{Dir: t.TempDir()}})
	f.Fault = failAfter(gets)
	if _, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: partSize}); err == nil {
		t.Fatal("the first run should fail")
	}
	f.Fault = nil
	noFile(t, dst)
}

// A download whose journal directory does not know it (another machine on a shared
// filesystem, a wiped journal directory) continues from the partial file, by the record
// beside it: only the missing ranges are fetched, and the ranges recorded are checked
// against the partial file first, by their own checksums where the object has them
// (a combinable CRC, or the MD5s of an "md5-N" object's parts), else by the read-back
// of the whole.
func TestDownloadResumesBesidePartial(t *testing.T) {
	md5Parts := func(m *Manager, data []byte) error {
		_, err := m.UploadReaderAt(context.Background(), "bkt", "k", bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 5 * mib, Checksum: ChecksumMD5})
		return err
	}
	for _, c := range []struct {
		name     string
		put      func(m *Manager, data []byte) error
		size     int
		partSize int64 // of the interrupted run's ranges; 0 for 100 KiB
		ranges   int   // the interrupted run fetched before it failed
		damage   bool  // a byte of a recorded range changed in the partial file
		gets     int
		notice   string
		verdict  Checksum
	}{
		{"crc32c", putCRC32C, 1000 << 10, 0, 4, false, 6, "resuming: 4 of 10 ranges already downloaded (found beside the partial file)", ChecksumCRC32C},
		{"crc32c damaged", putCRC32C, 1000 << 10, 0, 4, true, 7, "resuming: 3 of 10 ranges already downloaded (found beside the partial file); 1 recorded ranges differ", ChecksumCRC32C},
		{"md5 read back", func(m *Manager, data []byte) error {
			_, err := m.store.s3.(*transfertest.Fake).PutObject(context.Background(), "bkt", "k", bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{})
			return err
		}, 1000 << 10, 0, 4, false, 6, "resuming: 4 of 10 ranges already downloaded (found beside the partial file)", ChecksumMD5},
		// Ranges of the 5 MiB parts' size: a range per part, 5 of them, 4 recorded.
		{"md5 parts damaged", md5Parts, 23 * mib, 5 * mib, 4, true, 2, "resuming: 3 of 5 ranges already downloaded (found beside the partial file); 1 recorded ranges differ", ChecksumMD5},
		// 2 MiB ranges: 3 per 5 MiB part, 2 for the last 3 MiB, 14 in all. The first run
		// fetched 7, but the 7th, of part 3, was not recorded: its part was not all in. The
		// byte damaged is in part 1, whose 3 ranges are checked together by its MD5.
		{"md5 split parts damaged", md5Parts, 23 * mib, 2 * mib, 7, true, 11, "resuming: 3 of 14 ranges already downloaded (found beside the partial file); 3 recorded ranges differ", ChecksumMD5},
		{"md5 split parts", md5Parts, 23 * mib, 2 * mib, 7, false, 8, "resuming: 6 of 14 ranges already downloaded (found beside the partial file)", ChecksumMD5},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, m, _ := fakeManager(t, Config{Endpoint: "fake"})
			data := randomBytes(c.size)
			if err := c.put(m, data); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "out")
			interruptDownloadIn(t, f, dst, c.ranges, cmp.Or(c.partSize, 100<<10))
			record := readFile(t, dst+PartialSuffix+sidecarSuffix)
			if bytes.Contains(record, []byte(filepath.Dir(dst))) || !bytes.Contains(record, []byte(`"etag":"`)) {
				t.Errorf("record beside the partial file: want the object's identity and no local path:\n%s", record)
			}
			if c.damage {
				pf, err := os.OpenFile(dst+PartialSuffix, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				off := c.size / 10 * 15 / 10 // in a recorded range
				pf.WriteAt([]byte{data[off] ^ 1}, int64(off))
				pf.Close()
			}

			journal := &resume.Store{Dir: t.TempDir()} // empty
			m2, ev := testManager(f, Config{Concurrency: 2, Endpoint: "elsewhere", Journal: journal})
			before := countOp(f, "GetObject")
			res, err := m2.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readFile(t, dst), data) {
				t.Fatal("resumed download differs")
			}
			if n := countOp(f, "GetObject") - before; n != c.gets || !res.Resumed || res.Checksum != c.verdict {
				t.Errorf("resume made %d GETs (want %d), result %+v (want verified by %s)", n, c.gets, res, c.verdict)
			}
			if !slices.ContainsFunc(ev.notices(), func(s string) bool { return strings.Contains(s, c.notice) }) {
				t.Errorf("notices %q, want %q", ev.notices(), c.notice)
			}
			for _, s := range []string{"", sidecarSuffix, sidecarSuffix + ".lock"} {
				noFile(t, dst+PartialSuffix+s)
			}
			if infos, _ := journal.List(); len(infos) != 0 {
				t.Errorf("journal left behind: %+v", infos)
			}
		})
	}
}

func putCRC32C(m *Manager, data []byte) error {
	_, err := m.UploadReaderAt(context.Background(), "bkt", "k", bytes.NewReader(data), int64(len(data)), UploadOptions{Threshold: 64 * mib, Checksum: ChecksumCRC32C})
	return err
}

// A partial file whose object changed since (another ETag) starts over, with a notice,
// and its record goes.
func TestDownloadBesidePartialObjectChanged(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Endpoint: "fake"})
	data := randomBytes(1000 << 10)
	if err := putCRC32C(m, data); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	interruptDownload(t, f, dst, 4)
	data[0] ^= 1
	if err := putCRC32C(m, data); err != nil {
		t.Fatal(err)
	}
	m2, ev := testManager(f, Config{Concurrency: 2, Endpoint: "fake", Journal: &resume.Store{Dir: t.TempDir()}})
	before := countOp(f, "GetObject")
	// In one range, which keeps no journal: the stale record must go all the same.
	res, err := m2.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst), data) {
		t.Fatal("download differs")
	}
	if n := countOp(f, "GetObject") - before; n != 1 || res.Resumed {
		t.Errorf("made %d GETs (want 1), result %+v", n, res)
	}
	if !slices.ContainsFunc(ev.notices(), func(s string) bool {
		return strings.Contains(s, "changed since the interrupted download: deleted the record ")
	}) {
		t.Errorf("notices %q", ev.notices())
	}
	noFile(t, dst+PartialSuffix+sidecarSuffix)
}

func (c *countingS3) GetObject(ctx context.Context, bucket, key string, opts minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.S3.GetObject(ctx, bucket, key, opts)
}

// On the real stores: a download cancelled after three ranges continues on a run with an
// empty journal directory from the partial file, fetching only the rest; after the
// object changed, it starts over.
func TestRealDownloadResumesBesidePartial(t *testing.T) {
	onStores(t, Config{}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		ctx := context.Background()
		data := randomBytes(10 * mib)
		put := func() {
			if _, err := m.UploadReaderAt(ctx, bucket, "k", bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 5 * mib}); err != nil {
				t.Fatal(err)
			}
		}
		put()
		if !keepsChecksum(t, s, bucket, "k") {
			t.Skipf("%s keeps no checksum of the object: a download beside a partial file starts over, by design", s.Name)
		}
		dst := filepath.Join(t.TempDir(), "out")
		opts := DownloadOptions{PartSize: 1 * mib}
		interrupted := func() {
			t.Helper()
			m1 := New(s.Core, Config{Concurrency: 1, Endpoint: s.Endpoint, Journal: &resume.Store{Dir: t.TempDir()}})
			cctx, cancel := cancelAfter(ctx, 3)
			defer cancel()
			if _, err := m1.Download(cctx, bucket, "k", dst, opts); err == nil {
				t.Fatal("the download should have been cancelled")
			}
			noFile(t, dst)
		}
		rerun := func() (Result, int) {
			t.Helper()
			cs := &countingS3{S3: s.Core}
			m2 := New(cs, Config{Concurrency: 4, Endpoint: s.Endpoint, Journal: &resume.Store{Dir: t.TempDir()}})
			res, err := m2.Download(ctx, bucket, "k", dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readFile(t, dst), data) {
				t.Fatal("download differs")
			}
			noFile(t, dst+PartialSuffix)
			noFile(t, dst+PartialSuffix+sidecarSuffix)
			return res, cs.gets
		}
		interrupted()
		res, gets := rerun()
		// Cancelled once 3 ranges were recorded; the 4th, whose GET runs beside the 3rd's
		// record at a concurrency of 1, may have been fetched and recorded too.
		if !res.Resumed || gets < 6 || gets > 7 || res.BytesSent != int64(gets)*mib {
			t.Errorf("resume made %d GETs (want 7, or 6), result %+v", gets, res)
		}
		os.Remove(dst)
		interrupted()
		data[0] ^= 1
		put()
		if res, gets := rerun(); res.Resumed || gets != 10 {
			t.Errorf("after a change: %d GETs (want 10), result %+v", gets, res)
		}
	})
}

// NoResume starts over whatever the record beside the partial file says, and the record
// is written afresh: a later resume trusts only what the new run fetched.
func TestDownloadBesidePartialNoResume(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Endpoint: "fake"})
	data := randomBytes(1000 << 10)
	if err := putCRC32C(m, data); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	interruptDownload(t, f, dst, 4)
	m2, ev := testManager(f, Config{Concurrency: 1, Endpoint: "fake", Journal: &resume.Store{Dir: t.TempDir()}})
	f.Fault = failAfter(2)
	if _, err := m2.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10, NoResume: true}); err == nil {
		t.Fatal("the second run should fail")
	}
	f.Fault = nil
	if !slices.ContainsFunc(ev.notices(), func(s string) bool { return strings.Contains(s, "no-resume") }) {
		t.Errorf("notices %q", ev.notices())
	}
	j, err := resume.OpenAt(dst + PartialSuffix + sidecarSuffix)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if ps := j.Parts(); len(ps) != 2 || ps[0].Number != 1 || ps[1].Number != 2 {
		t.Errorf("record holds %+v, want only the 2 ranges the no-resume run fetched", ps)
	}
}

func TestIsPartialName(t *testing.T) {
	for name, want := range map[string]bool{
		"a/out.s3xfer-partial": true, "out.s3xfer-partial.journal": true, "out.s3xfer-partial.journal.lock": true,
		"out.s3xfer-partial.journal.tmp": true, "out": false, "out.journal": false, "out.s3xfer-partial.bak": false,
	} {
		if got := IsPartialName(name); got != want {
			t.Errorf("IsPartialName(%q) = %v, want %v", name, got, want)
		}
	}
}

// The first run of a copy, still alive, completes the upload while a second, adopting
// it from the store, copies the rest: the second checks the object against the source's
// "md5-N" ETag and succeeds.
func TestCopyFromStoreCompletedElsewhere(t *testing.T) {
	cfg := Config{Concurrency: 1, Endpoint: "fake", Journal: &resume.Store{Dir: t.TempDir()}}
	f, m, _ := fakeManager(t, cfg)
	data := randomBytes(23 * mib)
	if _, err := m.UploadReaderAt(context.Background(), "bkt", "src", bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 5 * mib, Checksum: ChecksumMD5}); err != nil {
		t.Fatal(err)
	}
	opts := CopyOptions{UploadOptions: UploadOptions{Threshold: 6 * mib}} // the copy follows the source's parts
	interruptCopy(t, f, m, opts)
	id := f.Uploads()[0].UploadID

	var once sync.Once
	f.After = func(c transfertest.Call) {
		if c.Op != "CopyObjectPart" || c.Part != 3 {
			return
		}
		once.Do(func() { // the first run copies parts 4 and 5 and completes
			ctx := context.Background()
			var cps []minio.CompletePart
			for n := 1; n <= 5; n++ {
				off, end := (n-1)*5*mib, min(n*5*mib, len(data))
				if n >= 4 {
					if _, err := f.CopyObjectPart(ctx, "bkt", "src", "bkt", "dst", id, n, int64(off), int64(end-off), nil); err != nil {
						t.Error(err)
					}
				}
				cps = append(cps, minio.CompletePart{PartNumber: n, ETag: md5Hex(data[off:end])})
			}
			if _, err := f.CompleteMultipartUpload(ctx, "bkt", "dst", id, cps, minio.PutObjectOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	cfg.Journal = &resume.Store{Dir: t.TempDir()}
	m2, ev := testManager(f, cfg)
	res, err := m2.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Object("bkt", "dst"); !bytes.Equal(got, data) {
		t.Fatal("copy differs from its source")
	}
	if !res.Resumed || res.Size != int64(len(data)) {
		t.Errorf("result %+v", res)
	}
	if !slices.ContainsFunc(ev.notices(), func(s string) bool { return strings.Contains(s, "completed meanwhile") }) {
		t.Errorf("notices %q", ev.notices())
	}
}
