package ratelimit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/ratelimit"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
)

// endless is a source that never runs dry and never copies.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

// eventLog records when bytes passed, for windowed rate checks.
type eventLog struct {
	mu     sync.Mutex
	events []event
}

type event struct {
	at time.Duration
	n  int
}

func (e *eventLog) add(at time.Duration, n int) {
	e.mu.Lock()
	e.events = append(e.events, event{at, n})
	e.mu.Unlock()
}

// between sums the bytes that passed in [from, to).
func (e *eventLog) between(from, to time.Duration) float64 {
	sum := 0
	for _, ev := range e.events {
		if ev.at >= from && ev.at < to {
			sum += ev.n
		}
	}
	return float64(sum)
}

// maxWindow returns the most bytes that passed in any window of length w.
func (e *eventLog) maxWindow(w time.Duration) float64 {
	ev := sortedEvents(e.events)
	best, sum, j := 0, 0, 0
	for i := range ev { // window [ev[i].at, ev[i].at+w): a maximal window starts at an event
		for ; j < len(ev) && ev[j].at < ev[i].at+w; j++ {
			sum += ev[j].n
		}
		best = max(best, sum)
		sum -= ev[i].n
	}
	return float64(best)
}

func sortedEvents(ev []event) []event {
	ev = append([]event(nil), ev...)
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].at < ev[j].at })
	return ev
}

// pump reads r in reads of size bytes until simulated time reaches end, logging each read; it returns the bytes.
func pump(t *testing.T, clk *simClock, r io.Reader, size int, end time.Time, log *eventLog) *int64 {
	total := new(int64)
	clk.Go(func() {
		buf := make([]byte, size)
		for clk.Now().Before(end) {
			n, err := r.Read(buf)
			if err != nil {
				t.Errorf("Read: %v", err)
				return
			}
			*total += int64(n)
			if log != nil {
				log.add(clk.since(epoch), n)
			}
		}
	})
	return total
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*want {
		t.Errorf("%s = %.0f B/s, want %.0f B/s ±%.0f%%", what, got, want, tol*100)
	}
}

// near reports whether d is want, give or take the float rounding of durations inside x/time/rate.
func near(d, want time.Duration) bool { return d > want-time.Millisecond && d < want+time.Millisecond }

func TestAchievedRate(t *testing.T) {
	cases := []struct {
		rate float64
		size int
	}{
		{1 * KiB, 1},
		{4 * KiB, 3},
		{64 * KiB, 1 * KiB},
		{64 * KiB, 8 * MiB},
		{1 * MiB, 4 * KiB},
		{3e6, 1000},
		{10 * MiB, 64 * KiB},
		{10 * MiB, 8 * MiB},
		{100 * MiB, 1*MiB + 1},
		{1 << 30, 8 * MiB},
	}
	for _, c := range cases {
		for _, via := range []string{"Reader", "WaitN"} {
			t.Run(fmt.Sprintf("%s/%.0f/%d", via, c.rate, c.size), func(t *testing.T) {
				clk := newSim()
				l := ratelimit.NewWithClock(c.rate, clk)
				end := epoch.Add(10 * time.Second)
				var total *int64
				if via == "Reader" {
					total = pump(t, clk, l.Reader(context.Background(), endless{}), c.size, end, nil)
				} else {
					total = new(int64)
					clk.Go(func() {
						for clk.Now().Before(end) {
							if err := l.WaitN(context.Background(), c.size); err != nil {
								t.Error(err)
								return
							}
							*total += int64(c.size)
						}
					})
				}
				clk.Wait()
				within(t, "achieved rate", float64(*total)/clk.since(epoch).Seconds(), c.rate, 0.02)
			})
		}
	}
}

