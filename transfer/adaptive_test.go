package transfer

// The concurrency controller against a simulated link, on a simulated clock: no test
// here sleeps or reads the wall clock.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// stepClock is a clock that only the test moves.
type stepClock struct{ t time.Time }

func (c *stepClock) Now() time.Time { return c.t }

func (c *stepClock) Sleep(_ context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return nil
}

// link is a path to a store: each request moves size bytes at perConn bytes/s while no
// more than optimum are in flight; beyond, they share optimum*perConn, so goodput stays
// flat and every request takes longer (latency rises past the optimum). While throttleAt
// is positive, a request that would make more than throttleAt in flight is answered
// SlowDown after slowDownIn.
type link struct {
	optimum    int
	perConn    float64
	size       float64
	throttleAt int
	slowDownIn time.Duration
	// rtt, when set, is each request's wait before its first byte moves, drawn between
	// rtt and (1+jitter) times it: a far store's round trip and the noise on it.
	rtt    time.Duration
	jitter float64
	// noise, when set, scales the link's rate by a factor drawn between 1-noise and 1
	// every half second: a store on a busy machine.
	noise float64
	// burst, when set, is what a request moves in its first half second on top of the
	// link's rate: socket buffers (and a proxy's) filling on a new connection.
	burst float64
	// tail, when set, is how long a request stays in flight after its last byte moved:
	// buffered bytes crossing the path, the store's commit, the answer's way back.
	tail time.Duration
	// loss, when set, is the share of goodput lost while more than optimum are in flight:
	// a store next to the client whose CPU or disk the extra requests contend for.
	loss float64
}

type simRequest struct {
	start    time.Time
	ready    time.Time // its first byte moves then
	left     float64
	moved    float64
	slowDown time.Time // zero unless it is answered SlowDown then
	sent     time.Time // zero until its last byte moved
}

// sim runs a controller over a link, with demand requests always waiting (or fewer).
type sim struct {
	t       *testing.T
	clock   *stepClock
	slots   *slots
	tune    *tuner
	link    link
	demand  int
	total   int // when positive, the requests to start in all
	started int
	ended   int // requests that succeeded
	active  []*simRequest
	acked   float64 // bytes of requests that succeeded
	peak    int     // the most in flight at once
	low     int     // the lowest limit at any step
	trace   []int   // the limit after each second
	step    time.Duration
	rng     *rand.Rand
	scale   float64 // the noise factor now
	unplan  bool    // tell the tuner of every request's bytes done, as Manager.eachPart does
}

func newSim(t *testing.T, l link, start, maxN int) *sim {
	c := &stepClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newSlots(start, c.Now)
	var log *slog.Logger
	if testing.Verbose() && os.Getenv("S3XFER_TUNER_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		log = slog.New(slog.DiscardHandler)
	}
	return &sim{t: t, clock: c, slots: s, tune: newTuner(s, nil, start, maxN, c, log), link: l,
		demand: math.MaxInt, step: 10 * time.Millisecond, low: math.MaxInt, rng: rand.New(rand.NewPCG(1, 2))}
}

var slowDown = minio.ErrorResponse{Code: "SlowDown", StatusCode: 503, Message: "Please reduce your request rate."}

// run simulates d of time.
func (s *sim) run(d time.Duration) {
	end := s.clock.t.Add(d)
	for s.clock.t.Before(end) {
		// No poll per step: as in a Manager, the tuner hears of time passing only from
		// requests starting, moving bytes and ending.
		if s.scale == 0 || s.clock.t.UnixNano()%int64(500*time.Millisecond) == 0 {
			s.scale = 1 - s.link.noise*s.rng.Float64()
		}
		for len(s.active) < s.demand && (s.total == 0 || s.started < s.total) && s.slots.tryAcquire() {
			s.started++
			s.tune.poll() // as Manager.acquire does
			r := &simRequest{start: s.clock.t, ready: s.clock.t, left: s.link.size}
			if s.link.rtt > 0 {
				r.ready = r.ready.Add(time.Duration(float64(s.link.rtt) * (1 + s.link.jitter*s.rng.Float64())))
			}
			if s.link.throttleAt > 0 && s.serving()+1 > s.link.throttleAt {
				r.slowDown = s.clock.t.Add(s.link.slowDownIn)
			}
			s.active = append(s.active, r)
		}
		_, inFlight := s.slots.state()
		s.peak = max(s.peak, inFlight)
		limit, _ := s.slots.state()
		s.low = min(s.low, limit)
		if inFlight > limit && inFlight > len(s.active) {
			s.t.Fatalf("%d in flight over a limit of %d", inFlight, limit)
		}
		s.clock.t = s.clock.t.Add(s.step)
		n := s.serving()
		rate := s.scale * s.link.perConn * min(1, float64(s.link.optimum)/float64(max(n, 1)))
		if n > s.link.optimum {
			rate *= 1 - s.link.loss
		}
		kept := s.active[:0]
		for _, r := range s.active {
			if !r.slowDown.IsZero() {
				if !s.clock.t.Before(r.slowDown) {
					s.tune.done(r.start, false, slowDown)
					s.slots.release()
					continue
				}
				kept = append(kept, r)
				continue
			}
			if s.clock.t.Before(r.ready) || (!r.sent.IsZero() && s.clock.t.Before(r.sent.Add(s.link.tail))) {
				kept = append(kept, r)
				continue
			}
			if !r.sent.IsZero() {
				s.end(r)
				continue
			}
			b := rate * s.step.Seconds()
			if s.clock.t.Before(r.ready.Add(burstFor)) {
				b += s.link.burst * s.step.Seconds() / burstFor.Seconds()
			}
			b = min(b, r.left)
			r.left -= b
			r.moved += b
			s.tune.moving(int64(b))
			if r.left <= 0 {
				if s.link.tail > 0 {
					r.sent = s.clock.t
					kept = append(kept, r)
				} else {
					s.end(r)
				}
				continue
			}
			kept = append(kept, r)
		}
		s.active = kept
		if s.clock.t.UnixNano()%int64(time.Second) == 0 {
			s.trace = append(s.trace, s.tune.current())
		}
	}
}

