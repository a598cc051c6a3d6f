package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// tamperParts stands between the engine and a store: it records which part requests
// carry a trailer and, for part n, damages the request after the engine read the body
// (flip: a byte inverted in flight; wrongTrailer: the trailer replaced by the CRC32C of
// other bytes), which the store must refuse.
type tamperParts struct {
	S3
	n                  int
	flip, wrongTrailer bool

	mu       sync.Mutex
	trailers []bool // by request, in order: whether it carried a trailer
	sizes    []int64
}

func (s *tamperParts) PutObjectPart(ctx context.Context, bucket, key, uploadID string, n int, data io.Reader, size int64, opts minio.PutObjectPartOptions) (minio.ObjectPart, error) {
	s.mu.Lock()
	s.trailers = append(s.trailers, opts.Trailer != nil)
	s.sizes = append(s.sizes, size)
	s.mu.Unlock()
	if n == s.n && size > 1 {
		data = &tamperReader{r: data, size: size, flip: s.flip, trailer: opts.Trailer, wrong: s.wrongTrailer}
	}
	return putObjectPart(ctx, s.S3, bucket, key, uploadID, n, data, size, opts) // as the store layer sends it
}

func (s *tamperParts) requests() (trailers []bool, sizes []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.trailers...), append([]int64(nil), s.sizes...)
}

type tamperReader struct {
	r       io.Reader
	size, n int64
	flip    bool
	wrong   bool
	trailer map[string][]string
}

func (t *tamperReader) Read(p []byte) (int, error) {
	k, err := t.r.Read(p)
	if mid := t.size / 2; t.flip && t.n <= mid && mid < t.n+int64(k) {
		p[mid-t.n] ^= 0xff
	}
	t.n += int64(k)
	if t.wrong && t.n == t.size && t.trailer != nil {
		t.trailer[crcTrailer] = []string{"AAAAAA=="} // the CRC32C of no bytes
	}
	return k, err
}

// A store that verifies a trailing CRC32C gets every part so after the one-byte probe:
// no part is read before it is sent, and a second upload does not probe again.
func TestUploadTrailingChecksum(t *testing.T) {
	f := transfertest.New()
	f.MinPartSize = 1
	f.MakeBucket("bkt")
	s := &tamperParts{S3: f}
	m, _ := testManager(s, Config{Concurrency: 2})
	data := randomBytes(16 * mib)
	for i := range 2 {
		res, err := uploadBytes(m, context.Background(), data, UploadOptions{})
		if err != nil || res.Checksum != ChecksumCRC32C || res.Parts != 4 {
			t.Fatalf("upload %d: %+v, %v; want 4 parts verified by crc32c", i, res, err)
		}
		wantObject(t, f, data)
	}
	trailers, sizes := s.requests()
	if len(trailers) != 9 || sizes[0] != 1 {
		t.Fatalf("part requests of sizes %v; want the one-byte probe, then 4 parts twice", sizes)
	}
	for i, tr := range trailers {
		if !tr {
			t.Errorf("part request %d (%d bytes) without a trailer", i, sizes[i])
		}
	}
	if m.trailers.Load() != crcYes {
		t.Errorf("trailers %d, want remembered as supported", m.trailers.Load())
	}
}

// A part damaged after the engine read it, or sent with a wrong trailer, is refused by
// the store: the upload fails and leaves nothing.
func TestUploadTrailerTamperedIsRejected(t *testing.T) {
	for _, tc := range []struct {
		name               string
		flip, wrongTrailer bool
	}{{"byte flipped in flight", true, false}, {"wrong trailer", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := transfertest.New()
			f.MinPartSize = 1
			f.MakeBucket("bkt")
			m, _ := testManager(&tamperParts{S3: f, n: 2, flip: tc.flip, wrongTrailer: tc.wrongTrailer}, Config{Concurrency: 1})
			_, err := uploadBytes(m, context.Background(), randomBytes(16*mib), UploadOptions{})
			if !isCode(err, "BadDigest") {
				t.Fatalf("got %v, want the store's BadDigest", err)
			}
			wantNoObject(t, f)
		})
	}
}

// mutableAt is a source whose bytes a test changes while it is uploaded.
type mutableAt struct {
	mu sync.RWMutex
	b  []byte
}

func (m *mutableAt) ReadAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return bytes.NewReader(m.b).ReadAt(p, off)
}

func (m *mutableAt) change(off int64) {
	m.mu.Lock()
	m.b[off] ^= 0xff
	m.mu.Unlock()
}

