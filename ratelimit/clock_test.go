package ratelimit_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// simClock is a discrete-event clock: goroutines run with Go and Wait are participants, and simulated time jumps to
// the earliest wake-up only when every participant is asleep. Participants wake one at a time, so a run is
// deterministic and no test ever sleeps for real. Only participants may call Sleep.
type simClock struct {
	mu       sync.Mutex
	now      time.Time
	running  int
	sleepers []*sleeper
	pending  []func() // added by Go, not started yet; used by the test goroutine only
}

type sleeper struct {
	at   time.Time
	ctx  context.Context
	wake chan struct{}
}

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newSim() *simClock { return newSimAt(epoch) }

func newSimAt(t time.Time) *simClock { return &simClock{now: t} }

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// since returns the simulated time elapsed since t.
func (c *simClock) since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Go adds f as a participant; it starts, with all others added so far, in Wait. Starting them together
// keeps a first participant from running ahead in time before the next one is counted.
func (c *simClock) Go(f func()) { c.pending = append(c.pending, f) }

// Wait starts the participants added by Go and waits for all of them to return.
func (c *simClock) Wait() {
	c.mu.Lock()
	c.running += len(c.pending)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range c.pending {
		wg.Go(func() {
			defer func() {
				c.mu.Lock()
				c.running--
				c.advance()
				c.mu.Unlock()
			}()
			f()
		})
	}
	c.pending = nil
	wg.Wait()
}

func (c *simClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	c.mu.Lock()
	s := &sleeper{at: c.now.Add(d), ctx: ctx, wake: make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.running--
	c.advance()
	c.mu.Unlock()
	select {
	case <-s.wake:
		return ctx.Err()
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		if i := slices.Index(c.sleepers, s); i >= 0 { // not woken yet: wake ourselves, without moving time
			c.sleepers = slices.Delete(c.sleepers, i, i+1)
			c.running++
		}
		return ctx.Err()
	}
}

// advance wakes one sleeper if no participant runs: first one whose ctx is done (at the current time), else
// the earliest (first come first served on ties). Called with mu held.
func (c *simClock) advance() {
	if c.running > 0 || len(c.sleepers) == 0 {
		return
	}
	i := slices.IndexFunc(c.sleepers, func(s *sleeper) bool { return s.ctx.Err() != nil })
	if i < 0 {
		i = 0
		for j, s := range c.sleepers {
			if s.at.Before(c.sleepers[i].at) {
				i = j
			}
		}
		if at := c.sleepers[i].at; at.After(c.now) {
			c.now = at
		}
	}
	s := c.sleepers[i]
	c.sleepers = slices.Delete(c.sleepers, i, i+1)
	c.running++
	close(s.wake)
}

// freeClock never blocks: Sleep just moves a shared virtual time forward. It lets goroutines run truly
// concurrently (for -race) and measures pure overhead in benchmarks.
type freeClock struct{ ns atomic.Int64 }

func (c *freeClock) Now() time.Time { return epoch.Add(time.Duration(c.ns.Load())) }

func (c *freeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.ns.Add(int64(max(d, 0)))
	return nil
}

// hookClock calls hook (once) on the next Now, to inject a change at an exact point of a wait.
type hookClock struct {
	*simClock
	hook func()
}

func (c *hookClock) Now() time.Time {
	if h := c.hook; h != nil {
		c.hook = nil
		h()
	}
	return c.simClock.Now()
}
