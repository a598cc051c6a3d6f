package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/failpoint"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// A multipart object whose parts are kept by a digest, in parts of 1200 KiB (1200, 1200
// and 700 KiB), downloaded in 500 KiB ranges: 3 + 3 + 2 of them.
const (
	bigPart     = 1200 << 10
	bigPartSize = 2*bigPart + 700<<10
	subRange    = 500 << 10
	subRanges   = 8
)

// bigParts are the two ways a store keeps such an object: an md5-N ETag only (as s3xfer
// uploads with Content-MD5), and a composite SHA-256 with each part's value (as boto3
// uploads with ChecksumAlgorithm SHA256), checked part by part.
var bigParts = []struct {
	name    string
	sha256  bool
	want    Checksum
	perPart bool
}{
	{"md5 etag", false, ChecksumMD5, false},
	{"composite sha256", true, ChecksumSHA256, true},
}

// bigPartsStore is a fake store holding bkt/obj in parts of bigPart, with a composite
// SHA-256 or without, whose ranged GETs are counted; and the object's bytes.
func bigPartsStore(t *testing.T, sha bool) (*rangeGets, []byte) {
	t.Helper()
	f := transfertest.New()
	f.MakeBucket("bkt")
	f.MinPartSize = 1
	data := randomBytes(bigPartSize)
	ctx := context.Background()
	opts := minio.PutObjectOptions{}
	if sha {
		opts.UserMetadata = map[string]string{"x-amz-checksum-algorithm": "SHA256"}
	}
	id, err := f.NewMultipartUpload(ctx, "bkt", "obj", opts)
	if err != nil {
		t.Fatal(err)
	}
	var parts []minio.CompletePart
	for off := 0; off < len(data); off += bigPart {
		b := data[off:min(off+bigPart, len(data))]
		var popts minio.PutObjectPartOptions
		sum := sha256.Sum256(b)
		if sha {
			popts.CustomHeader = http.Header{"X-Amz-Checksum-Sha256": {base64.StdEncoding.EncodeToString(sum[:])}}
		}
		p, err := f.PutObjectPart(ctx, "bkt", "obj", id, len(parts)+1, bytes.NewReader(b), int64(len(b)), popts)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag, ChecksumSHA256: p.ChecksumSHA256})
	}
	if _, err := f.CompleteMultipartUpload(ctx, "bkt", "obj", id, parts, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, info, _ := f.Object("bkt", "obj"); !strings.HasSuffix(trimQuotes(info.ETag), "-3") || (info.ChecksumSHA256 != "") != sha {
		t.Fatalf("ETag %s, SHA-256 %q: want 3 parts, a SHA-256 %v", info.ETag, info.ChecksumSHA256, sha)
	}
	return &rangeGets{Fake: f}, data
}

// rangeGets counts the ranged GETs of bkt/obj by the offset they start at.
type rangeGets struct {
	*transfertest.Fake
	mu     sync.Mutex
	starts []int64
	// damage flips a byte of the answers for the range at damageAt: the first damage of
	// them, or every one if damage < 0.
	damageAt int64
	damage   int
}

func (g *rangeGets) GetObject(ctx context.Context, bucket, key string, opts minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error) {
	body, info, h, err := g.Fake.GetObject(ctx, bucket, key, opts)
	var start int64
	if _, serr := fmt.Sscanf(opts.Header().Get("Range"), "bytes=%d-", &start); err != nil || serr != nil {
		return body, info, h, err
	}
	g.mu.Lock()
	g.starts = append(g.starts, start)
	flip := start == g.damageAt && g.damage != 0
	if flip && g.damage > 0 {
		g.damage--
	}
	g.mu.Unlock()
	if !flip {
		return body, info, h, err
	}
	b, err := io.ReadAll(body)
	b[len(b)/2] ^= 1
	return io.NopCloser(bytes.NewReader(b)), info, h, err
}

func (g *rangeGets) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.starts)
}

func (g *rangeGets) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.starts = nil
}

func (g *rangeGets) of(start int64) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, s := range g.starts {
		if s == start {
			n++
		}
	}
	return n
}

// onlyWriterAt is an io.WriterAt that cannot be read back.
type onlyWriterAt struct{ w io.WriterAt }

func (w onlyWriterAt) WriteAt(p []byte, off int64) (int, error) { return w.w.WriteAt(p, off) }

