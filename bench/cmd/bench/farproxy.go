package main

import (
	"bytes"
	"net"
	"sync"
	"time"
)

// farProxy puts a distant store's path in front of a near one, at the TCP level (TLS
// passes through): every byte is delayed by delay in each direction, as by a link's
// propagation delay, and each connection's direction carries at most rate bytes per
// second, as a store's per-request ceiling (AWS documents about 85-90 MB/s per request).
// The delay is a pipeline, not a sleep per read: bytes read at t are written at t+delay
// while the next ones are read, so a connection still moves rate bytes per second. A new
// connection pays a round trip before its first byte, as a TCP handshake does.
type farProxy struct {
	*front
	target string
	delay  time.Duration
	rate   float64 // bytes per second per connection and direction; 0: no ceiling
}

func newFarProxy(target string, delay time.Duration, rate float64) (*farProxy, error) {
	p := &farProxy{target: target, delay: delay, rate: rate}
	f, err := listen(p.handle)
	p.front = f
	return p, err
}

// Addr is host:port for clients to connect to instead of the target.
func (p *farProxy) Addr() string { return p.ln.Addr().String() }

func (p *farProxy) close() {
	p.ln.Close()
	p.drop()
}

func (p *farProxy) handle(c net.Conn) {
	accepted := time.Now()
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	p.track(c, true)
	defer p.track(c, false)
	done := make(chan struct{})
	go func() {
		p.pipe(s, c, time.Time{}) // responses
		close(done)
	}()
	// The client's first byte leaves after the handshake's round trip.
	p.pipe(c, s, accepted.Add(2*p.delay))
	<-done
}

// farChunk is bytes read from one side and due on the other at a time.
type farChunk struct {
	b   []byte
	due time.Time
}

// farBuf is the most one read takes from a socket.
const farBuf = 64 << 10

// pipe copies src to dst through the simulated link until src ends or either side
// fails, then closes dst's write side (or dst) so the other end sees the end too.
// notBefore, if set, is when the first byte may leave. The bytes between reader and
// writer are bounded by a window of twice the link's bytes in flight (rate × delay), as
// a TCP window would bound them: what does not fit waits in the kernel's socket buffers,
// which push back on the sender.
func (p *farProxy) pipe(src, dst net.Conn, notBefore time.Time) {
	win := newByteWindow(16 << 20)
	if p.rate > 0 {
		win = newByteWindow(max(1<<20, int(2*p.rate*p.delay.Seconds())))
	}
	q := make(chan farChunk, 4096)
	go func() {
		defer close(q)
		link := pacer{rate: p.rate, delay: p.delay, burst: farBuf, notBefore: notBefore}
		buf := make([]byte, farBuf)
		for {
			win.acquire(farBuf)
			n, err := src.Read(buf)
			win.release(farBuf - n)
			if n > 0 {
				leave, due := link.send(time.Now(), n)
				// Read no further until these bytes have left (the bucket has their tokens).
				sleepUntil(leave)
				q <- farChunk{bytes.Clone(buf[:n]), due}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for ch := range q {
		if !failed {
			sleepUntil(ch.due)
			if _, err := dst.Write(ch.b); err != nil {
				failed = true
				src.Close() // stops the reader, which drains into q
			}
		}
		win.release(len(ch.b))
	}
	if tc, ok := dst.(*net.TCPConn); ok && !failed {
		_ = tc.CloseWrite()
	} else {
		dst.Close()
	}
}

// byteWindow counts the bytes a pipe holds, up to a limit.
type byteWindow struct {
	mu   sync.Mutex
	cond *sync.Cond
	free int
}

func newByteWindow(n int) *byteWindow {
	w := &byteWindow{free: n}
	w.cond = sync.NewCond(&w.mu)
	return w
}

func (w *byteWindow) acquire(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.free < n {
		w.cond.Wait()
	}
	w.free -= n
}

func (w *byteWindow) release(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.free += n
	w.cond.Signal()
}

func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// pacer is one direction of a simulated link: a token bucket of burst bytes filled at
// rate (none if rate is zero), then a propagation delay. It is a pure function of the
// times and sizes it is given, so it can be tested without a clock.
type pacer struct {
	rate      float64 // bytes per second; 0: unlimited
	delay     time.Duration
	burst     int
	notBefore time.Time // nothing leaves earlier (the handshake)
	tat       time.Time // the bucket's theoretical arrival time (GCRA): empty-bucket time
}

// send takes n bytes ready at now and returns when they leave (the bucket has the
// tokens for them) and when they arrive at the far end (delay after that).
func (l *pacer) send(now time.Time, n int) (leave, due time.Time) {
	leave = later(now, l.notBefore)
	if l.rate > 0 {
		perByte := float64(time.Second) / l.rate
		tau := time.Duration(float64(l.burst) * perByte)
		leave = later(leave, l.tat.Add(-tau))
		l.tat = later(leave, l.tat).Add(time.Duration(float64(n) * perByte))
	}
	return leave, leave.Add(l.delay)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