func TestNoInitialBurst(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		setup func(clk *simClock) *ratelimit.Limiter // leaves a 1 MiB/s limiter
		want  time.Duration                          // for the next MiB
	}{
		{"new", func(clk *simClock) *ratelimit.Limiter { return ratelimit.NewWithClock(1*MiB, clk) }, time.Second},
		{"new unlimited, limited later", func(clk *simClock) *ratelimit.Limiter {
			l := ratelimit.NewWithClock(0, clk)
			_ = clk.Sleep(ctx, 10*time.Second)
			l.SetRate(1 * MiB)
			return l
		}, time.Second},
		{"after an unlimited spell", func(clk *simClock) *ratelimit.Limiter {
			l := ratelimit.NewWithClock(1*MiB, clk)
			_ = clk.Sleep(ctx, time.Second)
			l.SetRate(0)
			_ = clk.Sleep(ctx, 10*time.Second)
			l.SetRate(1 * MiB)
			return l
		}, time.Second},
		// An idle bucket refills, but only to one burst (1/50 s): the usual token bucket.
		{"idle", func(clk *simClock) *ratelimit.Limiter {
			l := ratelimit.NewWithClock(1*MiB, clk)
			_ = clk.Sleep(ctx, 10*time.Second)
			l.SetRate(1 * MiB) // the same rate: keeps what the bucket saved
			return l
		}, 980 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newSim()
			clk.Go(func() {
				l := c.setup(clk)
				start := clk.Now()
				if err := l.WaitN(ctx, 1*MiB); err != nil {
					t.Error(err)
				}
				if d := clk.since(start); !near(d, c.want) {
					t.Errorf("1 MiB at 1 MiB/s passed after %v, want %v", d, c.want)
				}
			})
			clk.Wait()
		})
	}
}

func TestChildren(t *testing.T) {
	ctx := context.Background()
	end := epoch.Add(10 * time.Second)
	secs := func(clk *simClock) float64 { return clk.since(epoch).Seconds() }

	t.Run("siblings share the parent", func(t *testing.T) {
		clk := newSim()
		p := ratelimit.NewWithClock(10*MiB, clk)
		a, b := p.Child(0), p.Child(8*MiB)
		ta := pump(t, clk, a.Reader(ctx, endless{}), 64*KiB, end, nil)
		tb := pump(t, clk, b.Reader(ctx, endless{}), 1*MiB, end, nil)
		clk.Wait()
		if got := float64(*ta+*tb) / secs(clk); got > 10*MiB*1.02 || got < 10*MiB*0.98 {
			t.Errorf("two children under 10 MiB/s got %.0f B/s together", got)
		}
		if got := float64(*tb) / secs(clk); got > 8*MiB*1.02 {
			t.Errorf("child limited to 8 MiB/s got %.0f B/s", got)
		}
	})
	t.Run("child under unlimited parent", func(t *testing.T) {
		clk := newSim()
		c := ratelimit.NewWithClock(0, clk).Child(2 * MiB)
		total := pump(t, clk, c.Reader(ctx, endless{}), 256*KiB, end, nil)
		clk.Wait()
		within(t, "child at 2 MiB/s", float64(*total)/secs(clk), 2*MiB, 0.02)
	})
	t.Run("parent slower than child", func(t *testing.T) {
		clk := newSim()
		c := ratelimit.NewWithClock(1*MiB, clk).Child(8 * MiB)
		total := pump(t, clk, c.Reader(ctx, endless{}), 4*MiB, end, nil)
		clk.Wait()
		within(t, "8 MiB/s child under 1 MiB/s parent", float64(*total)/secs(clk), 1*MiB, 0.02)
	})
	t.Run("deep chain", func(t *testing.T) {
		clk := newSim()
		l := ratelimit.NewWithClock(8*MiB, clk)
		for _, r := range []float64{4 * MiB, 0, 6 * MiB, 3 * MiB, 0, 5 * MiB} {
			l = l.Child(r)
		}
		total := pump(t, clk, l.Reader(ctx, endless{}), 1*MiB, end, nil)
		clk.Wait()
		within(t, "six levels, slowest 3 MiB/s", float64(*total)/secs(clk), 3*MiB, 0.02)
	})
}