// end ends r, a success.
func (s *sim) end(r *simRequest) {
	s.acked += r.moved
	s.ended++
	if s.unplan {
		s.tune.ahead.Add(-int64(s.link.size))
	}
	s.tune.done(r.start, true, nil)
	s.slots.release()
}

// burstFor is how long a link's burst lasts.
const burstFor = 500 * time.Millisecond

// serving is the requests moving bytes (not about to be throttled, nor done sending).
func (s *sim) serving() int {
	n := 0
	for _, r := range s.active {
		if r.slowDown.IsZero() && r.sent.IsZero() && !s.clock.t.Before(r.ready) {
			n++
		}
	}
	return n
}

// goodput measures the link's goodput over d, in requests' worth (perConn units).
func (s *sim) goodput(d time.Duration) float64 {
	before := s.acked
	s.run(d)
	return (s.acked - before) / d.Seconds() / s.link.perConn
}

// limits returns the lowest and highest limit over the last n seconds of the trace.
func (s *sim) limits(n int) (lo, hi int) {
	lo, hi = math.MaxInt, 0
	for _, l := range s.trace[max(len(s.trace)-n, 0):] {
		lo, hi = min(lo, l), max(hi, l)
	}
	return lo, hi
}

// within returns the share of the last n seconds the limit spent within lo..hi, and the
// median limit over them.
func (s *sim) within(n int, lo, hi float64) (share float64, median int) {
	tr := slices.Clone(s.trace[max(len(s.trace)-n, 0):])
	in := 0
	for _, l := range tr {
		if float64(l) >= lo && float64(l) <= hi {
			in++
		}
	}
	slices.Sort(tr)
	return float64(in) / float64(len(tr)), tr[len(tr)/2]
}

// settled checks that the limit spent at least 90% of the last n seconds within 25% of
// the optimum (two requests for tiny ones, where the controller keeps one or two queued):
// probes take it lower now and then.
func (s *sim) settled(n, optimum int) {
	s.t.Helper()
	opt := float64(optimum)
	lo, hi := min(0.75*opt, opt-2), max(1.25*opt, opt+2)
	share, median := s.within(n, lo, hi)
	minL, maxL := s.limits(n)
	s.t.Logf("optimum %d: over the last %d s the limit was within %.0f..%.0f %.0f%% of the time, median %d, range %d..%d",
		optimum, n, lo, hi, 100*share, median, minL, maxL)
	if share < 0.9 {
		s.t.Errorf("the limit was within 25%% of the optimum %d only %.0f%% of the time", optimum, 100*share)
	}
}

// farLink is a store tens of milliseconds away: 8 MiB/s per request, 32 requests fill
// the path, requests of 8 MiB (a second each when not queued).
var farLink = link{optimum: 32, perConn: 8 << 20, size: 8 << 20}

func TestAdaptiveRampsUpAndSettlesNearTheOptimum(t *testing.T) {
	s := newSim(t, farLink, DefaultConcurrency, DefaultMaxConcurrency)
	s.run(20 * time.Second)
	ramped := s.tune.current()
	s.run(280 * time.Second)
	s.settled(200, farLink.optimum)
	g := s.goodput(100 * time.Second)
	t.Logf("limit after 20 s: %d; goodput %.1f of %d requests' worth; first 40 s: %v",
		ramped, g, farLink.optimum, s.trace[:40])
	if ramped < 2*DefaultConcurrency {
		t.Errorf("after 20 s (10 windows) the limit is %d: it did not ramp up from %d", ramped, DefaultConcurrency)
	}
	opt := float64(farLink.optimum)
	if g < 0.9*opt {
		t.Errorf("goodput %.1f requests' worth, want at least 90%% of the optimum %d", g, farLink.optimum)
	}
}

func TestAdaptiveSettlesOnOtherPaths(t *testing.T) {
	for _, l := range []link{
		{optimum: 4, perConn: 8 << 20, size: 8 << 20},
		{optimum: 12, perConn: 100 << 20, size: 16 << 20},
		{optimum: 48, perConn: 2 << 20, size: 1 << 20},
	} {
		t.Run(fmt.Sprint(l.optimum), func(t *testing.T) {
			s := newSim(t, l, DefaultConcurrency, DefaultMaxConcurrency)
			s.run(300 * time.Second)
			s.settled(150, l.optimum)
			g := s.goodput(60 * time.Second)
			t.Logf("goodput %.1f of %d requests' worth; first 60 s %v", g, l.optimum, s.trace[:60])
			opt := float64(l.optimum)
			if g < 0.9*opt {
				t.Errorf("goodput %.1f requests' worth, want at least 90%% of %d", g, l.optimum)
			}
		})
	}
}

