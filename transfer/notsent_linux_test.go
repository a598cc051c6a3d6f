package transfer

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3xfer/s3xfer/ratelimit"
)

// While the store may be far (no round trip seen yet, or a long one), a connection
// that sends a request body keeps little of it unsent in the kernel, so the concurrency
// controller counts bytes as they leave; next to the store, or with no controller, the
// limit is off: it costs a wakeup per quarter MiB sent.
func TestConnectionsKeepLittleUnsentOnlyWhileTheStoreMayBeFar(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	tr := newTransport(8, 0)
	defer tr.CloseIdleConnections()
	tune := newTuner(newSlots(8, time.Now), nil, 8, 64, ratelimit.WallClock{}, slog.New(slog.DiscardHandler))

	// put sends a PUT, with the tuner if tuned, and returns its connection's limit.
	put := func(tuned bool) int {
		t.Helper()
		var conn net.Conn
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { conn = info.Conn },
		})
		if tuned {
			ctx = context.WithValue(ctx, tunerKey{}, tune)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL, strings.NewReader("some bytes"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := activityTransport{base: tr}.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return notSentLowat(t, conn)
	}
	if got := put(false); got != 0 {
		t.Errorf("without a controller: TCP_NOTSENT_LOWAT %d, want 0 (the system's default)", got)
	}
	if got := put(true); got != notSent {
		t.Errorf("no round trip seen yet: TCP_NOTSENT_LOWAT %d, want %d", got, notSent)
	}
	tune.roundTrip(nearRTT)
	if got := put(true); got != notSent {
		t.Errorf("a round trip of %v: TCP_NOTSENT_LOWAT %d, want %d", nearRTT, got, notSent)
	}
	tune.roundTrip(time.Millisecond)
	if got := put(true); got != 0 {
		t.Errorf("a round trip of 1ms: TCP_NOTSENT_LOWAT %d, want 0", got)
	}
}

// notSentLowat reads the TCP_NOTSENT_LOWAT of conn, a connection bulkDial made.
func notSentLowat(t *testing.T, conn net.Conn) int {
	t.Helper()
	bc, ok := conn.(*bulkConn)
	if !ok {
		t.Fatalf("the request went over a %T, not a connection bulkDial made", conn)
	}
	raw, err := bc.Conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got, serr := 0, error(nil)
	if err := raw.Control(func(fd uintptr) {
		got, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return got
}
