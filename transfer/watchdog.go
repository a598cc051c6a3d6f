package transfer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"
)

// DefaultIdleTimeout is how long a request may move no bytes before it is cut off and
// retried, when Config.IdleTimeout is zero.
const DefaultIdleTimeout = time.Minute

// watchdogKey holds, in a request's ctx, the func that tells its watchdog bytes moved.
type watchdogKey struct{}

// pauseKey holds, in a request's ctx, the func that stops its watchdog until the next
// kick: for a caller's own work between the bytes of one request (a listing's consumer).
type pauseKey struct{}

// meterKey holds, in a request's ctx, the func that counts the payload bytes it moves
// (the bodies the store layer hands over or reads, through watched): for the
// concurrency controller.
type meterKey struct{}

// tunerKey holds, in a request's ctx, the concurrency controller that hears of its round
// trip: the time from a bodiless request written to its response's first byte.
type tunerKey struct{}

// paused runs fn with the watchdog of ctx's request, if any, stopped.
func paused[T any](ctx context.Context, fn func() T) T {
	pause, ok := ctx.Value(pauseKey{}).(func())
	if !ok {
		return fn()
	}
	pause()
	defer ctx.Value(watchdogKey{}).(func())()
	return fn()
}

// watch runs call under an idle watchdog: every byte that moves pushes the deadline
// back, and an attempt idle for the store's idle timeout is cancelled with ErrStalled,
// which is retryable (in an *EndpointError naming the node, when the S3 is a Nodes of
// several). Bytes are seen by the transport NewClient builds (request and
// response bodies, response headers) and by readers wrapped with watched. Idleness, not
// duration, is what is limited: a slow but moving transfer at a low bandwidth limit, or a
// long CompleteMultipartUpload that streams keep-alive whitespace, goes on.
func (s *store) watch(ctx context.Context, what string, call func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := s.idle
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	timer := time.AfterFunc(idle, func() { cancel(ErrStalled) })
	defer timer.Stop()
	kick := func() { timer.Reset(idle) }
	ctx = context.WithValue(context.WithValue(ctx, watchdogKey{}, kick), pauseKey{}, func() { timer.Stop() })
	var moved atomic.Int64
	var start time.Time
	if s.tune != nil {
		start = s.tune.clock.Now()
		ctx = context.WithValue(ctx, meterKey{}, func(n int) {
			moved.Add(int64(n))
			s.tune.moving(int64(n))
		})
		ctx = context.WithValue(ctx, tunerKey{}, s.tune)
	}
	err := call(ctx)
	if err != nil && context.Cause(ctx) == ErrStalled {
		stalled := fmt.Errorf("%w: no bytes moved for %v", ErrStalled, idle)
		if ee, ok := errors.AsType[*EndpointError](err); ok { // one node of several stalled: say which
			stalled = &EndpointError{Endpoint: ee.Endpoint, Err: stalled}
		}
		err = stalled
	}
	if s.tune != nil {
		s.tune.done(start, isDataRequest(what) && moved.Load() >= timedMin, err)
	}
	return err
}

// isDataRequest says whether the tuner compares the latency of the request what: the
// others (HEAD, Create, Complete, List, ...) take their own time whatever the path's
// queueing, and would set a floor that every part's latency then seems to rise from.
func isDataRequest(what string) bool {
	switch what {
	case "PutObject", "PutObjectPart", "GetObject", "CopyObject", "CopyObjectPart":
		return true
	}
	return false
}

// timedMin is the fewest bytes a data request moves for its latency to count: a probe's
// one-byte part is no sample of what a part takes.
const timedMin = 1 << 10

// watched returns r telling the watchdog of ctx's request about every byte read: for
// bodies that do not pass through NewClient's transport (a store without it, a test's).
func watched(ctx context.Context, r io.Reader) io.Reader {
	kick, ok := ctx.Value(watchdogKey{}).(func())
	if !ok {
		kick = func() {}
	}
	count, _ := ctx.Value(meterKey{}).(func(int))
	if !ok && count == nil {
		return r
	}
	return &kickReader{r: r, kick: kick, count: count}
}

type kickReader struct {
	r     io.Reader
	kick  func()
	count func(n int) // nil: not counted (the transport's view of a body the store counts)
}

func (k *kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if n > 0 {
		k.kick()
		if k.count != nil {
			k.count(n)
		}
	}
	return n, err
}