// nearLink is a store next to the client (loopback): it serves four 16 MiB requests at
// once at 85 MiB/s each, and more only queue, so goodput is flat from four on.
var nearLink = link{optimum: 4, perConn: 85 << 20, size: 16 << 20}

func TestAdaptiveShortTransferNeverBelowTheOldDefault(t *testing.T) {
	// A transfer of a few seconds next to the store: requests queue beyond four, which
	// the controller sees, but it keeps at least the old fixed default until holdStart.
	s := newSim(t, nearLink, DefaultConcurrency, DefaultMaxConcurrency)
	g := s.goodput(holdStart - time.Second)
	t.Logf("over %v the limit went %v, lowest %d; goodput %.1f requests' worth", holdStart-time.Second, s.trace, s.low, g)
	if s.low < DefaultConcurrency {
		t.Errorf("unthrottled, the limit fell to %d within %v: below the old fixed default %d", s.low, holdStart, DefaultConcurrency)
	}
	if g < 0.95*float64(nearLink.optimum) {
		t.Errorf("goodput %.1f requests' worth, want the path's %d", g, nearLink.optimum)
	}
	// After the hold the controller is free to settle lower on a path this narrow.
	s.run(300 * time.Second)
	s.settled(150, nearLink.optimum)
}

func TestAdaptiveHoldsForTenWindows(t *testing.T) {
	// Requests of 8 s at 8 in flight: windows last windowMax, so holdStart ends after four
	// of them; the hold lasts the ten windows.
	l := link{optimum: 4, perConn: 4 << 20, size: 16 << 20}
	s := newSim(t, l, DefaultConcurrency, DefaultMaxConcurrency)
	s.run(holdWindows*windowMax - time.Second)
	t.Logf("limit %v, lowest %d", s.trace, s.low)
	if s.low < DefaultConcurrency {
		t.Errorf("the limit fell to %d before %d windows had ended", s.low, holdWindows)
	}
	s.run(300 * time.Second)
	if n := s.tune.current(); n >= DefaultConcurrency {
		t.Errorf("after the hold, on a path serving %d, the limit is still %d", l.optimum, n)
	}
}

func TestAdaptiveThrottledEarlyGoesBelowTheStart(t *testing.T) {
	// The hold is no floor against the store's own SlowDown: it cuts at once.
	s := newSim(t, link{optimum: 32, perConn: 8 << 20, size: 8 << 20, throttleAt: 3, slowDownIn: 50 * time.Millisecond},
		DefaultConcurrency, DefaultMaxConcurrency)
	s.run(holdStart / 2)
	if lo, hi := s.limits(5); hi > 5 {
		t.Errorf("a store serving 3 at once and throttling the rest: over the last 5 s the limit was %d..%d, want at most 5", lo, hi)
	}
}

func TestAdaptiveStaysWithinMax(t *testing.T) {
	s := newSim(t, link{optimum: 1000, perConn: 1 << 20, size: 1 << 20}, DefaultConcurrency, 20)
	s.run(120 * time.Second)
	if s.peak > 20 || s.tune.current() != 20 {
		t.Errorf("on a path wider than the maximum 20: limit %d, peak in flight %d; want 20 and at most 20", s.tune.current(), s.peak)
	}
}

func TestAdaptiveBacksOffOnSlowDownAndRecovers(t *testing.T) {
	s := newSim(t, farLink, DefaultConcurrency, DefaultMaxConcurrency)
	s.run(120 * time.Second)
	before := s.tune.current()
	// The store now throttles anything beyond 10 requests at once.
	s.link.throttleAt, s.link.slowDownIn = 10, 50*time.Millisecond
	s.run(10 * time.Second)
	first := s.tune.current()
	s.run(110 * time.Second)
	lo, hi := s.limits(60)
	// Throttling ends.
	s.link.throttleAt = 0
	s.run(180 * time.Second)
	after := s.tune.current()
	t.Logf("before %d; 10 s into throttling at 10: %d; during it %d..%d; 180 s after: %d; trace %v",
		before, first, lo, hi, after, s.trace[len(s.trace)-250:])
	if first > before*3/4 {
		t.Errorf("10 s into throttling the limit is %d, down from %d: no multiplicative back-off", first, before)
	}
	if hi > 14 || lo < 4 {
		t.Errorf("while the store throttles beyond 10, the limit ranged over %d..%d, want around 10", lo, hi)
	}
	s.settled(60, farLink.optimum)
}

func TestAdaptiveBacksOffOnEverySlowDown(t *testing.T) {
	// Every request is throttled: the limit falls to one and stays there.
	s := newSim(t, link{optimum: 32, perConn: 8 << 20, size: 8 << 20, throttleAt: -1}, 32, 64)
	s.link.throttleAt = 1 // only one request at a time gets through
	s.run(60 * time.Second)
	if lo, hi := s.limits(20); hi > 3 {
		t.Errorf("with a store that serves one request at a time, the limit stayed at %d..%d", lo, hi)
	}
}

