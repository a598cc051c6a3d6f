package transfer

import (
	"bytes"
	"context"
	"errors"
	"maps"
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

const mib = 1 << 20

func TestCopySmallIsOneCopyObject(t *testing.T) {
	f, m, ev := fakeManager(t, Config{})
	data := randomBytes(100 << 10)
	putObject(t, f, "src", data)
	res, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"StatObject", "CopyObject", "StatObject"}; !slices.Equal(ops(f.Calls()[1:]), want) {
		t.Fatalf("calls %v, want PutObject then %v", ops(f.Calls()), want)
	}
	got, info, _ := f.Object("bkt", "dst")
	if !bytes.Equal(got, data) || info.ContentType != "text/plain" || info.UserMetadata["Color"] != "blue" {
		t.Fatalf("copy differs or lost its metadata: %+v", info)
	}
	if res.Size != int64(len(data)) || res.Parts != 0 || res.BytesSent != res.Size {
		t.Fatalf("result %+v", res)
	}
	for _, e := range ev.list() {
		if e.Op != "copy" || e.Key != "dst" {
			t.Fatalf("event %+v", e)
		}
	}
}

func TestCopyReplaceMetadata(t *testing.T) {
	for _, size := range []int{10 << 10, 12 * mib} {
		f, m, _ := fakeManager(t, Config{})
		putObject(t, f, "src", randomBytes(size))
		opts := CopyOptions{ReplaceMetadata: true, UploadOptions: UploadOptions{
			ContentType: "image/png", Metadata: map[string]string{"shape": "round"}, PartSize: 5 * mib, Threshold: 6 * mib}}
		if _, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts); err != nil {
			t.Fatal(err)
		}
		_, info, _ := f.Object("bkt", "dst")
		if info.ContentType != "image/png" || info.UserMetadata["Shape"] != "round" || info.UserMetadata["Color"] != "" {
			t.Fatalf("size %d: metadata not replaced: %+v", size, info)
		}
	}
}

func TestCopyLargeIsParallelPartCopies(t *testing.T) {
	f, m, ev := fakeManager(t, Config{Concurrency: 4})
	data := randomBytes(12*mib + 5)
	putObject(t, f, "src", data)
	opts := CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}}
	res, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, info, _ := f.Object("bkt", "dst")
	if !bytes.Equal(got, data) {
		t.Fatal("copy differs from its source")
	}
	// A multipart copy carries the source's metadata itself.
	if info.ContentType != "text/plain" || info.UserMetadata["Color"] != "blue" {
		t.Fatalf("metadata not copied: %+v", info)
	}
	if res.Parts != 3 || res.UploadID == "" || !isMultipartETag(res.ETag) {
		t.Fatalf("result %+v", res)
	}
	// Before creating its upload a copy looks for its own interrupted one; the marker part
	// goes first (anywhere.go). Before Complete it checks that the source is still the
	// version it copied (copySource.check: no checksum here ties the parts to it).
	calls := ops(f.Calls()[1:])
	if !slices.Equal(calls[:4], []string{"StatObject", "ListMultipartUploads", "NewMultipartUpload", "PutObjectPart"}) ||
		countOp(f, "CopyObjectPart") != 3 || !slices.Equal(calls[7:], []string{"StatObject", "CompleteMultipartUpload", "StatObject"}) {
		t.Fatalf("calls %v", calls)
	}
	ev.checkBytes(t, res.Size)
}

func TestCopyPartFailingPermanentlyAborts(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	putObject(t, f, "src", randomBytes(12*mib))
	f.Fault = transfertest.OnPart(2, 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	_, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst",
		CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}})
	var e *Error
	if !errors.As(err, &e) || e.Op != "copy" || e.UploadID == "" || !isCode(err, "AccessDenied") {
		t.Fatalf("err %v", err)
	}
	// The StatObject after the failure checks whether the source changed.
	want := []string{"StatObject", "ListMultipartUploads", "NewMultipartUpload", "PutObjectPart", "CopyObjectPart", "CopyObjectPart", "StatObject", "AbortMultipartUpload"}
	if got := ops(f.Calls()[1:]); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if len(f.Uploads()) != 0 {
		t.Fatalf("uploads left: %+v", f.Uploads())
	}
}