// Parts larger than the range size are fetched in several ranges each, and verified by
// their digests all the same: to a file, into memory, and into a WriterAt that can be read
// back. One that cannot, or a file opened write-only, gets a range per part; a stream
// hashes its ranges in order as it writes them out.
func TestDownloadSplitsLargeParts(t *testing.T) {
	for _, c := range bigParts {
		t.Run(c.name, func(t *testing.T) {
			g, data := bigPartsStore(t, c.sha256)
			m, _ := testManager(g, Config{Concurrency: 4})
			opts := DownloadOptions{PartSize: subRange}
			check := func(how string, res Result, err error, got []byte, ranges int) {
				t.Helper()
				if err != nil || !bytes.Equal(got, data) || res.Checksum != c.want {
					t.Fatalf("%s: %v, equal %v, verified by %q (want %q)", how, err, bytes.Equal(got, data), res.Checksum, c.want)
				}
				if n := g.count(); n != ranges || res.Parts != ranges {
					t.Errorf("%s: %d ranged GETs, result of %d ranges; want %d", how, n, res.Parts, ranges)
				}
				g.reset()
			}

			dst := filepath.Join(t.TempDir(), "out")
			res, err := m.Download(context.Background(), "bkt", "obj", dst, opts)
			got, _ := os.ReadFile(dst)
			check("file", res, err, got, subRanges)

			got, res, err = m.DownloadBytes(context.Background(), "bkt", "obj", opts)
			check("bytes", res, err, got, subRanges)

			rw, err := os.Create(filepath.Join(t.TempDir(), "rw"))
			if err != nil {
				t.Fatal(err)
			}
			defer rw.Close()
			res, err = m.DownloadWriterAt(context.Background(), "bkt", "obj", rw, opts)
			check("readable WriterAt", res, err, readFile(t, rw.Name()), subRanges)

			buf := make([]byte, len(data))
			res, err = m.DownloadWriterAt(context.Background(), "bkt", "obj", onlyWriterAt{memAt{b: buf}}, opts)
			check("WriterAt that cannot be read", res, err, buf, 3)

			wo, err := os.OpenFile(filepath.Join(t.TempDir(), "wo"), os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer wo.Close()
			res, err = m.DownloadWriterAt(context.Background(), "bkt", "obj", wo, opts)
			check("file opened write-only", res, err, readFile(t, wo.Name()), 3)

			var out bytes.Buffer
			res, err = m.DownloadStream(context.Background(), "bkt", "obj", &out, opts)
			check("stream", res, err, out.Bytes(), subRanges)
		})
	}
}

// A byte damaged in transit in a part's second range, which is hashed by reading it back,
// is caught: the part (or, without per-part values, the object) is fetched again, and
// the download succeeds; damaged every time, it fails with ErrIntegrity after the second
// fetch and leaves nothing behind.
func TestDownloadSplitPartDamagedInTransit(t *testing.T) {
	damageAt := int64(bigPart + subRange) // part 2's second range
	for _, c := range bigParts {
		for _, always := range []bool{false, true} {
			name := c.name + " once"
			if always {
				name = c.name + " always"
			}
			t.Run(name, func(t *testing.T) {
				g, data := bigPartsStore(t, c.sha256)
				g.damageAt, g.damage = damageAt, 1
				if always {
					g.damage = -1
				}
				journal := &resume.Store{Dir: t.TempDir()}
				m, _ := testManager(g, Config{Concurrency: 4, Journal: journal})
				dst := filepath.Join(t.TempDir(), "out")
				res, err := m.Download(context.Background(), "bkt", "obj", dst, DownloadOptions{PartSize: subRange})
				if n := g.of(damageAt); n != 2 {
					t.Errorf("the damaged range fetched %d times, want 2", n)
				}
				if !always {
					if err != nil || !bytes.Equal(readFile(t, dst), data) || res.Checksum != c.want {
						t.Fatalf("download: %v, verified by %q", err, res.Checksum)
					}
					return
				}
				if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "fetched twice") {
					t.Fatalf("download: %v, want ErrIntegrity after fetching twice", err)
				}
				var te *Error
				if c.perPart && (!errors.As(err, &te) || te.Part != 2) {
					t.Errorf("error %v does not name part 2", err)
				}
				noFile(t, dst)
				noFile(t, dst+PartialSuffix)
				if infos, _ := journal.List(); len(infos) != 0 {
					t.Errorf("journals left: %+v", infos)
				}
			})
		}
	}
}

