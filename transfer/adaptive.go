package transfer

import (
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/ratelimit"
)

// DefaultMaxConcurrency is the most requests adaptive concurrency keeps in flight when
// Config.MaxConcurrency is zero.
const DefaultMaxConcurrency = 64

// The controller's constants.
const (
	// windowMin and windowMax bound a measuring window, which lasts two smoothed request
	// latencies: long enough for several requests to end, short enough to react.
	windowMin, windowMax = 250 * time.Millisecond, 5 * time.Second
	// A window of the first ramp lasts rampRounds round trips (the quickest seen), within
	// rampMin..rampMax: it measures bytes as they move, so it need not wait for requests
	// of seconds to end, but new connections must be past their first round trips.
	rampRounds, rampMin, rampMax = 4, 150 * time.Millisecond, time.Second
	// rampGrowth is the rise in goodput a step must bring for the first ramp to go on; a
	// step that brought rampLinear or more (goodput that grows with every request) quadruples.
	rampGrowth, rampLinear = 1.25, 1.75
	// A round trip of nearRTT or more starts the first ramp above base, at base per farRTT
	// of it (see roundTrip): 40 ms away, 4 MB/s per connection, 1 GiB and 2,000 small
	// files both moved fastest at 64 in flight, the max. A quicker one may be the store's
	// own work as much as distance (a CreateMultipartUpload's fsync next to the store
	// took 5.6 ms).
	nearRTT, farRTT = 10 * time.Millisecond, 5 * time.Millisecond
	// throttleCut is the multiplicative decrease on a throttled window.
	throttleCut = 0.7
	// latencyCut is the decrease when requests take latencyRise times their floor.
	latencyCut, latencyRise = 0.8, 3.0
	// history is how many windows the best goodput per request is remembered: a path
	// that got slower for good is believed after this many.
	history = 40
	// probeEvery windows without a decrease, the limit is halved for one window, which
	// measures goodput per request where requests do not queue, then set again.
	probeEvery = 30
	// For holdStart and at least holdWindows windows in which requests ended, the limit
	// stays at or above where it started unless the store throttles: the start is the old
	// fixed default, right next to the store, and a transfer of a few seconds (or a client
	// too busy to end a window often) gives too few windows to tell queueing from noise.
	holdStart, holdWindows = 20 * time.Second, 10
	// rampPayback is how many of its windows of work must be left for the first ramp to
	// step up: a step is judged over three (one settling, two measured), costs goodput
	// while judged if it does not pay, and pays only in the time after. The time left is
	// read at the start's goodput, which the first windows read low (a 1 GiB download
	// next to the store: 720 MiB/s, then 1.1 GiB/s), so it is overestimated.
	rampPayback = 8
	// partTime is about how long a default part takes at the goodput of one request that
	// does not queue: long against a request's fixed costs (round trips, the store's
	// commit), short enough that a failed part costs little to send again.
	partTime = time.Second
)

