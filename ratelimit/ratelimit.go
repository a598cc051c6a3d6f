// Package ratelimit shares a bandwidth limit among concurrent transfers.
//
// A Limiter is a token bucket (golang.org/x/time/rate) counted in bytes. Limiters form a tree: a global
// limiter with one Child per transfer, so every byte is charged to its transfer and to everything above it.
// Waits take the caller's ctx and are cut into slices no larger than the bucket, so a rate change or a
// cancellation takes effect within one slice, and a slow limit never stalls one Read for long.
package ratelimit

import (
	"context"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Clock is the limiter's source of time. Tests pass a fake one so that no test sleeps for real.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep blocks for d, or until ctx is done, in which case it returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

// WallClock is the real clock: the one used unless NewWithClock or Schedule.Run is given
// another, and the project's one cancellable sleep.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// Sleep blocks for d, or until ctx is done, in which case it returns ctx.Err().
func (WallClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Limiter limits a flow of bytes to a rate in bytes per second, shared by all its users and by its children.
//
// A nil *Limiter is valid and unlimited, so callers never need to branch: its waits return at once, its Reader
// and Writer return their argument, and its Child is a new root limiter. A Limiter is safe for concurrent use.
// It starts with an empty bucket: no burst passes before the rate allows it.
type Limiter struct {
	parent *Limiter
	clock  Clock
	lim    *rate.Limiter // holds no meaning while burst == 0

	mu    sync.Mutex    // serializes SetRate
	rate  atomic.Uint64 // math.Float64bits of the rate; 0 = unlimited
	burst atomic.Int64  // bucket size in bytes; 0 = unlimited (this level is skipped)
}

// New returns a root limiter allowing bytesPerSec bytes per second, using the real clock.
// bytesPerSec <= 0 means unlimited; such a limiter can still be a parent and be limited later by SetRate.
func New(bytesPerSec float64) *Limiter { return NewWithClock(bytesPerSec, nil) }

// NewWithClock is New with the given clock (nil means the real clock); tests use it with a fake clock.
func NewWithClock(bytesPerSec float64, c Clock) *Limiter {
	if c == nil {
		c = WallClock{}
	}
	l := &Limiter{clock: c, lim: rate.NewLimiter(0, 0)}
	l.SetRate(bytesPerSec)
	return l
}

// Child returns a limiter for one transfer under l: each of its waits takes the bytes from the child and from
// every ancestor, so children share l's rate while each is held to its own bytesPerSec (<= 0: only the
// ancestors' limits apply). The child uses l's clock. On a nil l, Child is New(bytesPerSec).
func (l *Limiter) Child(bytesPerSec float64) *Limiter {
	if l == nil {
		return New(bytesPerSec)
	}
	c := NewWithClock(bytesPerSec, l.clock)
	c.parent = l
	return c
}

// burstFor returns the bucket size, hence the largest slice one wait takes, for a rate.
// 1/50 s of traffic: a window of T seconds passes at most rate*T + burst, so every 1-second window stays
// within ~2% of the rate at any rate, leaving room for scheduling jitter (a 32 KiB floor would let 64 KiB/s
// links burst 50%). At most 1 MiB so concurrent readers interleave finely; at least 512 bytes so waits stay
// cheap. It never exceeds half a second of traffic, so at very low rates one Read still returns quickly (which
// keeps HTTP connections alive).
func burstFor(bytesPerSec float64) int64 {
	b := min(max(bytesPerSec/50, 512), 1<<20)
	return int64(max(min(b, bytesPerSec/2), 1))
}

// SetRate changes l's rate, taking effect for slices that start afterwards; since waits are sliced, a long
// wait in progress follows the new rate within one slice. bytesPerSec <= 0 (or NaN, or +Inf) means unlimited.
// Bytes already reserved stay charged, so lowering the rate cannot be evaded. Setting the current rate again
// changes nothing. SetRate on nil does nothing.
func (l *Limiter) SetRate(bytesPerSec float64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !(bytesPerSec > 0) || math.IsInf(bytesPerSec, 1) {
		l.burst.Store(0)
		l.rate.Store(0)
		return
	}
	if math.Float64bits(bytesPerSec) == l.rate.Load() {
		return // Schedule.Run re-applies its rate every minute: don't drain the bucket each time
	}
	now, b := l.clock.Now(), burstFor(bytesPerSec)
	l.lim.SetLimitAt(now, rate.Limit(bytesPerSec))
	l.lim.SetBurstAt(now, int(b))
	// Drain what the bucket saved up (at creation it is full; after an unlimited spell, too): no initial burst.
	if t := l.lim.TokensAt(now); t >= 1 {
		l.lim.ReserveN(now, int(t))
	}
	l.rate.Store(math.Float64bits(bytesPerSec))
	l.burst.Store(b) // last: a waiter that sees this burst finds the bucket already resized
}

// Rate returns l's own rate in bytes per second, 0 meaning unlimited (ancestors may still limit l).
func (l *Limiter) Rate() float64 {
	if l == nil {
		return 0
	}
	return math.Float64frombits(l.rate.Load())
}

// slice returns the largest count one reservation may take along l's chain: the smallest burst of a limited
// level, or 0 if no level is limited.
func (l *Limiter) slice() int {
	s := int64(0)
	for x := l; x != nil; x = x.parent {
		if b := x.burst.Load(); b > 0 && (s == 0 || b < s) {
			s = b
		}
	}
	return int(s)
}

// WaitN blocks until n bytes may pass l and all its ancestors, or ctx is done. It returns nil at once if n <= 0
// or no level is limited (including a nil l). Otherwise it waits in slices of at most one burst, returning
// ctx.Err() if ctx ends first; the slice being waited for is then given back at every level (as far as
// rate.Reservation.CancelAt can: not the part that waits queued behind it already count on), while slices
// that already passed stay charged.
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	for n > 0 {
		k := min(n, l.slice())
		if k == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := l.take(ctx, k)
		if err != nil {
			return err
		}
		if ok {
			n -= k
		}
	}
	return nil
}

// take reserves n bytes at every limited level and sleeps until all allow them. It reports false, having
// reserved nothing, if some level's burst shrank below n meanwhile (a concurrent SetRate); the caller re-slices.
func (l *Limiter) take(ctx context.Context, n int) (bool, error) {
	now := l.clock.Now()
	var buf [4]*rate.Reservation
	rs := buf[:0]
	cancel := func(t time.Time) {
		for _, r := range rs {
			r.CancelAt(t) // give the tokens back so others are not slowed by bytes that never passed
		}
	}
	var delay time.Duration
	for x := l; x != nil; x = x.parent {
		if x.burst.Load() == 0 {
			continue
		}
		r := x.lim.ReserveN(now, n)
		if !r.OK() {
			cancel(now)
			return false, nil
		}
		rs = append(rs, r)
		delay = max(delay, r.DelayFrom(now))
	}
	if delay > 0 {
		if err := l.clock.Sleep(ctx, delay); err != nil {
			cancel(l.clock.Now())
			return false, err
		}
	}
	return true, nil
}

// Reader returns a reader that meters r through l: each Read reads at most one burst, then waits for the bytes
// it got, so the flow is smooth and a Read at a low rate never blocks long. Waits use ctx; if ctx ends, Read
// returns the bytes read with ctx.Err(). If r is an io.Seeker the result is one too, passing Seek through
// (minio-go rewinds a body with Seek(0, io.SeekStart) before each retry; re-sent bytes are charged again).
// On a nil l, Reader returns r itself.
func (l *Limiter) Reader(ctx context.Context, r io.Reader) io.Reader {
	if l == nil {
		return r
	}
	mr := &reader{ctx: ctx, l: l, r: r}
	if s, ok := r.(io.Seeker); ok {
		return &readSeeker{mr, s}
	}
	return mr
}

type reader struct {
	ctx context.Context
	l   *Limiter
	r   io.Reader
}

func (r *reader) Read(p []byte) (int, error) {
	if s := r.l.slice(); s > 0 && len(p) > s {
		p = p[:s]
	}
	n, err := r.r.Read(p)
	if werr := r.l.WaitN(r.ctx, n); werr != nil {
		return n, werr
	}
	return n, err
}

type readSeeker struct {
	*reader
	s io.Seeker
}

func (r *readSeeker) Seek(offset int64, whence int) (int64, error) { return r.s.Seek(offset, whence) }

// Writer returns a writer that meters w through l: each Write waits, one burst at a time, before passing that
// slice on to w. If ctx ends, Write returns the count written so far with ctx.Err(). On a nil l, Writer
// returns w itself.
func (l *Limiter) Writer(ctx context.Context, w io.Writer) io.Writer {
	if l == nil {
		return w
	}
	return &writer{ctx: ctx, l: l, w: w}
}

type writer struct {
	ctx context.Context
	l   *Limiter
	w   io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		k := len(p)
		if s := w.l.slice(); s > 0 && k > s {
			k = s
		}
		if err := w.l.WaitN(w.ctx, k); err != nil {
			return total, err
		}
		n, err := w.w.Write(p[:k])
		total += n
		if err == nil && n < k {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total, err
		}
		p = p[k:]
	}
	return total, nil
}