func TestCopySourceReplacedMidCopyFailsCleanly(t *testing.T) {
	for _, journal := range []*resume.Store{nil, {Dir: t.TempDir()}} {
		f, m, _ := fakeManager(t, Config{Concurrency: 1, Journal: journal})
		putObject(t, f, "src", randomBytes(12*mib))
		f.Fault = func(c transfertest.Call, attempt int) transfertest.Fault {
			if c.Op == "CopyObjectPart" && c.Part == 2 && attempt == 1 {
				putObject(t, f, "src", randomBytes(12*mib+1))
			}
			return transfertest.Fault{}
		}
		_, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst",
			CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}})
		if !errors.Is(err, ErrSourceChanged) {
			t.Fatalf("err %v, want ErrSourceChanged", err)
		}
		if _, _, ok := f.Object("bkt", "dst"); ok || len(f.Uploads()) != 0 || countOp(f, "AbortMultipartUpload") != 1 {
			t.Fatalf("a changed source must leave no object and no upload; uploads %+v", f.Uploads())
		}
		if journal != nil {
			if infos, _ := journal.List(); len(infos) != 0 {
				t.Fatalf("journal kept: %+v", infos)
			}
		}
	}
}

// ignoreCopyIfMatch is a store that copies parts from whatever version its source has
// now, as moto does: it ignores x-amz-copy-source-if-match.
type ignoreCopyIfMatch struct{ *transfertest.Fake }

func (s ignoreCopyIfMatch) CopyObjectPart(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey, uploadID string, partID int, off, n int64, h map[string]string) (minio.CompletePart, error) {
	h = maps.Clone(h)
	delete(h, "x-amz-copy-source-if-match")
	return s.Fake.CopyObjectPart(ctx, srcBucket, srcKey, dstBucket, dstKey, uploadID, partID, off, n, h)
}

// A copy whose source is replaced by one of the same size mid-copy, on a store that
// copies parts from the new version regardless, fails before Complete where no
// checksum ties the parts to the source: the mix of two versions never becomes visible.
func TestCopySourceReplacedOnAStoreIgnoringIfMatch(t *testing.T) {
	f, _, _ := fakeManager(t, Config{})
	m, _ := testManager(ignoreCopyIfMatch{f}, Config{Concurrency: 1})
	putObject(t, f, "src", randomBytes(12*mib))
	f.Fault = func(c transfertest.Call, attempt int) transfertest.Fault {
		if c.Op == "CopyObjectPart" && c.Part == 2 && attempt == 1 {
			putObject(t, f, "src", bytes.Repeat([]byte{'x'}, 12*mib))
		}
		return transfertest.Fault{}
	}
	_, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst",
		CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib, Checksum: ChecksumMD5}})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("err %v, want ErrSourceChanged", err)
	}
	if _, _, ok := f.Object("bkt", "dst"); ok || len(f.Uploads()) != 0 {
		t.Fatalf("a changed source must leave no object and no upload; uploads %+v", f.Uploads())
	}
}

func TestCopySmallSourceReplacedFails(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	putObject(t, f, "src", randomBytes(10))
	f.Fault = func(c transfertest.Call, _ int) transfertest.Fault {
		if c.Op == "CopyObject" {
			putObject(t, f, "src", randomBytes(11))
		}
		return transfertest.Fault{}
	}
	if _, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", CopyOptions{}); !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("err %v, want ErrSourceChanged", err)
	}
}

