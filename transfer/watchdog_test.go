package transfer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/ratelimit"
)

// kickReader.Seek reports a reader that cannot seek instead of panicking.
func TestKickReaderSeek(t *testing.T) {
	kicks := 0
	k := &kickReader{r: strings.NewReader("abc"), kick: func() { kicks++ }}
	if b, err := io.ReadAll(k); err != nil || string(b) != "abc" || kicks != 1 {
		t.Fatalf("read %q, %v, %d kicks", b, err, kicks)
	}
	if off, err := k.Seek(1, io.SeekStart); err != nil || off != 1 {
		t.Fatalf("Seek on a seekable reader: %d, %v", off, err)
	}
	k = &kickReader{r: io.MultiReader(strings.NewReader("abc")), kick: func() {}}
	if _, err := k.Seek(0, io.SeekStart); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Seek on a reader that cannot seek: %v, want errors.ErrUnsupported", err)
	}
}

// A bodiless request's round trip (written to first byte) reaches the controller; a
// request with a body, whose first byte waits for the whole body, does not.
func TestRoundTripsOfBodilessRequests(t *testing.T) {
	const wait = 30 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(wait)
	}))
	defer srv.Close()
	if rtt := roundTripSeen(t, srv, http.MethodHead, nil); rtt < wait {
		t.Errorf("HEAD: round trip %v, want at least the store's %v", rtt, wait)
	}
	if rtt := roundTripSeen(t, srv, http.MethodPut, strings.NewReader("some bytes")); rtt != 0 {
		t.Errorf("PUT: a request with a body gave a round trip of %v", rtt)
	}
}

// Over TLS a new connection's handshake is a round trip too, even for a request with a
// body, which times a far store before the first response of a directory job's PUTs.
func TestRoundTripsOfTLSHandshakes(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	if rtt := roundTripSeen(t, srv, http.MethodPut, strings.NewReader("some bytes")); rtt <= 0 {
		t.Errorf("a PUT on a new TLS connection gave no round trip (%v)", rtt)
	}
}

// roundTripSeen sends one request to srv through activityTransport, on a new connection,
// and returns the quickest round trip its tuner was told of (zero if none).
func roundTripSeen(t *testing.T, srv *httptest.Server, method string, body io.Reader) time.Duration {
	t.Helper()
	tune := newTuner(newSlots(8, time.Now), nil, 8, 64, ratelimit.WallClock{}, slog.New(slog.DiscardHandler))
	ctx := context.WithValue(context.Background(), tunerKey{}, tune)
	req, err := http.NewRequestWithContext(ctx, method, srv.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	tr := srv.Client().Transport.(*http.Transport).Clone() // a connection of its own
	defer tr.CloseIdleConnections()
	resp, err := activityTransport{base: tr}.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tune.mu.Lock()
	defer tune.mu.Unlock()
	return tune.rtt
}