// A part sent again after a failed attempt must be what that attempt read: a source
// changed under it fails the upload with ErrSourceChanged at once (no further retry)
// and leaves nothing. The trailing checksum has no pass before the send to compare
// with, so the retry compares with what the earlier attempt read as it reads.
func TestUploadTrailerRetryDetectsChangedSource(t *testing.T) {
	const part = 5 * mib
	for _, tc := range []struct {
		name   string
		first  transfertest.Fault
		change int64 // offset within part 2, changed before its second attempt
	}{
		{"reset mid-body, changed in the half sent", transfertest.ResetMidBody(), 10},
		{"answer lost, changed near the end", transfertest.LostResponse(), part - 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, m, _ := fakeManager(t, Config{Concurrency: 1})
			src := &mutableAt{b: randomBytes(16 * mib)}
			f.Fault = func(c transfertest.Call, attempt int) transfertest.Fault {
				if c.Op != "PutObjectPart" || c.Part != 2 {
					return transfertest.Fault{}
				}
				if attempt == 1 {
					return tc.first
				}
				if attempt == 2 {
					src.change(part + tc.change)
				}
				return transfertest.Fault{}
			}
			_, err := m.UploadReaderAt(context.Background(), "bkt", "obj", src, int64(len(src.b)), UploadOptions{PartSize: part})
			if !errors.Is(err, ErrSourceChanged) {
				t.Fatalf("got %v, want ErrSourceChanged", err)
			}
			n := 0
			for _, c := range f.Calls() {
				if c.Op == "PutObjectPart" && c.Part == 2 {
					n++
				}
			}
			if n != 2 {
				t.Errorf("part 2 sent %d times, want 2: the change is no transient failure", n)
			}
			wantNoObject(t, f)
		})
	}
}

// A store that refuses a trailing checksum gets the CRC32C in a header, checksummed
// before the send, from the first upload on; the Manager remembers, a new one probes.
func TestUploadTrailersRefusedFallBack(t *testing.T) {
	f := transfertest.New()
	f.MinPartSize = 1
	f.RefuseTrailers = true
	f.MakeBucket("bkt")
	s := &tamperParts{S3: f}
	m, _ := testManager(s, Config{Concurrency: 2})
	data := randomBytes(16 * mib)
	for i := range 2 {
		res, err := uploadBytes(m, context.Background(), data, UploadOptions{})
		if err != nil || res.Checksum != ChecksumCRC32C {
			t.Fatalf("upload %d: %+v, %v; want verified by crc32c", i, res, err)
		}
		wantObject(t, f, data)
	}
	trailers, sizes := s.requests()
	// The refused trailer probe, the empty CRC32C probe, 4 parts; then 4 parts.
	want := []bool{true, false, false, false, false, false, false, false, false, false}
	if fmt.Sprint(trailers) != fmt.Sprint(want) {
		t.Fatalf("trailers %v (sizes %v), want %v", trailers, sizes, want)
	}
	if m.trailers.Load() != crcNo {
		t.Errorf("trailers %d, want remembered as refused", m.trailers.Load())
	}
	m2, _ := testManager(s, Config{Concurrency: 2})
	if _, err := uploadBytes(m2, context.Background(), data, UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if trailers, _ = s.requests(); !trailers[len(want)] {
		t.Errorf("a new Manager did not probe the store: %v", trailers)
	}
}

// On the real stores: MinIO and versitygw verify a trailing CRC32C, so parts go so (each
// byte read once) and a byte damaged in flight or a wrong trailer is refused by the
// store (after the retries a damage in transit gets); another store falls back to the
// header and the upload still succeeds.
func TestRealUploadTrailingChecksum(t *testing.T) {
	stores := testbed.RealStores(t)
	if len(stores) == 0 {
		t.Skip(testbed.NoStoresMessage)
	}
	for _, st := range stores {
		t.Run(st.Name, func(t *testing.T) {
			bucket := st.NewBucket(t)
			data := randomBytes(12 * mib)
			ctx := context.Background()
			put := func(s *tamperParts, key string) error {
				m, _ := testManager(s, Config{Concurrency: 3, Endpoint: st.Endpoint}) // BadDigest is retried: no sleeps
				_, err := m.UploadReaderAt(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 5 * mib})
				if err == nil && st.Name != "minio" && st.Name != "versitygw" {
					return nil
				}
				if want := st.Name == "minio" || st.Name == "versitygw"; want && m.trailers.Load() != crcYes {
					t.Errorf("%s: trailers %d, want supported", key, m.trailers.Load())
				}
				return err
			}
			s := &tamperParts{S3: st.Core}
			if err := put(s, "whole"); err != nil {
				t.Fatal(err)
			}
			got, _, err := New(st.Core, Config{}).DownloadBytes(ctx, bucket, "whole", DownloadOptions{})
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
			}
			if st.Name != "minio" && st.Name != "versitygw" {
				return
			}
			if trailers, sizes := s.requests(); len(trailers) != 4 || !trailers[0] || !trailers[1] || !trailers[2] || !trailers[3] {
				t.Errorf("part requests with a trailer %v (sizes %v); want the probe and 3 parts, all", trailers, sizes)
			}
			for _, tc := range []struct {
				key                string
				flip, wrongTrailer bool
			}{{"flipped", true, false}, {"wrong-trailer", false, true}} {
				err := put(&tamperParts{S3: st.Core, n: 2, flip: tc.flip, wrongTrailer: tc.wrongTrailer}, tc.key)
				if !isCode(err, "BadDigest") && !isCode(err, "XAmzContentChecksumMismatch") && !isCode(err, "InvalidDigest") {
					t.Errorf("%s: got %v, want the store's refusal of the checksum", tc.key, err)
				}
				if _, err := st.Core.StatObject(ctx, bucket, tc.key, minio.StatObjectOptions{}); Code(err) != "NoSuchKey" {
					t.Errorf("%s: the object exists (stat: %v)", tc.key, err)
				}
			}
		})
	}
}