// A download interrupted in the middle of a part resumes with the parts whose ranges were
// all in and checked, and fetches the interrupted part again whole: its first range must
// be hashed before the others. The journal records each range of a part with the part's
// digest.
func TestDownloadResumesMidPart(t *testing.T) {
	for _, c := range bigParts {
		t.Run(c.name, func(t *testing.T) {
			g, data := bigPartsStore(t, c.sha256)
			journal := &resume.Store{Dir: t.TempDir()}
			m, _ := testManager(g, Config{Concurrency: 1, Journal: journal})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Cancelled at part 2's second range, once part 1's 3 are journaled (which goes on
			// beside the next ranges' requests): the hook holds the only request slot till then.
			var acked, journaled atomic.Int32
			part1 := make(chan struct{})
			ctx = failpoint.WithHook(ctx, func(name string) {
				switch {
				case name == "part-journaled" && journaled.Add(1) == 3:
					close(part1)
				case name == "part-acked" && acked.Add(1) == 5:
					select {
					case <-part1:
					case <-time.After(time.Minute):
						t.Error("part 1's ranges were not journaled within a minute")
					}
					cancel()
				}
			})
			dst := filepath.Join(t.TempDir(), "out")
			if _, err := m.Download(ctx, "bkt", "obj", dst, DownloadOptions{PartSize: subRange}); !errors.Is(err, context.Canceled) {
				t.Fatalf("first run: %v, want context.Canceled", err)
			}
			infos, _ := journal.List()
			if len(infos) != 1 {
				t.Fatalf("journals %+v, want one", infos)
			}
			j, err := journal.Open(infos[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			ps := j.Parts()
			j.Close()
			sum := md5.Sum(data[:bigPart])
			if len(ps) != 3 || !slices.ContainsFunc(ps, func(p resume.Part) bool { return p.Number == 3 && p.Offset == 2*subRange }) {
				t.Fatalf("journal holds %+v, want part 1's 3 ranges", ps)
			}
			for _, p := range ps {
				if p.Checksum != ps[0].Checksum || (c.want == ChecksumMD5 && p.Checksum != base64.StdEncoding.EncodeToString(sum[:])) {
					t.Errorf("range %d journaled with %s, want part 1's %s", p.Number, p.Checksum, c.want)
				}
			}

			g.reset()
			res, err := m.Download(context.Background(), "bkt", "obj", dst, DownloadOptions{})
			if err != nil || !res.Resumed || res.Checksum != c.want || !bytes.Equal(readFile(t, dst), data) {
				t.Fatalf("resume: %v, resumed %v, verified by %q", err, res.Resumed, res.Checksum)
			}
			if n := g.count(); n != subRanges-3 || res.BytesSent != bigPartSize-bigPart {
				t.Errorf("resume made %d ranged GETs (want %d), sent %d bytes (want %d)", n, subRanges-3, res.BytesSent, bigPartSize-bigPart)
			}
		})
	}
}

// A journal written when a part kept by a digest was fetched as one range (its ranges
// larger than its part size) continues with those ranges.
func TestDownloadResumesWholePartJournal(t *testing.T) {
	g, data := bigPartsStore(t, false)
	_, info, _ := g.Object("bkt", "obj")
	journal := &resume.Store{Dir: t.TempDir()}
	m, ev := testManager(g, Config{Concurrency: 2, Endpoint: "fake", Journal: journal})
	dst := filepath.Join(t.TempDir(), "out")

	// As that version left it: parts 1 and 2 in the partial file and in the journal.
	partial := make([]byte, len(data))
	copy(partial, data[:2*bigPart])
	if err := os.WriteFile(dst+PartialSuffix, partial, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dst)
	j, err := journal.Create(resume.ID(resume.Download, abs), resume.Header{Kind: resume.Download, Endpoint: "fake",
		Bucket: "bkt", Key: "obj", LocalPath: abs, PartSize: subRange, Size: int64(len(data)),
		Source: resume.Source{Bucket: "bkt", Key: "obj", ETag: trimQuotes(info.ETag), Size: int64(len(data))}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		sum := md5.Sum(data[i*bigPart : (i+1)*bigPart])
		if err := j.Append(context.Background(), resume.Part{Number: i + 1, Offset: int64(i * bigPart), Size: bigPart, Checksum: base64.StdEncoding.EncodeToString(sum[:])}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()

	res, err := m.Download(context.Background(), "bkt", "obj", dst, DownloadOptions{PartSize: subRange})
	if err != nil || !res.Resumed || res.Checksum != ChecksumMD5 || !bytes.Equal(readFile(t, dst), data) {
		t.Fatalf("resume: %v, resumed %v, verified by %q", err, res.Resumed, res.Checksum)
	}
	if n := g.count(); n != 1 || res.Parts != 3 {
		t.Errorf("resume made %d ranged GETs (want 1: part 3), result of %d ranges (want 3)", n, res.Parts)
	}
	if !slices.ContainsFunc(ev.notices(), func(s string) bool { return strings.Contains(s, "resuming: 2 of 3 ranges") }) {
		t.Errorf("notices %q", ev.notices())
	}
}