func TestCopyResumesFromJournal(t *testing.T) {
	journal := &resume.Store{Dir: t.TempDir()}
	f, m, _ := fakeManager(t, Config{Concurrency: 1, Journal: journal})
	data := randomBytes(17 * mib)
	putObject(t, f, "src", data)
	opts := CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}}
	f.Fault = transfertest.OnPart(3, 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	if _, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts); err == nil {
		t.Fatal("the first run should fail")
	}
	if len(f.Uploads()) != 1 {
		t.Fatalf("with a journal the upload stays for a resume: %+v", f.Uploads())
	}
	f.Fault = nil
	before := len(f.Calls())
	m2, ev := testManager(f, Config{Concurrency: 1, Journal: journal})
	res, err := m2.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := f.Object("bkt", "dst")
	if !bytes.Equal(got, data) || !res.Resumed || res.BytesSent != 7*mib {
		t.Fatalf("resumed copy: equal %v, result %+v", bytes.Equal(got, data), res)
	}
	want := []string{"StatObject", "ListObjectParts", "CopyObjectPart", "CopyObjectPart", "StatObject", "CompleteMultipartUpload", "StatObject"}
	if got := ops(f.Calls()[before:]); !slices.Equal(got, want) {
		t.Fatalf("resume calls %v, want %v", got, want)
	}
	if msgs := ev.notices(); len(msgs) != 1 || !strings.Contains(msgs[0], "resuming") {
		t.Fatalf("notices %q", msgs)
	}
	if infos, _ := journal.List(); len(infos) != 0 {
		t.Fatalf("journal left: %+v", infos)
	}
}

func TestCopyMissingSource(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	_, err := m.Copy(context.Background(), "bkt", "nope", "bkt", "dst", CopyOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Op != "copy" || e.Key != "nope" || !isCode(err, "NoSuchKey") {
		t.Fatalf("err %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Fatalf("%d calls, want the one StatObject", n)
	}
}

func TestCopyTagging(t *testing.T) {
	for _, size := range []int{10 << 10, 12 * mib} {
		f, m, _ := fakeManager(t, Config{})
		putObject(t, f, "src", randomBytes(size))
		opts := CopyOptions{UploadOptions: UploadOptions{Tagging: map[string]string{"team": "blue"}, PartSize: 5 * mib, Threshold: 6 * mib}}
		if _, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts); err != nil {
			t.Fatal(err)
		}
		_, info, _ := f.Object("bkt", "dst")
		if info.UserTags["team"] != "blue" || info.UserMetadata["Color"] != "blue" {
			t.Fatalf("size %d: tags %v, metadata %v", size, info.UserTags, info.UserMetadata)
		}
	}
}

func TestRealCopy(t *testing.T) {
	onStores(t, Config{Concurrency: 8}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		ctx := context.Background()
		data := randomBytes(23*mib + 1)
		meta := UploadOptions{Threshold: 64 * mib, ContentType: "text/plain", Metadata: map[string]string{"color": "blue"}}
		if _, err := m.UploadReaderAt(ctx, bucket, "src", bytes.NewReader(data), int64(len(data)), meta); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			opts CopyOptions
			ct   string
		}{
			{"single", CopyOptions{}, "text/plain"},
			{"multipart", CopyOptions{UploadOptions: UploadOptions{Threshold: 8 * mib, PartSize: 5 * mib}}, "text/plain"},
			{"single-replace", CopyOptions{ReplaceMetadata: true, UploadOptions: UploadOptions{ContentType: "image/png"}}, "image/png"},
			{"multipart-replace", CopyOptions{ReplaceMetadata: true, UploadOptions: UploadOptions{ContentType: "image/png", Threshold: 8 * mib, PartSize: 5 * mib}}, "image/png"},
		}
		for _, c := range cases {
			res, err := m.Copy(ctx, bucket, "src", bucket, c.name, c.opts)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if multi := strings.HasPrefix(c.name, "multipart"); multi != (res.Parts == 5) {
				t.Fatalf("%s: result %+v", c.name, res)
			}
			got, _, err := m.DownloadBytes(ctx, bucket, c.name, DownloadOptions{})
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: copy differs from its source (%v)", c.name, err)
			}
			info, err := s.Core.StatObject(ctx, bucket, c.name, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wantColor := "blue"
			if c.opts.ReplaceMetadata {
				wantColor = ""
			}
			if info.ContentType != c.ct || info.UserMetadata["Color"] != wantColor {
				t.Fatalf("%s: content type %q, metadata %v", c.name, info.ContentType, info.UserMetadata)
			}
		}
	})
}