// Seek keeps the body rewindable: minio-go rewinds bodies with Seek. A reader that
// cannot seek is reported, not a panic.
func (k *kickReader) Seek(off int64, whence int) (int64, error) {
	s, ok := k.r.(io.Seeker)
	if !ok {
		return 0, fmt.Errorf("seek on a %T: %w", k.r, errors.ErrUnsupported)
	}
	return s.Seek(off, whence)
}

// activityTransport tells a watched request's watchdog about every byte it moves, and
// sends a small body with its request's headers.
type activityTransport struct {
	base      http.RoundTripper
	userAgent string // for a request without one
}

// smallBody is the largest request body read into memory before its request goes out:
// net/http writes a body it knows is in memory with the headers, in one write and one
// packet, but any other after them, in a write of its own. For a small object that
// second write, and the store's second read, cost both ends more than its bytes do.
const smallBody = 64 << 10

func (t activityTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	kick, watched := req.Context().Value(watchdogKey{}).(func())
	if !watched {
		kick = func() {}
	}
	if tune, ok := req.Context().Value(tunerKey{}).(*tuner); ok {
		req = traceRoundTrips(req, tune)
	}
	if t.userAgent != "" && req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context()) // a RoundTripper must not change the caller's request
		req.Header.Set("User-Agent", t.userAgent)
	}
	small := req.ContentLength > 0 && req.ContentLength <= smallBody
	if req.Body != nil && req.Body != http.NoBody && (watched || small) {
		body := req.Body
		req = req.WithContext(req.Context()) // a copy: a RoundTripper must not change the caller's request
		r := kickReader{r: body, kick: kick}
		if small {
			b, err := readBody(&r, req.ContentLength)
			body.Close() // RoundTrip closes the body, even on an error
			if err != nil {
				return nil, err
			}
			req.Body = io.NopCloser(bytes.NewReader(b))
		} else {
			req.Body = &kickReadCloser{r, body}
		}
	}
	resp, err := t.base.RoundTrip(req)
	if seen, ok := req.Context().Value(answerKey{}).(func(http.Header)); ok && resp != nil {
		seen(resp.Header)
	}
	if resp != nil && watched {
		kick()
		resp.Body = &kickReadCloser{kickReader{r: resp.Body, kick: kick}, resp.Body}
	}
	return resp, err
}

// traceRoundTrips tells tune of req's round trips: from a bodiless request written to its
// first response byte (a round trip plus the store's time, without the dial and
// handshakes of a new connection), and a TLS handshake (one round trip in TLS 1.3, plus
// the crypto), which also times a far store before the first response to a request with
// a body, e.g. the first PUTs of a directory job. A TCP connect is not one: through a
// proxy it is a round trip to the proxy.
//
// A request with a body also limits what its connection keeps unsent while the store may
// be far (limitUnsent).
func traceRoundTrips(req *http.Request, tune *tuner) *http.Request {
	bodiless := req.Body == nil || req.Body == http.NoBody
	since := func(t int64) {
		if t != 0 {
			tune.roundTrip(time.Duration(tune.clock.Now().UnixNano() - t))
		}
	}
	var wrote, handshake atomic.Int64 // the hooks run on the connection's writing and reading goroutines
	trace := &httptrace.ClientTrace{
		TLSHandshakeStart: func() { handshake.Store(tune.clock.Now().UnixNano()) },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			if err == nil {
				since(handshake.Load())
			}
		},
	}
	if bodiless {
		trace.WroteRequest = func(httptrace.WroteRequestInfo) { wrote.Store(tune.clock.Now().UnixNano()) }
		trace.GotFirstResponseByte = func() { since(wrote.Load()) }
	} else {
		trace.GotConn = func(info httptrace.GotConnInfo) { limitUnsentOn(info.Conn, tune.far()) }
	}
	return req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
}

// readBody reads a request body of n bytes whole. One that ends early or goes on past n
// is an error, as net/http makes it.
func readBody(r io.Reader, n int64) ([]byte, error) {
	b := make([]byte, n+1) // one more, to tell a longer body
	k, err := io.ReadFull(r, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if int64(k) != n {
		return nil, fmt.Errorf("http: ContentLength=%d with Body length %d", n, k)
	}
	return b[:n], nil
}

type kickReadCloser struct {
	kickReader
	io.Closer
}