// tuner is the adaptive concurrency controller: it sets the limit of a Manager's slots
// from what the store layer reports of every request (bytes moved, latency, throttling)
// and from how busy the slots were.
//
// The first ramp doubles the limit (quadruples it after a doubling that nearly doubled
// goodput) while each step raises goodput by a quarter or more, as TCP's slow start and
// BBR's startup do. Its windows last a few round trips and count bytes as they move, so
// a far path with requests of seconds fills within seconds. A window right after a
// change is not judged (new requests' first bytes fill socket buffers at once, a burst
// that would pass for goodput), nor the first one, for the same reason; only the start's
// goodput per request is remembered, not that of limits stepped up to. When a step no
// longer pays, the limit drops to what the path served at once. No step is taken when
// the work the Manager knows is left would end too soon to pay it back (endsSoon).
//
// Afterwards, time is cut into windows of about two request latencies, the first judged
// the one after requests first ended, and ended by the clock as bytes move. Only data
// requests of some size (PUT, GET, copies) give latencies. Each window measures the
// goodput g (bytes per second moved by requests) and the mean number of requests in
// flight n, so g/n is the goodput per request; its best value over the last windows,
// e, is what one request moves when it does not queue behind the others. g/e is then
// the number of requests the path actually serves at once, and n - g/e how many of those
// in flight only queue: the rule of TCP Vegas, on goodput rather than round-trip time,
// so requests of any size count. With fewer than alpha queued (a tenth of the limit),
// the limit grows by one, if the limit was what held requests back. With more than beta
// (a fifth) queued, it drops to g/e plus alpha, but not below base (a store whose
// goodput swings with its own load reads as queueing). A throttled request (SlowDown,
// 503, 429) cuts the limit by 30% at once, at most once per window; requests taking
// three times the lowest latency seen while some queue cut it by 20%. A window right
// after a change is not judged, since the change is still taking effect. Every
// probeEvery quiet windows (or at once if no window ever measured fewer requests than
// the path seems to serve) the limit is halved for two windows, to measure e where
// requests do not queue, and comes back to where it was, or to g/e plus alpha if that
// is less; if goodput did not drop with half the requests, the next window probes lower
// still.
// For the first holdStart and holdWindows windows, until the store throttles, no decision
// but a throttled one takes the limit below where it started, and no probe runs.
// The limit stays within [1, max].
type tuner struct {
	slots    *slots
	files    *slots // a directory job's files in progress, kept at twice the limit
	clock    ratelimit.Clock
	log      *slog.Logger
	min, max int
	base     float64   // the limit it was made with, for a store next to it
	startAt  float64   // the limit the first ramp started at: base, or more for a far store (roundTrip)
	holdEnd  time.Time // until then (and holdWindows) the limit stays at or above startAt; zero once throttled
	windows  int       // windows in which some request ended

	moved atomic.Int64 // bytes moved by requests in the current window
	due   atomic.Int64 // when the current window ends, in Unix nanoseconds
	// The work left, for the first ramp (see rampPayback): the bytes of the parts planned
	// and not yet done, and the jobs under way whose extent is unknown (a directory job's
	// walk may find more), which leave the ramp free to step.
	ahead    atomic.Int64
	openJobs atomic.Int32

	mu        sync.Mutex
	limit     float64 // slots has its rounding
	start     time.Time
	window    time.Duration
	slowStart bool
	settling  bool // the last window changed the limit: skip judging the next
	// the first ramp: the limit before the last step and the goodput judged at it; the
	// windows judged at this limit and the goodput of the last
	rampFrom, rampG float64
	rampN           int
	rampLast        float64
	rtt             time.Duration // the quickest round trip seen
	probing         float64       // the limit before a probe, while one runs
	probeNow        bool          // probe at the next judged window
	quiet           int           // windows since the limit last dropped
	lastG           float64       // the goodput of the last judged window
	lowest          float64       // the fewest requests in flight a judged window measured
	lastCut         time.Time
	// the current window
	throttled int
	latSum    time.Duration
	latN      int
	// across windows
	perReq  [history]float64 // goodput per request of the last windows
	next    int
	floor   time.Duration // the lowest window mean latency
	latency time.Duration // smoothed request latency
}

func newTuner(s, files *slots, start, maxN int, clock ratelimit.Clock, log *slog.Logger) *tuner {
	t := &tuner{slots: s, files: files, clock: clock, log: log, min: 1, max: max(maxN, 1),
		slowStart: true, settling: true, window: windowMin}
	t.limit = float64(min(max(start, t.min), t.max))
	t.base, t.startAt = t.limit, t.limit
	t.start = clock.Now()
	t.holdEnd = t.start.Add(holdStart)
	t.lastCut = t.start.Add(-windowMax)
	t.due.Store(t.start.Add(t.window).UnixNano())
	t.apply()
	return t
}

// apply hands the limit to the slots. t.mu is held, or t is new.
func (t *tuner) apply() {
	n := int(math.Round(t.limit))
	t.slots.setLimit(n)
	if t.files != nil {
		t.files.setLimit(max(2*n, 4))
	}
}

// moving counts n bytes moved by a request, and ends the window if it is over: requests
// that take seconds must not stretch it, nor the ramp with it.
func (t *tuner) moving(n int64) {
	t.moved.Add(n)
	if t.clock.Now().UnixNano() >= t.due.Load() {
		t.poll()
	}
}