func TestAdaptiveDoesNotGrowWhatIsNotUsed(t *testing.T) {
	// Only three requests are ever wanted at once: the limit has no reason to grow.
	s := newSim(t, farLink, DefaultConcurrency, DefaultMaxConcurrency)
	s.demand = 3
	s.run(120 * time.Second)
	if n := s.tune.current(); n > DefaultConcurrency {
		t.Errorf("with three requests wanted, the limit grew to %d", n)
	}
}

func TestFixedConcurrencyNeverChanges(t *testing.T) {
	for _, c := range []int{1, 3, 8, 100} {
		m := New(nil, Config{Concurrency: c})
		if m.tune != nil || m.store.tune != nil {
			t.Fatalf("Concurrency %d: a controller runs", c)
		}
		if got := m.Concurrency(); got != c {
			t.Errorf("Concurrency %d: the Manager allows %d", c, got)
		}
		if got, _ := m.files.state(); got != max(2*c, 4) {
			t.Errorf("Concurrency %d: a directory job has %d files in progress, want %d", c, got, max(2*c, 4))
		}
		// Throttling and slow requests reach no controller: still exactly c.
		for range 100 {
			m.store.watch(context.Background(), "PutObjectPart", func(context.Context) error { return slowDown })
		}
		if got := m.Concurrency(); got != c {
			t.Errorf("Concurrency %d: after throttling the Manager allows %d", c, got)
		}
	}
	for _, c := range []int{0, -5} {
		m := New(nil, Config{Concurrency: c})
		if m.tune == nil || m.Concurrency() != DefaultConcurrency || m.maxConcurrency() != DefaultMaxConcurrency {
			t.Errorf("Concurrency %d: want adaptive from %d up to %d, got controller %v at %d up to %d",
				c, DefaultConcurrency, DefaultMaxConcurrency, m.tune != nil, m.Concurrency(), m.maxConcurrency())
		}
	}
}

func TestSlotsNeverExceedTheLimit(t *testing.T) {
	s := newSlots(4, nil)
	var inFlight, peakOver atomic.Int64
	var limit atomic.Int64
	limit.Store(4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var done atomic.Int64
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 300 {
				wctx := ctx
				if (i+j)%7 == 0 { // some give up waiting
					var c context.CancelFunc
					wctx, c = context.WithCancel(ctx)
					c()
				}
				if s.acquire(wctx) != nil {
					continue
				}
				// limit is raised before a growth and lowered once a shrink has drained.
				if n, l := inFlight.Add(1), limit.Load(); n > l {
					peakOver.Store(max(peakOver.Load(), n-l))
				}
				inFlight.Add(-1)
				s.release()
				done.Add(1)
			}
		}()
	}
	// Resize while they run.
	sizes := []int{1, 16, 2, 9, 1, 32, 3}
	var resizes sync.WaitGroup
	resizes.Add(1)
	go func() {
		defer resizes.Done()
		for i := 0; done.Load() < 64*200; i++ {
			n := sizes[i%len(sizes)]
			// Lower the recorded bound only after the shrink has drained.
			if int64(n) > limit.Load() {
				limit.Store(int64(n))
				s.setLimit(n)
			} else {
				s.setLimit(n)
				for {
					if _, f := s.state(); f <= n {
						break
					}
					time.Sleep(0) // yield; no wall-clock assertion
				}
				limit.Store(int64(n))
			}
		}
	}()
	wg.Wait()
	resizes.Wait()
	if p := peakOver.Load(); p > 0 {
		t.Errorf("%d more requests in flight than the limit", p)
	}
	if _, f := s.state(); f != 0 {
		t.Errorf("%d slots still taken after every goroutine released", f)
	}
	s.setLimit(2)
	in := 0
	for range 3 {
		if s.tryAcquire() {
			in++
		}
	}
	if in != 2 {
		t.Errorf("a limit of 2 let %d in", in)
	}
}

func TestSlotsShrinkDrains(t *testing.T) {
	s := newSlots(3, nil)
	for range 3 {
		if !s.tryAcquire() {
			t.Fatal("a free slot was refused")
		}
	}
	s.setLimit(1)
	got := make(chan struct{})
	go func() {
		if err := s.acquire(context.Background()); err == nil {
			close(got)
		}
	}()
	s.release()
	s.release() // 1 in flight: at the limit, the waiter still waits
	select {
	case <-got:
		t.Fatal("a request started with 1 in flight and a limit of 1")
	default:
	}
	s.release()
	<-got
	if l, f := s.state(); l != 1 || f != 1 {
		t.Errorf("limit %d, in flight %d; want 1 and 1", l, f)
	}
}