// TestRealBigCopy copies a 6 GiB object, over CopyObject's 5 GiB limit, and checks the
// copy byte by byte. It needs about 12 GiB on the store: S3XFER_BIG_TESTS=1 runs it.
func TestRealBigCopy(t *testing.T) {
	if os.Getenv("S3XFER_BIG_TESTS") != "1" {
		t.Skip("set S3XFER_BIG_TESTS=1 to copy a 6 GiB object")
	}
	onStores(t, Config{Concurrency: 16}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		ctx := context.Background()
		src := patternAt{size: 6 << 30}
		start := time.Now()
		if _, err := m.UploadReaderAt(ctx, bucket, "src", src, src.size, UploadOptions{PartSize: 64 * mib}); err != nil {
			t.Fatal(err)
		}
		t.Logf("uploaded 6 GiB in %v", time.Since(start))
		start = time.Now()
		// The threshold asks for one CopyObject, which S3 refuses over 5 GiB: Copy must use parts.
		res, err := m.Copy(ctx, bucket, "src", bucket, "dst", CopyOptions{UploadOptions: UploadOptions{Threshold: 8 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("copied 6 GiB in %v: %d parts", time.Since(start), res.Parts)
		if res.Size != src.size || res.Parts == 0 {
			t.Fatalf("result %+v", res)
		}
		start = time.Now()
		w := &sameAs{r: src}
		if _, err := m.DownloadStream(ctx, bucket, "dst", w, DownloadOptions{}); err != nil || w.bad != 0 || w.off != src.size {
			t.Fatalf("DownloadStream: %v, first difference at %d, %d bytes", err, w.bad-1, w.off)
		}
		t.Logf("checked the copy in %v", time.Since(start))
	})
}

// replaceOnce returns a failpoint hook that replaces bucket/key with a smaller object
// the first time a part is acknowledged: a range past its end must still be seen as a
// change, whichever of If-Match and Range the store checks first.
func replaceOnce(t *testing.T, s testbed.Store, bucket, key string) func(string) {
	var once sync.Once
	return func(name string) {
		if name != "part-acked" {
			return
		}
		once.Do(func() {
			next := randomBytes(6 * mib)
			if _, err := s.Core.Client.PutObject(context.Background(), bucket, key, bytes.NewReader(next), int64(len(next)), minio.PutObjectOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRealSourceReplacedMidTransfer(t *testing.T) {
	onStores(t, Config{Concurrency: 1}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		ctx := context.Background()
		data := randomBytes(12 * mib)
		for _, key := range []string{"copy-src", "download-src"} {
			if _, err := s.Core.Client.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		replaced := failpoint.WithHook(ctx, replaceOnce(t, s, bucket, "copy-src"))
		_, err := m.Copy(replaced, bucket, "copy-src", bucket, "dst", CopyOptions{UploadOptions: UploadOptions{Threshold: 6 * mib, PartSize: 5 * mib}})
		if !errors.Is(err, ErrSourceChanged) {
			t.Fatalf("copy: err %v, want ErrSourceChanged", err)
		}
		if _, err := s.Core.StatObject(ctx, bucket, "dst", minio.StatObjectOptions{}); !isCode(err, "NoSuchKey") {
			t.Fatalf("a copy of a replaced source must not exist: %v", err)
		}
		if ups, _ := s.Core.ListMultipartUploads(ctx, bucket, "", "", "", "", 1000); len(ups.Uploads) != 0 {
			t.Fatalf("uploads left: %+v", ups.Uploads)
		}

		dst := filepath.Join(t.TempDir(), "out")
		replaced = failpoint.WithHook(ctx, replaceOnce(t, s, bucket, "download-src"))
		res, err := m.Download(replaced, bucket, "download-src", dst, DownloadOptions{PartSize: 5 * mib})
		if err != nil {
			t.Fatal(err)
		}
		if res.Size != 6*mib || !bytes.Equal(readFile(t, dst), randomBytes(6*mib)) {
			t.Fatalf("download must restart on the new version alone; result %+v", res)
		}
	})
}
