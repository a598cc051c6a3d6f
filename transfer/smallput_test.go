package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
)

// writeCounter is NewClient's transport, its connections counting the writes they make.
type writeCounter struct {
	*http.Transport
	writes atomic.Int64
}

func newWriteCounter() *writeCounter {
	w := &writeCounter{Transport: newTransport(1, DefaultIdleTimeout)}
	dial := w.DialContext
	w.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countedConn{Conn: c, writes: &w.writes}, nil
	}
	return w
}

type countedConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// A small object's PUT goes out in one write, its body with its headers: net/http sends
// a body it cannot tell is in memory in a write of its own, a second syscall and packet
// at both ends for every small file.
func TestSmallPutOneWrite(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = body
		mu.Unlock()
		sum := md5.Sum(body)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
	}))
	defer srv.Close()
	tr := newWriteCounter()
	defer tr.CloseIdleConnections()
	core, err := NewClient(ClientConfig{Endpoint: srv.URL, AccessKey: "k", SecretKey: "s", Addressing: AddressingPath, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	m := New(core, Config{Concurrency: 1})
	for _, size := range []int{1, 300, smallBody} {
		data := randomBytes(size)
		path := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		before := tr.writes.Load()
		if _, err := m.Upload(context.Background(), "bkt", "k", path, UploadOptions{}); err != nil {
			t.Fatal(err)
		}
		if n := tr.writes.Load() - before; n != 1 {
			t.Errorf("%d bytes: the PUT took %d writes, want 1", size, n)
		}
		mu.Lock()
		if !bytes.Equal(got["/bkt/k"], data) {
			t.Errorf("%d bytes: the store got %d other bytes", size, len(got["/bkt/k"]))
		}
		mu.Unlock()
	}
}

// A small body that is not as long as its request says is an error, as net/http makes it,
// and is closed.
func TestSmallBodyLengthMismatch(t *testing.T) {
	base := roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Fatal("a request with a body of the wrong length was sent")
		return nil, nil
	})
	for _, body := range []string{"short", "longer than it says"} {
		closed := false
		req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:1/bkt/k", nil)
		req.Body = &closeRecorder{Reader: strings.NewReader(body), closed: &closed}
		req.ContentLength = 10
		_, err := activityTransport{base: base}.RoundTrip(req)
		wantErrSays(t, err, "ContentLength=10")
		if !closed {
			t.Errorf("%q: body not closed", body)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type closeRecorder struct {
	io.Reader
	closed *bool
}

func (c *closeRecorder) Close() error { *c.closed = true; return nil }

// flipTransport damages every PUT body on its way to the store, after the engine has
// read it and computed its checksums: one byte inverted.
type flipTransport struct{ base http.RoundTripper }

func (f flipTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && req.ContentLength > 0 {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		b[len(b)/2] ^= 0xff
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return f.base.RoundTrip(req)
}

// On the real stores, a small object's single PUT is verified by the store: sent intact it
// reads back the same; with a byte damaged between the engine and the store, the store
// refuses it (Content-MD5 in auto mode, x-amz-checksum-crc32c with crc32c) and no object
// appears.
func TestRealSmallPutCorruptBodyRefused(t *testing.T) {
	stores := testbed.RealStores(t)
	if len(stores) == 0 {
		t.Skip(testbed.NoStoresMessage)
	}
	for _, st := range stores {
		t.Run(st.Name, func(t *testing.T) {
			bucket := st.NewBucket(t)
			ctx := context.Background()
			data := randomBytes(300)
			path := filepath.Join(t.TempDir(), "small")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			manager := func(flip bool) *Manager {
				tr := newTransport(4, DefaultIdleTimeout)
				t.Cleanup(tr.CloseIdleConnections)
				var rt http.RoundTripper = tr
				if flip {
					rt = flipTransport{tr}
				}
				core, err := NewClient(ClientConfig{Endpoint: st.Endpoint, AccessKey: st.AccessKey, SecretKey: st.SecretKey,
					Addressing: AddressingPath, Transport: rt})
				if err != nil {
					t.Fatal(err)
				}
				m, _ := testManager(core, Config{Concurrency: 1}) // no sleeps between the retries
				return m
			}
			if st.Name == "moto" {
				// moto checks no Content-MD5 and keeps what arrived: s3xfer's check of the
				// ETag fails, and it deletes the object.
				_, err := manager(true).Upload(ctx, bucket, "flipped", path, UploadOptions{})
				if !errors.Is(err, ErrIntegrity) {
					t.Errorf("got %v, want ErrIntegrity", err)
				}
				if _, err := st.Core.StatObject(ctx, bucket, "flipped", minio.StatObjectOptions{}); Code(err) != "NoSuchKey" {
					t.Errorf("the corrupt object exists (stat: %v)", err)
				}
				return // nor does it answer with a CRC32C
			}
			for _, mode := range []Checksum{ChecksumAuto, ChecksumCRC32C} {
				key := "intact-" + string(mode)
				res, err := manager(false).Upload(ctx, bucket, key, path, UploadOptions{Checksum: mode})
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				want := ChecksumMD5
				if mode == ChecksumCRC32C {
					want = ChecksumCRC32C
				}
				if res.Checksum != want {
					t.Errorf("%s: verified by %q, want %q", key, res.Checksum, want)
				}
				got, _, err := New(st.Core, Config{}).DownloadBytes(ctx, bucket, key, DownloadOptions{})
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s: read back %d bytes (%v), equal %v", key, len(got), err, bytes.Equal(got, data))
				}

				key = "flipped-" + string(mode)
				_, err = manager(true).Upload(ctx, bucket, key, path, UploadOptions{Checksum: mode})
				if c := Code(err); c != "BadDigest" && c != "XAmzContentChecksumMismatch" && c != "InvalidDigest" {
					t.Errorf("%s: got %v, want the store's refusal of the checksum", key, err)
				}
				if _, err := st.Core.StatObject(ctx, bucket, key, minio.StatObjectOptions{}); Code(err) != "NoSuchKey" {
					t.Errorf("%s: the object exists (stat: %v)", key, err)
				}
			}
		})
	}
}

// Every request names s3xfer in its User-Agent, the listing's own GET too, so that a
// store's logs tell s3xfer's requests from others'.
func TestRequestsNameS3xfer(t *testing.T) {
	var mu sync.Mutex
	agents := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		agents[r.Method+" "+r.URL.Query().Get("list-type")] = r.Header.Get("User-Agent")
		mu.Unlock()
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, `<ListBucketResult><Name>bkt</Name><IsTruncated>false</IsTruncated></ListBucketResult>`)
			return
		}
		w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
	}))
	defer srv.Close()
	core, err := NewClient(ClientConfig{Endpoint: srv.URL, AccessKey: "k", SecretKey: "s", Addressing: AddressingPath})
	if err != nil {
		t.Fatal(err)
	}
	m := New(core, Config{Concurrency: 1})
	if _, err := m.UploadReaderAt(context.Background(), "bkt", "k", strings.NewReader("abc"), 3, UploadOptions{Checksum: ChecksumNone}); err != nil {
		t.Fatal(err)
	}
	for _, err := range m.List(context.Background(), "bkt", "p/") {
		if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(agents) < 2 {
		t.Fatalf("the store saw %d kinds of request, want a PUT and a listing: %v", len(agents), agents)
	}
	for req, ua := range agents {
		if !strings.Contains(ua, "s3xfer/") {
			t.Errorf("%s: User-Agent %q does not name s3xfer", req, ua)
		}
	}
}
