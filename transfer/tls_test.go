package transfer

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
)

// tlsObjects is just enough S3 over https for PUT, GET and HEAD of whole objects; it
// counts the connections clients open to it.
type tlsObjects struct {
	mu      sync.Mutex
	objects map[string][]byte
	conns   atomic.Int64
}

func (s *tlsObjects) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodPut:
		body, _ := io.ReadAll(r.Body)
		s.objects[r.URL.Path] = body
		w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
	case http.MethodGet, http.MethodHead:
		body, ok := s.objects[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

func newTLSObjects(t *testing.T) (*tlsObjects, *httptest.Server) {
	s := &tlsObjects{objects: map[string][]byte{}}
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return s, srv
}

// TestTLSClientKeepAlive: with RootCAs, NewClient's transport trusts the server's CA and
// keeps its HTTP/1.1 connection alive: many requests one after another open one
// connection, not one each.
func TestTLSClientKeepAlive(t *testing.T) {
	objs, srv := newTLSObjects(t)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	core, err := NewClient(ClientConfig{Endpoint: srv.URL, AccessKey: "k", SecretKey: "s", Addressing: AddressingPath, RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 40
	for i := range n {
		data := bytes.Repeat([]byte{byte(i)}, 1000+i)
		key := fmt.Sprintf("k%d", i)
		if _, err := core.PutObject(ctx, "bucket", key, bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if _, err := core.StatObject(ctx, "bucket", key, minio.StatObjectOptions{}); err != nil {
			t.Fatalf("stat %d: %v", i, err)
		}
		rc, _, _, err := core.GetObject(ctx, "bucket", key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get %d: %d bytes, %v", i, len(got), err)
		}
	}
	if c := objs.conns.Load(); c != 1 {
		t.Errorf("%d requests one after another opened %d TLS connections, want 1 kept alive", 3*n, c)
	}
}

// TestTLSClientVerification: without the CA the certificate is refused, at once and
// classified as a TLS error (not retried); InsecureSkipVerify accepts it; RootCAs with
// one's own Transport is refused rather than silently ignored.
func TestTLSClientVerification(t *testing.T) {
	_, srv := newTLSObjects(t)
	ctx := context.Background()
	core, err := NewClient(ClientConfig{Endpoint: srv.URL, AccessKey: "k", SecretKey: "s", Addressing: AddressingPath})
	if err != nil {
		t.Fatal(err)
	}
	_, err = core.StatObject(ctx, "bucket", "k", minio.StatObjectOptions{})
	if err == nil || !TLSError(err) || Transient(err) {
		t.Errorf("an unknown authority: err %v, TLSError %v, Transient %v; want a TLS error, not transient", err, TLSError(err), Transient(err))
	}
	m := New(core, Config{Retry: RetryPolicy{Attempts: 5}})
	if _, _, err := m.DownloadBytes(ctx, "bucket", "k", DownloadOptions{}); err == nil || !TLSError(err) {
		t.Errorf("Manager download with an unknown authority: %v, want a TLS error", err)
	}

	insecure, err := NewClient(ClientConfig{Endpoint: srv.URL, AccessKey: "k", SecretKey: "s", Addressing: AddressingPath, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := insecure.PutObject(ctx, "bucket", "k", bytes.NewReader([]byte("x")), 1, "", "", minio.PutObjectOptions{}); err != nil {
		t.Errorf("InsecureSkipVerify: %v", err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	if _, err := NewClient(ClientConfig{Endpoint: srv.URL, RootCAs: pool, Transport: http.DefaultTransport}); err == nil {
		t.Error("RootCAs with a Transport of one's own: no error")
	}

	// An https endpoint that speaks plain http: not retried either.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	wrong, err := NewClient(ClientConfig{Endpoint: "https://" + plain.Listener.Addr().String(), AccessKey: "k", SecretKey: "s", Addressing: AddressingPath})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.StatObject(ctx, "bucket", "k", minio.StatObjectOptions{}); err == nil || !TLSError(err) || Transient(err) {
		t.Errorf("https to a plain http server: %v, TLSError %v; want a TLS error, not transient", err, TLSError(err))
	}
}

// TestTLSMinIO moves objects through a Manager to MinIO over https with its private CA
// trusted through RootCAs, and checks that requests one after another reuse the
// connection: uploads and downloads of many small objects, then a multipart upload.
func TestTLSMinIO(t *testing.T) {
	st := testbed.TLSStore(t)
	pem, err := os.ReadFile(st.CABundle)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", st.CABundle)
	}
	core, err := NewClient(ClientConfig{Endpoint: st.Endpoint, AccessKey: st.AccessKey, SecretKey: st.SecretKey, Addressing: AddressingPath, RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	bucket := st.NewBucket(t)
	var newConns, reused atomic.Int64
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(ci httptrace.GotConnInfo) {
			if ci.Reused {
				reused.Add(1)
			} else {
				newConns.Add(1)
			}
		},
	})
	m := New(core, Config{Concurrency: 4})
	const n = 30
	for i := range n {
		data := bytes.Repeat([]byte{byte(i)}, 4096+i)
		key := fmt.Sprintf("small/%d", i)
		if _, err := m.UploadReaderAt(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), UploadOptions{}); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		got, _, err := m.DownloadBytes(ctx, bucket, key, DownloadOptions{})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("download %d: %d bytes, %v", i, len(got), err)
		}
	}
	requests := newConns.Load() + reused.Load()
	t.Logf("%d small uploads and downloads: %d requests, %d new connections", n, requests, newConns.Load())
	if requests < 2*n || newConns.Load() > 2 {
		t.Errorf("%d requests one after another opened %d connections; want them kept alive (at most 2)", requests, newConns.Load())
	}

	// A multipart upload with 4 parts in flight: at most a connection per part in flight.
	big := bytes.Repeat([]byte("0123456789abcdef"), (40<<20)/16)
	before := newConns.Load()
	if _, err := m.UploadReaderAt(ctx, bucket, "big", bytes.NewReader(big), int64(len(big)), UploadOptions{PartSize: 5 << 20, Threshold: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	got, _, err := m.DownloadBytes(ctx, bucket, "big", DownloadOptions{PartSize: 5 << 20})
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("download of the multipart object: %d bytes, %v", len(got), err)
	}
	if c := newConns.Load() - before; c > 4 {
		t.Errorf("an 8-part upload and download with 4 in flight opened %d new connections, want at most 4", c)
	}
}