func TestSetRateWhileRunning(t *testing.T) {
	ctx := context.Background()
	clk := newSim()
	l := ratelimit.NewWithClock(1*MiB, clk)
	var log eventLog
	pump(t, clk, l.Reader(ctx, endless{}), 8*MiB, epoch.Add(15*time.Second), &log)
	clk.Go(func() {
		_ = clk.Sleep(ctx, 5*time.Second)
		l.SetRate(4 * MiB)
		_ = clk.Sleep(ctx, 5*time.Second)
		l.SetRate(256 * KiB)
		if got := l.Rate(); got != 256*KiB {
			t.Errorf("Rate() = %v after SetRate(256 KiB)", got)
		}
	})
	clk.Wait()
	s := time.Second
	within(t, "rate before SetRate", log.between(1*s, 5*s)/4, 1*MiB, 0.03)
	within(t, "rate after raising", log.between(6*s, 10*s)/4, 4*MiB, 0.03)
	within(t, "rate after lowering", log.between(11*s, 15*s)/4, 256*KiB, 0.03)
	// Promptly: the second right after each change already runs at the new rate.
	within(t, "rate in the second after raising", log.between(5*s, 6*s), 4*MiB, 0.05)
	// Lowering: at most the one slice already read at the old rate (1/50 s of it) passes early.
	if got := log.between(10*s, 11*s); got > 4*MiB/50+256*KiB*1.05 {
		t.Errorf("%.0f bytes in the second after lowering to 256 KiB/s", got)
	}
}

func TestSetRateShrinksBurstMidWait(t *testing.T) {
	ctx := context.Background()
	sim := newSim()
	clk := &hookClock{simClock: sim}
	l := ratelimit.NewWithClock(10*MiB, clk)
	sim.Go(func() {
		clk.hook = func() { l.SetRate(64 * KiB) } // after WaitN sliced for 10 MiB/s, before it reserves
		if err := l.WaitN(ctx, 1*MiB); err != nil {
			t.Error(err)
		}
		if d := sim.since(epoch); !near(d, 16*time.Second) {
			t.Errorf("1 MiB at 64 KiB/s took %v, want 16s", d)
		}
	})
	sim.Wait()
}

func TestCancel(t *testing.T) {
	for _, depth := range []int{1, 3} {
		t.Run(fmt.Sprint("depth ", depth), func(t *testing.T) {
			clk := newSim()
			l := ratelimit.NewWithClock(1*KiB, clk) // burst 512 B: a slice every 0.5s
			for range depth - 1 {
				l = l.Child(1 * KiB)
			}
			ctx, cancel := context.WithCancel(context.Background())
			clk.Go(func() {
				err := l.WaitN(ctx, 10*KiB)
				if !errors.Is(err, context.Canceled) {
					t.Errorf("WaitN = %v, want context.Canceled", err)
				}
				if d := clk.since(epoch); !near(d, 2250*time.Millisecond) {
					t.Errorf("WaitN returned at %v, want at the cancel, 2.25s", d)
				}
			})
			clk.Go(func() {
				_ = clk.Sleep(context.Background(), 2250*time.Millisecond)
				cancel()
				_ = clk.Sleep(context.Background(), time.Nanosecond) // let the waiter give its slice back first
				// 4 slices passed by 2s; the 5th (due 2.5s) was given back at every level, so 512 more bytes
				// are due at 2.5s, not at 3s.
				if err := l.WaitN(context.Background(), 512); err != nil {
					t.Error(err)
				}
				if d := clk.since(epoch); !near(d, 2500*time.Millisecond) {
					t.Errorf("next 512 B passed at %v, want 2.5s (tokens leaked)", d)
				}
				// A wait with a dead ctx returns at once and takes nothing.
				if err := l.WaitN(ctx, 1); !errors.Is(err, context.Canceled) {
					t.Errorf("WaitN(canceled ctx) = %v", err)
				}
				if n, err := l.Reader(ctx, endless{}).Read(make([]byte, 10)); n != 10 || !errors.Is(err, context.Canceled) {
					t.Errorf("Read(canceled ctx) = %d, %v; want 10, context.Canceled", n, err)
				}
				if n, err := l.Writer(ctx, io.Discard).Write(make([]byte, 10)); n != 0 || !errors.Is(err, context.Canceled) {
					t.Errorf("Write(canceled ctx) = %d, %v; want 0, context.Canceled", n, err)
				}
				if err := l.WaitN(context.Background(), 512); err != nil {
					t.Error(err)
				}
				if d := clk.since(epoch); !near(d, 3000*time.Millisecond) {
					t.Errorf("512 B after that passed at %v, want 3s", d)
				}
			})
			clk.Wait()
		})
	}
}