// done tells of a request attempt that began at start, ending in err; if timed, its
// latency is one of the window's samples.
func (t *tuner) done(start time.Time, timed bool, err error) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case Throttled(err):
		t.throttled++
		if now.Sub(t.lastCut) >= t.window { // at once, not at the window's end
			t.holdEnd = time.Time{} // the store has said what it serves
			t.set(now, t.limit*throttleCut, "throttled", slog.Int("throttled", t.throttled))
			t.slowStart, t.lastCut = false, now
		}
	case err == nil && timed:
		t.latSum += now.Sub(start)
		t.latN++
	}
	t.tick(now)
}

// roundTrip tells of a request's round trip, or a TLS handshake's, of d. Before the first
// ramp's first step, a far store raises the limit: in flight is goodput times a request's
// time (Little's law), and a round trip of d adds to every request's time, so a store
// further away needs more requests in flight for the goodput the start gets next to it:
// base times d/farRTT, at most the max. The hold keeps that start as it keeps base next
// to the store: a far job of small files, its start capped at half the max, read a step
// to 64 that brought a fifth more as queueing in windows too short to tell, and ended at
// 32-46 where a fixed 64 took 0.8 of the time.
func (t *tuner) roundTrip(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d <= 0 || (t.rtt != 0 && d >= t.rtt) {
		return
	}
	t.rtt = d
	if !t.slowStart {
		return
	}
	// The ramp's window lasts rampRounds of the quickest round trip: a quicker one (a
	// TLS handshake's came first) shortens the window under way.
	if w := min(max(rampRounds*d, rampMin), rampMax); w < t.window {
		t.window = w
		t.due.Store(t.start.Add(w).UnixNano())
	}
	if t.rampFrom == 0 && d >= nearRTT {
		if to := min(t.base*float64(d)/float64(farRTT), float64(t.max)); to > t.limit {
			t.rampN, t.rampLast = 0, 0 // a window judged at the start says nothing of this limit
			t.startAt = to
			t.set(t.clock.Now(), to, "far", slog.Duration("round_trip", d))
		}
	}
}

// far says whether the store may be far: no round trip seen yet, or one of nearRTT or more.
func (t *tuner) far() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rtt == 0 || t.rtt >= nearRTT
}

// poll ends the window if it is over: called as requests start and end.
func (t *tuner) poll() {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tick(now)
}

// tick judges the window if it is over. t.mu is held.
func (t *tuner) tick(now time.Time) {
	if now.Sub(t.start) < t.window {
		return
	}
	u := t.slots.takeUsage()
	bytes := t.moved.Swap(0)
	throttled, latSum, latN := t.throttled, t.latSum, t.latN
	t.throttled, t.latSum, t.latN = 0, 0, 0
	t.start = now
	settling := t.settling
	t.settling = false
	// The window in which requests first ended is not judged: it is where they all ended
	// at once, and in flight they moved nothing while their last bytes crossed the path.
	unmeasured := t.latency == 0
	if latN > 0 {
		t.windows++
		mean := latSum / time.Duration(latN)
		if t.latency == 0 {
			t.latency = mean
		} else {
			t.latency = (3*t.latency + mean) / 4
		}
		t.window = min(max(2*t.latency, windowMin), windowMax)
	}
	if t.slowStart {
		t.window = min(max(rampRounds*t.rtt, rampMin), rampMax)
	}
	t.due.Store(now.Add(t.window).UnixNano())
	n := u.meanInFlight()
	if throttled > 0 || bytes == 0 || n < 0.5 || u.span <= 0 || settling {
		return // throttling was answered as it came
	}
	g := float64(bytes) / u.span.Seconds()
	if t.slowStart {
		t.ramp(now, g, n, u.full >= u.span/2)
		return
	}
	if unmeasured {
		return // nothing to compare latencies with yet
	}
	if t.probing > 0 {
		// Back to where the probe started, or to what the path serves at once with the
		// goodput per request measured now, if that is less.
		t.record(g / n)
		t.sawInFlight(n)
		to := min(t.probing, t.lastG/t.best()+max(1, t.probing/10))
		t.probing = 0
		// Goodput that did not drop with half the requests says the path serves no more
		// than half: the next window probes lower still.
		t.probeNow = g >= 0.9*t.lastG && to > 1
		t.set(now, to, "probed", slog.Float64("goodput_MiBps", g/(1<<20)), slog.Float64("in_flight", n))
		return
	}
	t.record(g / n)
	var mean time.Duration
	if latN > 0 {
		mean = latSum / time.Duration(latN)
		if t.floor == 0 || mean < t.floor {
			t.floor = mean
		}
	}
	best := t.best()
	serving := g / best // requests' worth of goodput the path delivers at once
	queued := n - serving
	alpha, beta := max(1, t.limit/10), max(2, t.limit/5)
	t.lastG = g
	t.sawInFlight(n)
	saturated := u.full >= u.span/2
	attrs := []slog.Attr{
		slog.Float64("goodput_MiBps", g/(1<<20)), slog.Float64("in_flight", n),
		slog.Float64("queued", queued), slog.Duration("latency", mean), slog.Duration("latency_floor", t.floor),
	}
	t.quiet++
	switch {
	case queued > beta && t.limit > t.base:
		t.slowStart = false
		// Never below the start on this signal alone: goodput that falls with the store's
		// own load reads as queueing, and only a throttled store or rising latency says
		// that fewer requests would serve better.
		to := max(serving+alpha, t.limit/2, t.base)
		// If no window measured fewer in flight than the path serves, the goodput per
		// request may be underestimated (the path was full from the start): measure it
		// lower at once.
		t.probeNow = t.lowest >= serving-1
		t.set(now, to, "queueing", attrs...)
	case mean > 0 && float64(mean) > latencyRise*float64(t.floor) && queued > alpha:
		t.slowStart = false
		t.set(now, t.limit*latencyCut, "latency", attrs...)
	case t.probeNow && t.limit/2 >= t.bottom(now):
		t.probing, t.probeNow = t.limit, false
		t.set(now, t.limit/2, "probing", attrs...) // one window to drain, one to measure
	case queued < alpha && saturated && t.limit < float64(t.max):
		t.set(now, t.limit+1, "goodput rising", attrs...)
	case t.quiet >= probeEvery && t.limit/2 >= t.bottom(now):
		t.probing, t.probeNow = t.limit, false
		t.set(now, t.limit/2, "probing", attrs...) // one window to drain, one to measure
	}
}