func TestDefaultPartSizeFitsThePath(t *testing.T) {
	const gib = 1 << 30
	fast := link{optimum: 32, perConn: 85 << 20, size: 64 << 20}    // AWS's ceiling per request, far away
	faster := link{optimum: 16, perConn: 300 << 20, size: 64 << 20} // a fat pipe per request
	for _, c := range []struct {
		name string
		l    link
		size int64
		want int64
	}{
		{"slow per request", farLink, 100 * gib, chunk.DefaultPartSize},
		{"85 MiB/s per request", fast, 100 * gib, 64 * mib},
		{"85 MiB/s per request, too small an object to feed every request", fast, 1 * gib, chunk.DefaultPartSize},
		{"300 MiB/s per request", faster, 100 * gib, chunk.MaxDefaultPartSize},
		{"300 MiB/s per request, 4 GiB", faster, 4 * gib, 64 * mib},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSim(t, c.l, DefaultConcurrency, DefaultMaxConcurrency)
			m := &Manager{tune: s.tune, slots: s.slots}
			if got := m.defaultPartSize(c.size); got != chunk.DefaultPartSize {
				t.Errorf("before any request, the part size is %d MiB, want the default %d MiB", got/mib, chunk.DefaultPartSize/mib)
			}
			s.run(60 * time.Second)
			got := m.defaultPartSize(c.size)
			t.Logf("%.0f MiB/s per request, %d in flight: %d MiB parts for %d MiB", s.tune.perRequest()/mib, m.Concurrency(), got/mib, c.size/mib)
			if got != c.want {
				t.Errorf("after 60 s the part size for %d MiB is %d MiB, want %d MiB", c.size/mib, got/mib, c.want/mib)
			}
		})
	}
	m := New(nil, Config{Concurrency: 8})
	if got := m.defaultPartSize(100 * gib); got != chunk.DefaultPartSize {
		t.Errorf("with a fixed concurrency (nothing measured) the part size is %d MiB, want %d MiB", got/mib, chunk.DefaultPartSize/mib)
	}
}

