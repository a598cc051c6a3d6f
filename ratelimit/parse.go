package ratelimit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/s3xfer/s3xfer/internal/units"
)

const rateForms = "write bytes per second as 10MiB/s, 10MB/s or 10M (binary units, as aws cli and rclone read them), " +
	"bits per second as 80Mbit/s or 80Mbps (decimal), or off"

// ParseRate parses a bandwidth into bytes per second; 0 means unlimited.
//
// Sizes are binary bytes, as aws cli's max_bandwidth and rclone's --bwlimit read them: "10MiB/s", "10MB/s" and
// "10M" are all 10485760. Bits are decimal, as network speeds are quoted: "80Mbit/s" and "80Mbps" are 10e6.
// The "/s" is optional. "off" and "0" mean unlimited. Any other input, including a negative rate, is an error
// naming the input and the accepted forms.
func ParseRate(s string) (bytesPerSec float64, err error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "off") {
		return 0, nil
	}
	if len(t) >= 2 && strings.EqualFold(t[len(t)-2:], "/s") {
		t = t[:len(t)-2]
	}
	lower := strings.ToLower(t)
	switch {
	case strings.HasSuffix(t, "bps"): // lower-case b: bits ("Mbps"); "MBps" is bytes
		return parseBits(s, t[:len(t)-3])
	case strings.HasSuffix(lower, "bits"):
		return parseBits(s, t[:len(t)-4])
	case strings.HasSuffix(lower, "bit"):
		return parseBits(s, t[:len(t)-3])
	case strings.HasSuffix(t, "Bps"):
		t = t[:len(t)-2]
	}
	// No size unit has an "n": this refuses "nan" and "inf", which ParseSize's float path would let through.
	n, err := units.ParseSize(t)
	if err != nil || n < 0 || strings.ContainsRune(lower, 'n') {
		return 0, fmt.Errorf("rate %q: not a rate; %s", s, rateForms)
	}
	return float64(n), nil
}

// parseBits parses a bit count with an optional decimal prefix (k, M, G, T) and returns it in bytes.
func parseBits(s, t string) (float64, error) {
	t = strings.TrimSpace(t)
	mult := 1.0
	if t != "" {
		if i := strings.IndexByte("kmgt", t[len(t)-1]|0x20); i >= 0 { // |0x20: ASCII lower case
			mult, t = math.Pow(1000, float64(i+1)), strings.TrimSpace(t[:len(t)-1])
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || !(f >= 0) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("rate %q: not a rate; %s", s, rateForms)
	}
	return f * mult / 8, nil
}

// Slot is one entry of a Schedule: from At after local midnight on, the rate is Rate bytes per second
// (0 = unlimited).
type Slot struct {
	At   time.Duration
	Rate float64
}

// Schedule is a daily timetable of rates, sorted by At. It applies in a cycle: before the day's first slot,
// the previous day's last slot still holds. An empty Schedule means unlimited all day.
type Schedule []Slot

// ParseSchedule parses space-separated "HH:MM,rate" entries, such as "08:00,2MiB/s 19:00,off", where rate is
// anything ParseRate accepts. Entries may come in any order; two at the same time are an error.
func ParseSchedule(s string) (Schedule, error) {
	var sch Schedule
	for _, f := range strings.Fields(s) {
		hm, r, ok := strings.Cut(f, ",")
		h, m, ok2 := strings.Cut(hm, ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !ok || !ok2 || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
			return nil, fmt.Errorf("schedule %q: entry %q: write HH:MM,rate such as 08:00,2MiB/s", s, f)
		}
		bps, err := ParseRate(r)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: entry %q: %w", s, f, err)
		}
		sch = append(sch, Slot{At: time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, Rate: bps})
	}
	if len(sch) == 0 {
		return nil, fmt.Errorf("schedule %q: empty; write entries such as \"08:00,2MiB/s 19:00,off\"", s)
	}
	slices.SortStableFunc(sch, func(a, b Slot) int { return int(a.At - b.At) })
	for i := 1; i < len(sch); i++ {
		if sch[i].At == sch[i-1].At {
			return nil, fmt.Errorf("schedule %q: two entries at %02d:%02d", s, sch[i].At/time.Hour, sch[i].At%time.Hour/time.Minute)
		}
	}
	return sch, nil
}

// sinceMidnight returns t's wall-clock time of day in t's location.
func sinceMidnight(t time.Time) time.Duration {
	h, m, sec := t.Clock()
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second +
		time.Duration(t.Nanosecond())
}

// RateAt returns the rate in force at t's time of day, in t's location (time.Now() is local time): that of the
// last slot at or before it, or before the first slot, the last slot of the day. An empty Schedule returns 0.
func (s Schedule) RateAt(t time.Time) float64 {
	if len(s) == 0 {
		return 0
	}
	d := sinceMidnight(t)
	r := s[len(s)-1].Rate
	for _, sl := range s {
		if sl.At > d {
			break
		}
		r = sl.Rate
	}
	return r
}

// next returns the first slot boundary after t, as wall-clock time in t's location (right across DST changes).
func (s Schedule) next(t time.Time) time.Time {
	y, mo, d := t.Date()
	for day := 0; ; day++ {
		for _, sl := range s {
			b := time.Date(y, mo, d+day, 0, 0, int(sl.At/time.Second), int(sl.At%time.Second), t.Location())
			if b.After(t) {
				return b
			}
		}
	}
}

// maxNap bounds each sleep of Run so a clock that jumps (suspend, NTP step) delays a rate change by at most this.
const maxNap = time.Minute

// Run applies the schedule to l: it sets l's rate to RateAt(now) at once and again at each slot boundary, until
// ctx ends. It blocks, so run it in its own goroutine. A nil c means the real clock; an empty s sets l
// unlimited and returns.
func (s Schedule) Run(ctx context.Context, l *Limiter, c Clock) {
	if c == nil {
		c = WallClock{}
	}
	for {
		now := c.Now()
		l.SetRate(s.RateAt(now))
		if len(s) == 0 || c.Sleep(ctx, min(s.next(now).Sub(now), maxNap)) != nil {
			return
		}
	}
}
