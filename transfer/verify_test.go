package transfer

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/failpoint"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// verifyCase uploads an object of 3 parts and a tail (5 MiB parts) in one of the ways
// stores keep multipart objects, to download it in 2 MiB ranges.
type verifyCase struct {
	name    string
	setup   func(f *transfertest.Fake) // before the upload
	opts    UploadOptions
	want    Checksum // what verifies the download
	perPart bool     // the store keeps each part's value, so a bad part is named
	ranges  int      // the ranges a download fetches
}

var verifyCases = []verifyCase{
	{name: "full-object crc32c", want: ChecksumCRC32C, ranges: 8},
	{name: "composite crc32c", setup: func(f *transfertest.Fake) { f.IgnoreChecksumType = true }, want: ChecksumCRC32C, perPart: true, ranges: 8},
	// An MD5 cannot be combined: each 5 MiB part's 2 MiB ranges are hashed in order.
	{name: "md5 etag", opts: UploadOptions{Checksum: ChecksumMD5}, want: ChecksumMD5, ranges: 10},
}

func uploadForVerify(t *testing.T, c verifyCase, cfg Config) (*transfertest.Fake, *Manager, *events, []byte) {
	t.Helper()
	f, m, ev := fakeManager(t, cfg)
	if c.setup != nil {
		c.setup(f)
	}
	data := randomBytes(3*5*mib + 1234)
	if _, err := uploadBytes(m, context.Background(), data, c.opts); err != nil {
		t.Fatal(err)
	}
	return f, m, ev, data
}

func TestDownloadVerifiesMultipart(t *testing.T) {
	for _, c := range verifyCases {
		t.Run(c.name, func(t *testing.T) {
			_, m, _, data := uploadForVerify(t, c, Config{})
			dst := filepath.Join(t.TempDir(), "out")
			res, err := m.Download(context.Background(), "bkt", "obj", dst, DownloadOptions{PartSize: 2 * mib})
			if err != nil {
				t.Fatal(err)
			}
			if res.Checksum != c.want {
				t.Errorf("verified by %q, want %q", res.Checksum, c.want)
			}
			got, _ := os.ReadFile(dst)
			if !bytes.Equal(got, data) {
				t.Fatal("downloaded bytes differ")
			}
			var buf bytes.Buffer
			if res, err := m.DownloadStream(context.Background(), "bkt", "obj", &buf, DownloadOptions{PartSize: 2 * mib}); err != nil || res.Checksum != c.want {
				t.Fatalf("stream: %v, verified by %q", err, res.Checksum)
			}
			if !bytes.Equal(buf.Bytes(), data) {
				t.Fatal("streamed bytes differ")
			}
		})
	}
}

// A byte that rots on the store fails the download after a second fetch, names the part
// where the store keeps per-part values, and leaves neither the file nor a journal.
func TestDownloadCorruptAtRest(t *testing.T) {
	for _, c := range verifyCases {
		t.Run(c.name, func(t *testing.T) {
			journal := &resume.Store{Dir: t.TempDir()}
			f, m, _, _ := uploadForVerify(t, c, Config{Journal: journal})
			if !f.Corrupt("bkt", "obj", 7*mib+3) { // in part 2
				t.Fatal("nothing to corrupt")
			}
			gets := countOp(f, "GetObject")
			dst := filepath.Join(t.TempDir(), "out")
			_, err := m.Download(context.Background(), "bkt", "obj", dst, DownloadOptions{PartSize: 2 * mib})
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("err %v, want ErrIntegrity", err)
			}
			if !strings.Contains(err.Error(), "fetched twice") {
				t.Errorf("error %q does not say the bytes were fetched again", err)
			}
			var te *Error
			if !errors.As(err, &te) || te.Op != "download" || te.Key != "obj" {
				t.Fatalf("error %v is not the download's *Error", err)
			}
			if c.perPart && (te.Part != 2 || te.Request != "GetObject" || strings.Count(err.Error(), "part 2") != 1) {
				t.Errorf("error %q (part %d) does not name part 2 once", err, te.Part)
			}
			if strings.Count(err.Error(), "s3://bkt/obj") != 1 {
				t.Errorf("error %q names the object more than once", err)
			}
			if n := countOp(f, "GetObject") - gets; n <= c.ranges {
				t.Errorf("%d GETs, want the %d ranges and at least one fetched again", n, c.ranges)
			}
			for _, p := range []string{dst, dst + PartialSuffix} {
				if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: %v, want it absent", p, err)
				}
			}
			if infos, _ := journal.List(); len(infos) != 0 {
				t.Errorf("journals left: %+v", infos)
			}
			var buf bytes.Buffer
			_, err = m.DownloadStream(context.Background(), "bkt", "obj", &buf, DownloadOptions{PartSize: 2 * mib})
			if !errors.Is(err, ErrIntegrity) {
				t.Errorf("stream: %v, want ErrIntegrity", err)
			}
			if c.perPart && (!errors.As(err, &te) || te.Part != 2) {
				t.Errorf("stream: %v, want part 2 named", err)
			}
		})
	}
}