func TestUploadAndDownloadTakeTheFittedPartSize(t *testing.T) {
	// One request at a time, measured at 64 MiB/s: a 64 MiB object goes in two parts of
	// 32 MiB (enough to keep two requests' worth), not in four of the fixed 16 MiB.
	f, m, _ := fakeManager(t, Config{MaxConcurrency: 1})
	m.tune.mu.Lock()
	m.tune.record(64 << 20)
	m.tune.mu.Unlock()
	data := randomBytes(64 * mib)
	ctx := context.Background()
	res, err := m.UploadReaderAt(ctx, "bkt", "obj", bytes.NewReader(data), int64(len(data)), UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Parts != 2 {
		t.Errorf("the upload went in %d parts, want 2 of 32 MiB", res.Parts)
	}
	wantObject(t, f, data)
	gets := countOp(f, "GetObject")
	path := filepath.Join(t.TempDir(), "obj")
	if _, err := m.Download(ctx, "bkt", "obj", path, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := countOp(f, "GetObject") - gets; n != 2 {
		t.Errorf("the download took %d ranged GETs, want 2 of 32 MiB", n)
	}
	if !bytes.Equal(readFile(t, path), data) {
		t.Error("the downloaded file differs")
	}
	// An explicit part size still means exactly that.
	res, err = m.UploadReaderAt(ctx, "bkt", "obj2", bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 16 * mib})
	if err != nil {
		t.Fatal(err)
	}
	if res.Parts != 4 {
		t.Errorf("with PartSize 16 MiB the upload went in %d parts, want 4", res.Parts)
	}
}

// smallFilesLink is a directory job of small files on a far store: each request is a
// round trip of 50 to 150 ms and a few KiB, so goodput grows with every request in
// flight up to 32; a half-second window sees a few dozen requests end, and its goodput
// is noisy. The noise must not read as queueing.
var smallFilesLink = link{optimum: 32, perConn: 85 << 20, size: 64 << 10, rtt: 50 * time.Millisecond, jitter: 2}

func TestAdaptiveSmallRequestsDoNotCollapse(t *testing.T) {
	s := newSim(t, smallFilesLink, DefaultConcurrency, DefaultMaxConcurrency)
	s.run(120 * time.Second)
	share, median := s.within(60, DefaultConcurrency, DefaultMaxConcurrency)
	t.Logf("last 60 s: limit at or above %d %.0f%% of the time, median %d; trace %v", DefaultConcurrency, 100*share, median, s.trace)
	if share < 0.9 {
		t.Errorf("on a latency-bound path the limit fell below the start %d for %.0f%% of the last 60 s (median %d)",
			DefaultConcurrency, 100*(1-share), median)
	}
}

// On a store whose capacity swings with its machine's load (a factor of 0.2-0.3 to 1,
// every half second), goodput falls and rises whatever the client does; read as
// queueing, that took the limit down to 1-4 and the goodput to half of a fixed 8's
// (before the start became the floor of such cuts). Adaptive must not do worse than the
// old fixed default by more than the noise, on small requests as on large.
func TestAdaptiveNoisyStoreNoWorseThanFixed(t *testing.T) {
	for _, l := range []link{
		{optimum: 16, perConn: 1 << 20, size: 64 << 10, rtt: 20 * time.Millisecond, jitter: 1, noise: 0.7},
		{optimum: 16, perConn: 4 << 20, size: 64 << 10, rtt: 50 * time.Millisecond, jitter: 2, noise: 0.8},
		{optimum: 4, perConn: 85 << 20, size: 16 << 20, noise: 0.7},
		{optimum: 32, perConn: 8 << 20, size: 8 << 20, noise: 0.7},
	} {
		t.Run(fmt.Sprintf("%d-%dKiB", l.optimum, int(l.size)>>10), func(t *testing.T) {
			a := newSim(t, l, DefaultConcurrency, DefaultMaxConcurrency)
			a.run(60 * time.Second)
			ga := a.goodput(240 * time.Second)
			fixed := newSim(t, l, DefaultConcurrency, DefaultConcurrency)
			fixed.tune.min = DefaultConcurrency // never below, never above: a fixed 8
			fixed.run(60 * time.Second)
			gf := fixed.goodput(240 * time.Second)
			_, median := a.within(240, 0, math.MaxInt)
			t.Logf("adaptive %.2f requests' worth (median limit %d), fixed 8 %.2f: %.2f", ga, median, gf, ga/gf)
			if ga < 0.85*gf {
				t.Errorf("adaptive moved %.2f of a fixed 8's goodput; want at least 0.85", ga/gf)
			}
		})
	}
}

// A far path where each connection is capped and a request takes seconds (16 MiB parts
// at 4 MB/s: 4 s each) gives windows of seconds: ramping by half every other such window
// took half a minute to reach what the path serves, most of a 1 GiB transfer. The ramp
// must not wait on the requests' length: what moves is measured as bytes move.
func TestAdaptiveRampsFastOnLongRequests(t *testing.T) {
	l := link{optimum: 64, perConn: 4e6, size: 16 << 20, rtt: 40 * time.Millisecond}
	s := newSim(t, l, DefaultConcurrency, DefaultMaxConcurrency)
	s.run(60 * time.Second)
	reached := slices.IndexFunc(s.trace, func(n int) bool { return n >= 48 })
	t.Logf("first 30 s: %v", s.trace[:30])
	if reached < 0 || reached > 15 {
		t.Errorf("the limit reached 48 of the 64 the path serves after %d s; want within 15 s", reached)
	}
}

// Next to the store, where more requests than the old default contend for its CPU and
// lose goodput, the first ramp's step to twice the start ends as soon as two windows
// judged it: the settling window and two more, not a third that cannot change the outcome.
func TestAdaptiveRampStepThatLosesEndsAfterTwoWindows(t *testing.T) {
	l := link{optimum: DefaultConcurrency, perConn: 80 << 20, size: 16 << 20, loss: 0.2}
	s := newSim(t, l, DefaultConcurrency, DefaultMaxConcurrency)
	s.roundTrip()
	var up, down time.Duration // when the limit rose past the start, and came back
	for start := s.clock.t; s.clock.t.Sub(start) < 3*time.Second && down == 0; {
		s.run(s.step)
		limit, _ := s.slots.state()
		switch {
		case up == 0 && limit > DefaultConcurrency:
			up = s.clock.t.Sub(start)
		case up > 0 && limit < 2*DefaultConcurrency:
			down = s.clock.t.Sub(start)
		}
	}
	if up == 0 || down == 0 {
		t.Fatalf("the limit rose at %v and came back at %v; want a ramp step that ended", up, down)
	}
	t.Logf("stepped up at %v, back at %v", up, down)
	if held := down - up; held > 3*rampMin+2*s.step {
		t.Errorf("a step that lost goodput was held %v; want at most three ramp windows (%v)", held, 3*rampMin)
	}
}

// roundTrip simulates a request that moves nothing and takes the link's round trip, as
// the HEAD or CreateMultipartUpload before a transfer's parts.
func (s *sim) roundTrip() {
	start := s.clock.t
	s.clock.t = s.clock.t.Add(s.link.rtt)
	s.tune.roundTrip(s.link.rtt)
	s.tune.done(start, false, nil)
}

// finish runs until every one of the total requests succeeded and returns how long that took.
func (s *sim) finish() time.Duration {
	s.t.Helper()
	start := s.clock.t
	for s.ended < s.total {
		if s.clock.t.Sub(start) > time.Hour {
			s.t.Fatalf("%d of %d requests ended in an hour", s.ended, s.total)
		}
		s.run(s.step)
	}
	return s.clock.t.Sub(start)
}

// A 1 GiB transfer in 16 MiB parts to a store 40 ms away whose every connection is capped
// at 4 MB/s (bench/run.sh's far scenarios): each part takes four seconds, and the whole
// transfer lasts about as long at the best fixed concurrency, so a ramp that waits for
// parts to end loses most of it. The defaults must come within a quarter of the best fixed
// concurrency here, where new connections start at full speed (the bench measures the
// real path).
func TestAdaptiveFarTransferNearTheBestFixed(t *testing.T) {
	l := link{optimum: 1000, perConn: 4e6, size: 16 << 20, rtt: 20 * time.Millisecond, jitter: 0.5} // the ramp starts at 32
	transfer := func(start, maxN int) (time.Duration, []int) {
		s := newSim(t, l, start, maxN)
		if start == maxN {
			s.tune.min = start // a fixed concurrency
		}
		s.total = 64
		s.roundTrip()
		return s.finish(), s.trace
	}
	best := time.Duration(math.MaxInt64)
	for _, c := range []int{8, 16, 32, 64} {
		d, _ := transfer(c, c)
		t.Logf("fixed %d: %v", c, d)
		best = min(best, d)
	}
	d, trace := transfer(DefaultConcurrency, DefaultMaxConcurrency)
	t.Logf("adaptive: %v (%.2f of the best fixed), limit %v", d, d.Seconds()/best.Seconds(), trace)
	if d.Seconds() > 1.12*best.Seconds() {
		t.Errorf("adaptive took %v, %.2f times the best fixed concurrency's %v; want at most 1.12", d, d.Seconds()/best.Seconds(), best)
	}
}

// New connections' first bytes fill socket buffers at once, and a request's last bytes
// still cross the path after they left: the first ramp's reading of a limit full of new
// connections must not become the measure of what one request moves, nor may the window
// in which the first requests end, together, be judged, or the path's every window after
// the ramp reads as queueing (a far job of 4 GiB was cut from 64 in flight to 17).
func TestAdaptiveFirstRampSeesThroughBursts(t *testing.T) {
	l := link{optimum: 1000, perConn: 4e6, size: 16 << 20, rtt: 20 * time.Millisecond, jitter: 8, burst: 1 << 20,
		tail: 400 * time.Millisecond} // the ramp starts at 32; round trips of 20 to 180 ms
	s := newSim(t, l, DefaultConcurrency, DefaultMaxConcurrency)
	s.roundTrip()
	s.run(60 * time.Second)
	t.Logf("limit, each second: %v", s.trace)
	if lo := slices.Min(s.trace[5:]); lo < 48 {
		t.Errorf("on a path serving %d at 4 MB/s each the limit fell to %d after the ramp; want at least 48 of the max 64", l.optimum, lo)
	}
}

// The round trip sets where the first ramp starts: the old fixed default next to the
// store, more in flight further away (Little's law), never past the max.
func TestAdaptiveStartGrowsWithTheRoundTrip(t *testing.T) {
	for _, c := range []struct {
		rtt  time.Duration
		want int
	}{{500 * time.Microsecond, 8}, {nearRTT - time.Millisecond, 8}, {nearRTT, 16}, {20 * time.Millisecond, 32}, {30 * time.Millisecond, 48}, {200 * time.Millisecond, 64}} {
		s := newSim(t, link{optimum: 64, perConn: 4e6, size: 16 << 20, rtt: c.rtt}, DefaultConcurrency, DefaultMaxConcurrency)
		s.roundTrip()
		if n := s.tune.current(); n != c.want {
			t.Errorf("after a round trip of %v the limit is %d, want %d", c.rtt, n, c.want)
		}
		// A quicker round trip afterwards does not lower it: the ramp judges from here. It
		// shortens the window under way to rampRounds of it.
		s.tune.roundTrip(c.rtt / 2)
		if n := s.tune.current(); n != c.want {
			t.Errorf("after a round trip of %v then a quicker one the limit is %d, want %d", c.rtt, n, c.want)
		}
		s.tune.mu.Lock()
		due, start := time.Unix(0, s.tune.due.Load()), s.tune.start
		s.tune.mu.Unlock()
		if want := min(max(rampRounds*c.rtt/2, rampMin), windowMin); due.Sub(start) != want {
			t.Errorf("after a round trip of %v the window under way lasts %v, want %v", c.rtt/2, due.Sub(start), want)
		}
	}
}

// A far store's start is held as the old default is next to the store: the windows of a
// job of a few seconds are too few to tell queueing from noise. After the hold, on a path
// that serves fewer than the start, the limit settles near what it serves: requests that
// move bytes, plus those waiting out their round trip.
func TestAdaptiveFarStartIsHeld(t *testing.T) {
	l := link{optimum: 24, perConn: 4e6, size: 1 << 20, rtt: 100 * time.Millisecond}
	s := newSim(t, l, DefaultConcurrency, DefaultMaxConcurrency)
	s.roundTrip()
	s.run(holdStart - time.Second)
	t.Logf("limit, each second: %v", s.trace)
	if lo := slices.Min(s.trace); lo < DefaultMaxConcurrency {
		t.Errorf("a round trip of %v starts at %d, and the limit fell to %d within %v", l.rtt, DefaultMaxConcurrency, lo, holdStart)
	}
	s.run(300 * time.Second)
	moving := float64(l.size) / l.perConn
	s.settled(150, int(math.Round(float64(l.optimum)*(moving+l.rtt.Seconds())/moving)))
}

// A directory job whose walk falls behind for a while wants fewer requests than the
// limit allows; the goodput of that lull is no sign of the path's ceiling, and must not
// end the first ramp.
func TestAdaptiveRampSurvivesALullInDemand(t *testing.T) {
	l := link{optimum: 64, perConn: 4e6, size: 1 << 20, rtt: 5 * time.Millisecond} // near enough to start at 8
	s := newSim(t, l, DefaultConcurrency, DefaultMaxConcurrency)
	s.roundTrip()
	begin := s.clock.t
	for s.tune.current() == DefaultConcurrency {
		if s.clock.t.Sub(begin) > 10*time.Second {
			t.Fatalf("the limit stayed at %d for 10 s on a path serving 64", DefaultConcurrency)
		}
		s.run(s.step)
	}
	stepped := s.tune.current()
	s.demand = 4
	s.run(3 * time.Second)
	s.demand = math.MaxInt
	s.run(4 * time.Second)
	t.Logf("stepped to %d, then 3 s wanting 4, then 4 s wanting all: limit %d", stepped, s.tune.current())
	if n := s.tune.current(); n < 48 {
		t.Errorf("4 s after the lull the limit is %d, want at least 48 of the 64 the path serves", n)
	}
}

// A transfer next to the store that ends within rampPayback windows is not stepped up:
// the step would be judged in its second half and cost goodput there. The same transfer
// in a directory job, whose walk may find more, and a longer one still step.
func TestAdaptiveRampDoesNotStepNearTheEnd(t *testing.T) {
	l := link{optimum: DefaultConcurrency, perConn: 160 << 20, size: 16 << 20, loss: 0.1}
	transfer := func(requests int, job bool) (time.Duration, int) {
		s := newSim(t, l, DefaultConcurrency, DefaultMaxConcurrency)
		s.total = requests
		s.tune.ahead.Store(int64(requests) * int64(l.size))
		s.unplan = true
		if job {
			s.tune.openJobs.Add(1)
		}
		s.roundTrip()
		d := s.finish()
		return d, s.peak
	}
	fixed := func(requests int) time.Duration {
		s := newSim(t, l, DefaultConcurrency, DefaultConcurrency)
		s.tune.min = DefaultConcurrency
		s.total = requests
		s.roundTrip()
		return s.finish()
	}
	short := 64 // 1 GiB at 1.25 GiB/s: 0.8 s, as the bench's download on a 2-core VM
	d, peak := transfer(short, false)
	f8 := fixed(short)
	t.Logf("1 GiB: %v at the defaults (at most %d in flight), %v at a fixed %d", d, peak, f8, DefaultConcurrency)
	if peak > DefaultConcurrency {
		t.Errorf("a transfer of %v went to %d in flight; want no step past %d so near its end", d, peak, DefaultConcurrency)
	}
	if d > f8+10*time.Millisecond {
		t.Errorf("the defaults took %v, a fixed %d %v", d, DefaultConcurrency, f8)
	}
	if _, peak := transfer(short, true); peak <= DefaultConcurrency {
		t.Errorf("in a directory job the ramp never stepped past %d; a job's walk may find more work", peak)
	}
	if _, peak := transfer(8*short, false); peak <= DefaultConcurrency {
		t.Errorf("an 8 GiB transfer never stepped past %d; want the ramp to try", peak)
	}
}

// The work a Manager tells its tuner of is what its transfers have left: all of an
// upload's parts while it runs, nothing once it ended, also in failure, and a directory
// job is open-ended while it runs.
func TestManagerTellsTheTunerTheWorkLeft(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	ctx := context.Background()
	data := randomBytes(64 * mib)
	var during atomic.Int64
	f.Fault = transfertest.When(func(c transfertest.Call) bool { return c.Op == "PutObjectPart" && c.Part == 3 }, 1,
		transfertest.Fault{Wait: func(context.Context) error { during.Store(m.tune.ahead.Load()); return nil }})
	if _, err := m.UploadReaderAt(ctx, "bkt", "obj", bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 16 * mib}); err != nil {
		t.Fatal(err)
	}
	if n := during.Load(); n <= 0 || n > int64(len(data)) {
		t.Errorf("while the upload's part 3 was sent, the tuner was told of %d bytes left; want 1..%d", n, len(data))
	}
	if n := m.tune.ahead.Load(); n != 0 {
		t.Errorf("after the upload the tuner was told of %d bytes left; want 0", n)
	}
	// In parts of 5 MiB, part 2's failure stops the upload while parts 3 to 8 wait, before
	// the last parts start.
	f.Fault = transfertest.Faults(transfertest.OnPart(2, 0, transfertest.Fail(transfertest.S3Error("AccessDenied"))),
		transfertest.When(func(c transfertest.Call) bool { return c.Op == "PutObjectPart" && c.Part >= 3 }, 0,
			transfertest.Fault{Wait: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}))
	if _, err := m.UploadReaderAt(ctx, "bkt", "obj2", bytes.NewReader(data), int64(len(data)), UploadOptions{PartSize: 5 * mib}); err == nil {
		t.Fatal("an upload whose part 2 is denied succeeded")
	}
	if n := m.tune.ahead.Load(); n != 0 {
		t.Errorf("after a failed upload the tuner was told of %d bytes left; want 0", n)
	}
	f.Fault = nil
	if _, err := m.Download(ctx, "bkt", "obj", filepath.Join(t.TempDir(), "obj"), DownloadOptions{PartSize: 16 * mib}); err != nil {
		t.Fatal(err)
	}
	if n := m.tune.ahead.Load(); n != 0 {
		t.Errorf("after a download the tuner was told of %d bytes left; want 0", n)
	}
	var open atomic.Int32
	f.Fault = transfertest.When(func(c transfertest.Call) bool { return c.Op == "PutObject" }, 1,
		transfertest.Fault{Wait: func(context.Context) error { open.Store(m.tune.openJobs.Load()); return nil }})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UploadDir(ctx, dir, "bkt", "dir/", DirOptions{}); err != nil {
		t.Fatal(err)
	}
	if open.Load() != 1 || m.tune.openJobs.Load() != 0 {
		t.Errorf("open-ended jobs: %d while a directory job ran, %d after; want 1 and 0", open.Load(), m.tune.openJobs.Load())
	}
}
