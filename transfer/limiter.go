package transfer

import (
	"context"
	"sync"
	"time"
)

// slots bounds how many requests are in flight, like a semaphore whose size may change
// while they run: a larger limit lets waiters in at once; a smaller one lets no new
// request start until enough of those in flight have finished, so there are never more
// in flight than the current limit once the excess has drained. Waiters are served in
// order. It also measures, for the concurrency controller, how busy it was: the time
// integral of the requests in flight and how long the limit was the bound (someone waited
// or every slot was taken).
type slots struct {
	mu       sync.Mutex
	limit    int
	inFlight int
	waiters  []chan struct{} // FIFO; a closed channel owns a slot

	now   func() time.Time // nil: no usage is measured
	since time.Time        // the start of the usage being measured
	last  time.Time        // the last change of inFlight or of the waiters
	busy  time.Duration    // integral of inFlight over time, since since
	full  time.Duration    // time with inFlight >= limit or someone waiting, since since
}

func newSlots(limit int, now func() time.Time) *slots {
	s := &slots{limit: max(limit, 1), now: now}
	if now != nil {
		s.since = now()
		s.last = s.since
	}
	return s
}

// acquire takes a slot, waiting for one while ctx lasts. It fails with ctx's error, and
// takes nothing, if ctx is done before a slot is free.
func (s *slots) acquire(ctx context.Context) error {
	done := ctx.Done()
	s.mu.Lock()
	select {
	case <-done:
		s.mu.Unlock()
		return ctx.Err()
	default:
	}
	if s.inFlight < s.limit && len(s.waiters) == 0 {
		s.account()
		s.inFlight++
		s.mu.Unlock()
		return nil
	}
	s.account()
	ready := make(chan struct{})
	s.waiters = append(s.waiters, ready)
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-done:
		s.mu.Lock()
		select {
		case <-ready: // handed a slot meanwhile: give it back
			s.mu.Unlock()
			s.release()
		default:
			for i, w := range s.waiters {
				if w == ready {
					s.account()
					s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
					break
				}
			}
			s.wake() // leaving the head of the queue may let those behind in
			s.mu.Unlock()
		}
		return ctx.Err()
	}
}

// tryAcquire takes a slot if one is free now.
func (s *slots) tryAcquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight < s.limit && len(s.waiters) == 0 {
		s.account()
		s.inFlight++
		return true
	}
	return false
}

// release gives back a slot taken by acquire or tryAcquire.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight <= 0 {
		panic("transfer: slots released more than acquired")
	}
	s.account()
	s.inFlight--
	s.wake()
}

// setLimit changes the limit (at least 1). Waiters enter at once if it grew; if it
// shrank, requests in flight finish and no new one starts until fewer than limit remain.
func (s *slots) setLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.account()
	s.limit = max(n, 1)
	s.wake()
}

// state returns the limit and the requests in flight.
func (s *slots) state() (limit, inFlight int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit, s.inFlight
}

// wake hands free slots to waiters in order. s.mu is held.
func (s *slots) wake() {
	for s.inFlight < s.limit && len(s.waiters) > 0 {
		s.inFlight++
		close(s.waiters[0])
		s.waiters = s.waiters[1:]
	}
}

// account adds the time since the last change to the usage integrals. s.mu is held.
func (s *slots) account() {
	if s.now == nil {
		return
	}
	t := s.now()
	if d := t.Sub(s.last); d > 0 {
		s.busy += time.Duration(s.inFlight) * d
		if s.inFlight >= s.limit || len(s.waiters) > 0 {
			s.full += d
		}
		s.last = t
	}
}

// usage is how the slots were used over a span of time.
type usage struct {
	span time.Duration // the span measured
	busy time.Duration // the integral of the requests in flight over it
	full time.Duration // how long of it the limit held requests back or was reached
}

// meanInFlight is the average number of requests in flight over the span.
func (u usage) meanInFlight() float64 {
	if u.span <= 0 {
		return 0
	}
	return float64(u.busy) / float64(u.span)
}

// takeUsage returns the usage since the last call (or since newSlots) and starts anew.
func (s *slots) takeUsage() usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now == nil {
		return usage{}
	}
	s.account()
	u := usage{span: s.last.Sub(s.since), busy: s.busy, full: s.full}
	s.since, s.busy, s.full = s.last, 0, 0
	return u
}
