package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/ratelimit"
)

// countingStore is a minimal S3 that accepts any number of single PUTs and multipart
// uploads and records when each request body byte arrived, as a server sees the rate.
type countingStore struct {
	mu      sync.Mutex
	start   time.Time
	arrived []arrival
	md5s    map[string]map[int][]byte // upload ID -> part number -> MD5
	seq     int
}

type arrival struct {
	at time.Duration
	n  int
}

func (s *countingStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	buf := make([]byte, 32<<10)
	h := md5.New()
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			s.mu.Lock()
			s.arrived = append(s.arrived, arrival{time.Since(s.start), n})
			s.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	sum := h.Sum(nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		s.seq++
		id := fmt.Sprint("up", s.seq)
		s.md5s[id] = map[int][]byte{}
		fmt.Fprintf(w, `<InitiateMultipartUploadResult><UploadId>%s</UploadId></InitiateMultipartUploadResult>`, id)
	case r.Method == http.MethodPut && q.Has("partNumber"):
		var n int
		fmt.Sscan(q.Get("partNumber"), &n)
		s.md5s[q.Get("uploadId")][n] = sum
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum)+`"`)
	case r.Method == http.MethodPut:
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum)+`"`)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		parts := s.md5s[q.Get("uploadId")]
		ordered := make([][]byte, len(parts))
		for n, sum := range parts {
			ordered[n-1] = sum
		}
		fmt.Fprintf(w, `<CompleteMultipartUploadResult><Bucket>bkt</Bucket><Key>k</Key><ETag>"%s"</ETag></CompleteMultipartUploadResult>`, chunk.MultipartETag(ordered))
	default:
		http.Error(w, "unexpected", http.StatusBadRequest)
	}
}

// worstWindow is the most bytes that arrived within any one-second window.
func (s *countingStore) worstWindow() (worst int, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, sum := 0, 0
	for _, a := range s.arrived {
		sum += a.n
		total += a.n
		for a.at-s.arrived[j].at >= time.Second {
			sum -= s.arrived[j].n
			j++
		}
		worst = max(worst, sum)
	}
	return worst, total
}

func limitedManager(t *testing.T, lim *ratelimit.Limiter) (*Manager, *countingStore) {
	t.Helper()
	s := &countingStore{start: time.Now(), md5s: map[string]map[int][]byte{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	core, err := NewClient(ClientConfig{Endpoint: srv.URL, AccessKey: "AKIDTEST", SecretKey: "secret-for-tests", Addressing: AddressingPath})
	if err != nil {
		t.Fatal(err)
	}
	return New(core, Config{Concurrency: 4, UploadLimiter: lim}), s
}

func uploadN(m *Manager, key string, size int) error {
	_, err := m.UploadReaderAt(context.Background(), "bkt", key, bytes.NewReader(bytes.Repeat([]byte{7}, size)), int64(size),
		UploadOptions{PartSize: 5 << 20, Checksum: ChecksumMD5})
	return err
}

// What the server receives never exceeds the limit by more than 10% in any one-second
// window, for one transfer and for two sharing one global limit. Only an upper bound is
// asserted: a slow machine can only lower the rate.
func TestLimitHoldsOnTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("runs about 6 s of rate-limited traffic")
	}
	const rate = 8 << 20
	t.Run("one upload", func(t *testing.T) {
		m, s := limitedManager(t, ratelimit.New(rate))
		if err := uploadN(m, "one", 24<<20); err != nil {
			t.Fatal(err)
		}
		worst, total := s.worstWindow()
		t.Logf("worst 1-second window: %.1f%% of the limit", 100*float64(worst)/rate)
		if total < 24<<20 || worst > rate*11/10 {
			t.Errorf("worst 1-second window %d bytes (limit %d), total %d", worst, rate, total)
		}
	})
	t.Run("two uploads under one global limit", func(t *testing.T) {
		global := ratelimit.New(rate)
		m, s := limitedManager(t, global)
		var g errgroup.Group
		for _, key := range []string{"a", "b"} {
			g.Go(func() error { return uploadN(m, key, 12<<20) })
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		worst, total := s.worstWindow()
		t.Logf("two transfers, worst 1-second window: %.1f%% of the limit", 100*float64(worst)/rate)
		if total < 24<<20 || worst > rate*11/10 {
			t.Errorf("together: worst 1-second window %d bytes (limit %d), total %d", worst, rate, total)
		}
	})
}

// A very low limit (64 KiB/s for 10 s) keeps the connection moving: no stall, no timeout.
func TestVeryLowLimitCompletes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 10 s at 64 KiB/s")
	}
	m, s := limitedManager(t, ratelimit.New(64<<10))
	m.cfg.IdleTimeout = 2 * time.Second // far below the run: the limiter must keep bytes moving
	if err := uploadN(m, "slow", 640<<10); err != nil {
		t.Fatalf("640 KiB at 64 KiB/s: %v", err)
	}
	if worst, _ := s.worstWindow(); worst > 64<<10*11/10 {
		t.Errorf("worst 1-second window %d bytes at a 64 KiB/s limit", worst)
	}
}