func TestNilAndUnlimited(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // unlimited waits do not even look at ctx
	var n *ratelimit.Limiter
	if err := n.WaitN(ctx, 1<<40); err != nil {
		t.Errorf("nil WaitN = %v", err)
	}
	r := strings.NewReader("x")
	if n.Reader(ctx, r) != io.Reader(r) || n.Writer(ctx, io.Discard) != io.Discard {
		t.Error("nil Reader/Writer should return their argument")
	}
	n.SetRate(5)
	if n.Rate() != 0 {
		t.Error("nil Rate() != 0")
	}
	if c := n.Child(5 * MiB); c == nil || c.Rate() != 5*MiB {
		t.Errorf("nil.Child(5 MiB) = %v", c)
	}

	clk := newSim()
	for _, bps := range []float64{0, -1, math.Inf(1), math.NaN()} {
		u := ratelimit.NewWithClock(bps, clk).Child(0)
		if err := u.WaitN(ctx, 1<<40); err != nil || u.Rate() != 0 {
			t.Errorf("New(%v): WaitN = %v, Rate = %v", bps, err, u.Rate())
		}
		var buf bytes.Buffer
		if n, err := io.Copy(u.Writer(ctx, &buf), u.Reader(ctx, strings.NewReader("hello"))); n != 5 || err != nil || buf.String() != "hello" {
			t.Errorf("unlimited copy = %d, %v, %q", n, err, buf.String())
		}
	}
	if !clk.Now().Equal(epoch) {
		t.Error("unlimited waits moved the clock")
	}
	if err := ratelimit.New(0).WaitN(ctx, 1); err != nil { // real clock, unlimited: no sleep
		t.Error(err)
	}
}

func TestReaderSeekAndData(t *testing.T) {
	ctx := context.Background()
	clk := newSim()
	l := ratelimit.NewWithClock(64*KiB, clk)
	data := bytes.Repeat([]byte("0123456789abcdef"), 16*KiB) // 256 KiB
	r := l.Reader(ctx, bytes.NewReader(data))
	s, ok := r.(io.ReadSeeker)
	if !ok {
		t.Fatal("Reader of a *bytes.Reader is not an io.Seeker")
	}
	if _, ok := l.Reader(ctx, io.LimitReader(bytes.NewReader(data), 1)).(io.Seeker); ok {
		t.Error("Reader of a non-Seeker claims to be an io.Seeker")
	}
	clk.Go(func() {
		var longest time.Duration
		buf := make([]byte, 8*MiB)
		var got []byte
		for {
			start := clk.Now()
			n, err := r.Read(buf)
			longest = max(longest, clk.since(start))
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
		}
		if !bytes.Equal(got, data) {
			t.Error("data changed through Reader")
		}
		if d := clk.since(epoch); !near(d, 4*time.Second) {
			t.Errorf("256 KiB at 64 KiB/s took %v, want 4s", d)
		}
		if longest > 500*time.Millisecond {
			t.Errorf("one Read at 64 KiB/s blocked %v; want <= 0.5s", longest)
		}
		// Rewind as minio-go does before a retry: the data comes again, and is metered again.
		if pos, err := s.Seek(0, io.SeekStart); pos != 0 || err != nil {
			t.Errorf("Seek = %d, %v", pos, err)
		}
		again, err := io.ReadAll(s)
		if err != nil || !bytes.Equal(again, data) {
			t.Errorf("after Seek: %d bytes, %v", len(again), err)
		}
		if d := clk.since(epoch); !near(d, 8*time.Second) {
			t.Errorf("re-read finished at %v, want 8s", d)
		}
	})
	clk.Wait()
}