// A byte flipped in transit is caught and the range fetched again: the download succeeds.
func TestDownloadCorruptInTransit(t *testing.T) {
	for _, c := range verifyCases {
		t.Run(c.name, func(t *testing.T) {
			f, m, _, data := uploadForVerify(t, c, Config{})
			var gets atomic.Int32
			f.Fault = func(call transfertest.Call, _ int) transfertest.Fault {
				if call.Op == "GetObject" && gets.Add(1) == 3 {
					return transfertest.Fault{Flip: true}
				}
				return transfertest.Fault{}
			}
			dst := filepath.Join(t.TempDir(), "out")
			res, err := m.Download(context.Background(), "bkt", "obj", dst, DownloadOptions{PartSize: 2 * mib})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(dst)
			if !bytes.Equal(got, data) || res.Checksum != c.want {
				t.Fatalf("equal %v, verified by %q", bytes.Equal(got, data), res.Checksum)
			}
		})
	}
}

// Without GetObjectAttributes the layout comes from partNumber GETs; without those too,
// nothing can verify an md5-N ETag: auto says so, require refuses before any range.
func TestDownloadLayoutFallbacks(t *testing.T) {
	c := verifyCases[2]
	f, m, ev, data := uploadForVerify(t, c, Config{})
	var noParts atomic.Bool
	f.Fault = func(call transfertest.Call, _ int) transfertest.Fault {
		if call.Op == "GetObjectAttributes" || (noParts.Load() && call.Op == "GetObject" && call.Part > 0) {
			return transfertest.Fault{Err: minio.ErrorResponse{Code: "NotImplemented", StatusCode: 501}}
		}
		return transfertest.Fault{}
	}
	res, got, err := downloadBytes(m, DownloadOptions{PartSize: 2 * mib})
	if err != nil || res.Checksum != ChecksumMD5 || !bytes.Equal(got, data) {
		t.Fatalf("inferred layout: %v, verified by %q", err, res.Checksum)
	}
	noParts.Store(true)
	if res, _, err = downloadBytes(m, DownloadOptions{PartSize: 2 * mib}); err != nil || res.Checksum != ChecksumNone {
		t.Fatalf("no layout: %v, verified by %q", err, res.Checksum)
	}
	if n := ev.notices(); len(n) != 1 || !strings.Contains(n[0], "only its size was checked") {
		t.Errorf("notices %q, want one that says only the size was checked", n)
	}
	gets := countOp(f, "GetObject")
	if _, _, err = downloadBytes(m, DownloadOptions{Checksum: ChecksumRequire}); !errors.Is(err, ErrUnverifiable) {
		t.Fatalf("require: %v, want ErrUnverifiable", err)
	}
	if n := countOp(f, "GetObject") - gets; n != 1 { // the partNumber GET of the layout
		t.Errorf("require fetched %d ranges before refusing", n-1)
	}
}

func downloadBytes(m *Manager, opts DownloadOptions) (Result, []byte, error) {
	b, res, err := m.DownloadBytes(context.Background(), "bkt", "obj", opts)
	return res, b, err
}

// A resumed download still verifies the whole object, from the ranges' checksums kept in
// the journal.
func TestDownloadResumeVerifies(t *testing.T) {
	journal := &resume.Store{Dir: t.TempDir()}
	_, m, _, data := uploadForVerify(t, verifyCases[0], Config{Concurrency: 1, Journal: journal})
	var n atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = failpoint.WithHook(ctx, func(name string) {
		if name == "part-journaled" && n.Add(1) == 3 {
			cancel()
		}
	})
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := m.Download(ctx, "bkt", "obj", dst, DownloadOptions{PartSize: 2 * mib}); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want context.Canceled", err)
	}
	res, err := m.Download(context.Background(), "bkt", "obj", dst, DownloadOptions{})
	if err != nil || !res.Resumed || res.Checksum != ChecksumCRC32C {
		t.Fatalf("resume: %v, resumed %v, verified by %q", err, res.Resumed, res.Checksum)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("resumed bytes differ")
	}
}

// A multipart copy follows its source's parts so that the MD5s of the parts copied must
// give the source's ETag.
func TestCopyVerified(t *testing.T) {
	_, m, _, _ := uploadForVerify(t, verifyCases[2], Config{})
	res, err := m.Copy(context.Background(), "bkt", "obj", "bkt", "copy", CopyOptions{UploadOptions: UploadOptions{Threshold: 5 * mib}})
	if err != nil || res.Checksum != ChecksumMD5 || res.Parts != 4 {
		t.Fatalf("copy: %v, verified by %q in %d parts", err, res.Checksum, res.Parts)
	}
}

// A copy of an object with a full-object CRC32C asks the store for the CRC32C of each part
// copied: they must combine to the source's before the copy completes.
func TestCopyVerifiedByPartCRCs(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	data := randomBytes(3*5*mib + 99)
	if _, err := uploadBytes(m, context.Background(), data, UploadOptions{Threshold: 1 << 30, Checksum: ChecksumCRC32C}); err != nil {
		t.Fatal(err)
	}
	res, err := m.Copy(context.Background(), "bkt", "obj", "bkt", "copy", CopyOptions{UploadOptions: UploadOptions{Threshold: 5 * mib, PartSize: 5 * mib}})
	if err != nil || res.Checksum != ChecksumCRC32C || res.Parts != 4 {
		t.Fatalf("copy: %v, verified by %q in %d parts", err, res.Checksum, res.Parts)
	}
	if got, _, _ := f.Object("bkt", "copy"); !bytes.Equal(got, data) {
		t.Fatal("copied bytes differ")
	}
}