// ramp judges a window of the first ramp, which moved g bytes per second with n requests
// in flight on average; saturated says the limit held requests back. A limit is judged on
// the lesser goodput of its last two windows: a burst (socket buffers filling on new
// connections, more so behind TLS handshakes of varied length) only ever adds: judged on
// one, the first limit of a far upload read twice what its path carried, and the ramp
// ended a step later at half the path. t.mu is held.
func (t *tuner) ramp(now time.Time, g, n float64, saturated bool) {
	if !saturated {
		// Fewer requests wanted than allowed (a walk behind the transfers): nothing to
		// learn of the limit, and the limit is judged afresh once they are wanted again.
		t.rampN, t.rampLast = 0, 0
		return
	}
	t.rampN++
	last := t.rampLast
	t.rampLast = g
	if t.rampN < 2 {
		return
	}
	level := min(last, g)
	if t.limit <= t.base {
		// Not what a request moves once the limit was stepped up: at least half the
		// requests are new, their connections' buffers fill for a while (a far upload read
		// 165 MiB/s at 32 in flight on a 122 MiB/s path), and a goodput per request too
		// high reads later windows as queueing. The start's is kept: it began on an idle path.
		t.record(level / n)
	}
	t.sawInFlight(n)
	attrs := []slog.Attr{slog.Float64("goodput_MiBps", level/(1<<20)), slog.Float64("in_flight", n)}
	if t.rampG > 0 && level < rampGrowth*t.rampG {
		if t.rampN < 3 && g >= rampGrowth*t.rampG {
			// One more window: the one before may have been noise. Not when this one fell
			// short too: the next is judged with it, so the ramp ends either way, and next
			// to the store a step that does not pay costs goodput while it lasts.
			return
		}
		// The path serves little more at this limit than at the last: down to what it
		// served at once, at the goodput per request the last limit measured, and measure
		// lower still if it was full from the start.
		t.slowStart = false
		serving := t.rampFrom * level / t.rampG
		t.probeNow = t.lowest >= serving-1
		t.lastG = level
		t.set(now, min(serving+max(1, t.limit/10), t.limit), "ramp ended", attrs...)
		return
	}
	if t.limit >= float64(t.max) {
		t.slowStart = false
		return
	}
	if t.endsSoon(level) {
		return // judged again at the next window, when more work may have come
	}
	step := 2.0
	if t.rampG > 0 && level >= rampLinear*t.rampG {
		step = 4
	}
	t.rampFrom, t.rampG = t.limit, level
	t.rampN, t.rampLast = 0, 0
	t.set(now, min(step*t.limit, float64(t.max)), "ramping", attrs...)
}