func TestWriter(t *testing.T) {
	clk := newSim()
	l := ratelimit.NewWithClock(1*MiB, clk)
	data := bytes.Repeat([]byte{7}, 3*MiB)
	var buf bytes.Buffer
	clk.Go(func() {
		n, err := l.Writer(context.Background(), &buf).Write(data)
		if n != len(data) || err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Errorf("Write = %d, %v", n, err)
		}
		if d := clk.since(epoch); !near(d, 3*time.Second) {
			t.Errorf("3 MiB at 1 MiB/s took %v", d)
		}
	})
	clk.Wait()
	short := ratelimit.New(0).Writer(context.Background(), shortWriter{})
	if _, err := short.Write([]byte("abc")); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("short write: err = %v", err)
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

// TestWindows runs many concurrent readers, some through children, and checks that no 1-second window
// carries more than 110% of the shared limit while the limit is still used.
func TestWindows(t *testing.T) {
	const rate = 1 * MiB
	ctx := context.Background()
	clk := newSim()
	root := ratelimit.NewWithClock(rate, clk)
	end := epoch.Add(20 * time.Second)
	var log eventLog
	sizes := []int{1 * KiB, 7 * KiB, 64 * KiB, 1 * MiB}
	for i := range 8 {
		pump(t, clk, root.Reader(ctx, endless{}), sizes[i%len(sizes)], end, &log)
	}
	for i, r := range []float64{0, 256 * KiB, 2 * MiB, 0} {
		pump(t, clk, root.Child(r).Reader(ctx, endless{}), sizes[(i+1)%len(sizes)], end, &log)
	}
	clk.Wait()
	if got := log.maxWindow(time.Second); got > 1.10*rate {
		t.Errorf("a 1-second window carried %.0f bytes, over 110%% of %d", got, rate)
	}
	within(t, "shared rate", log.between(0, 20*time.Second)/20, rate, 0.02)
}

// TestConcurrentSetRate changes the rate from several goroutines while others wait, with a clock that never
// blocks, so the race detector sees real concurrency.
func TestConcurrentSetRate(t *testing.T) {
	ctx := context.Background()
	clk := &freeClock{}
	root := ratelimit.NewWithClock(10*MiB, clk)
	var wg sync.WaitGroup
	for i := range 8 {
		l := root
		if i%2 == 1 {
			l = root.Child(float64(i) * MiB)
		}
		wg.Go(func() {
			r := l.Reader(ctx, endless{})
			buf := make([]byte, 3*MiB)
			for range 200 {
				if _, err := r.Read(buf); err != nil {
					t.Error(err)
					return
				}
				if err := l.WaitN(ctx, 2*MiB+1); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for j := range 200 {
				l.SetRate([]float64{64 * KiB, 0, 50 * MiB, 3e6}[(i+j)%4])
				_ = l.Rate()
			}
		})
	}
	wg.Wait()
}

func BenchmarkWaitN(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{4 * KiB, 1 * MiB} {
		clk := &freeClock{}
		limited := ratelimit.NewWithClock(1<<40, clk)
		for _, c := range []struct {
			name string
			l    *ratelimit.Limiter
		}{
			{"nil", nil},
			{"unlimited", ratelimit.NewWithClock(0, clk)},
			{"limited", limited},
			{"child", limited.Child(1 << 39)},
		} {
			b.Run(fmt.Sprintf("%s/%d", c.name, n), func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if err := c.l.WaitN(ctx, n); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