// plan tells t of parts whose bytes are work left; nil t (a fixed concurrency) ignores it.
func (t *tuner) plan(parts []chunk.Part) {
	if t != nil {
		for _, p := range parts {
			t.ahead.Add(p.Size)
		}
	}
}

// unplan tells t that parts planned are done, or will not be started.
func (t *tuner) unplan(parts ...chunk.Part) {
	if t != nil {
		for _, p := range parts {
			t.ahead.Add(-p.Size)
		}
	}
}

// endsSoon says whether the work known to be left moves within rampPayback windows at a
// goodput of g: a 1 GiB download next to the store lasts about seven, and a step to twice
// the start (a tenth less goodput there) took its second half. t.mu is held.
func (t *tuner) endsSoon(g float64) bool {
	ahead := t.ahead.Load()
	return t.openJobs.Load() == 0 && ahead > 0 && float64(ahead) < rampPayback*t.window.Seconds()*g
}

// sawInFlight keeps the fewest requests in flight a judged window measured. t.mu is held.
func (t *tuner) sawInFlight(n float64) {
	if t.lowest == 0 || n < t.lowest {
		t.lowest = n
	}
}

// record remembers one window's goodput per request. t.mu is held.
func (t *tuner) record(perReq float64) {
	t.perReq[t.next%history] = perReq
	t.next++
}

// best is the best goodput per request remembered. t.mu is held.
func (t *tuner) best() float64 {
	b := 0.0
	for _, v := range t.perReq[:min(t.next, history)] {
		b = max(b, v)
	}
	return b
}

// bottom is the lowest limit allowed now but on throttling. t.mu is held.
func (t *tuner) bottom(now time.Time) float64 {
	if !t.holdEnd.IsZero() && (now.Before(t.holdEnd) || t.windows < holdWindows) {
		return max(t.startAt, 1)
	}
	return max(float64(t.min), 1)
}

// set changes the limit to to (bounded), logging why. t.mu is held.
func (t *tuner) set(now time.Time, to float64, why string, attrs ...slog.Attr) {
	to = min(max(to, t.bottom(now)), float64(t.max))
	from := int(math.Round(t.limit))
	if to < t.limit {
		t.quiet = 0
	}
	t.limit = to
	if int(math.Round(to)) == from {
		return
	}
	t.apply()
	// The next window lets the change take effect (cut requests drain, new ones start);
	// the one after measures it.
	t.settling = true
	t.start = now
	t.due.Store(now.Add(t.window).UnixNano())
	t.slots.takeUsage()
	t.moved.Store(0)
	t.throttled, t.latSum, t.latN = 0, 0, 0
	args := []any{"from", from, "to", int(math.Round(to)), "reason", why}
	for _, a := range attrs {
		args = append(args, a)
	}
	t.log.Debug("concurrency", args...)
}

// current returns the limit now in force.
func (t *tuner) current() int {
	n, _ := t.slots.state()
	return n
}

// perRequest is the best goodput per request remembered, in bytes per second: what one
// request moves when it does not queue. Zero before a window was judged.
func (t *tuner) perRequest() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.best()
}

// defaultPartSize is the part size of an object of size bytes when none is given: parts
// of about partTime at the goodput per request measured so far, so a path where one
// request moves much gets larger parts and one where it moves little keeps small ones, within
// chunk.FitPartSize's bounds (enough parts for the requests in flight, at most
// chunk.MaxDefaultPartSize). Nothing is measured before the first requests of a Manager,
// nor with a fixed concurrency: chunk.DefaultPartSize then. The choice is made once per
// object, so its parts are equal but the last as the journal, a resume and the checks of
// a download expect.
func (m *Manager) defaultPartSize(size int64) int64 {
	var perPart int64
	if m.tune != nil {
		perPart = int64(m.tune.perRequest() * partTime.Seconds())
	}
	return chunk.FitPartSize(size, perPart, m.Concurrency())
}
