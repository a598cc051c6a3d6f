package ratelimit_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York for the DST case, whatever the machine has installed

	"github.com/s3xfer/s3xfer/ratelimit"
)

func TestParseRate(t *testing.T) {
	good := map[string]float64{
		"10MiB/s":    10 * MiB,
		"10M":        10 * MiB,
		"10MB/s":     10 * MiB,
		"10mb/S":     10 * MiB,
		"10MBps":     10 * MiB,
		" 2 MiB/s ":  2 * MiB,
		"1.5M":       1.5 * MiB,
		"512KiB/s":   512 * KiB,
		"512k":       512 * KiB,
		"1048576":    MiB,
		"80Mbit/s":   10e6,
		"80Mbps":     10e6,
		"80 mbit":    10e6,
		"1Gbit/s":    125e6,
		"100kbps":    12500,
		"8bit/s":     1,
		"2.5Gbits/s": 312.5e6,
		"off":        0,
		"OFF":        0,
		"0":          0,
		"0M":         0,
	}
	for in, want := range good {
		if got, err := ratelimit.ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "5XB/s", "-1M", "-8Mbit/s", "fast", "/s", "10Mbit/x", "Mbps", "nan", "NaNbps",
		"inf", "1e400bit", "10 M B", "on"} {
		got, err := ratelimit.ParseRate(in)
		if err == nil {
			t.Errorf("ParseRate(%q) = %v, want error", in, got)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%q", in)) || !strings.Contains(msg, "10MiB/s") ||
			!strings.Contains(msg, "80Mbit/s") {
			t.Errorf("ParseRate(%q) error %q should name the input and the accepted forms", in, msg)
		}
	}
}

func ExampleParseRate() {
	for _, s := range []string{"10MiB/s", "80Mbit/s", "off"} {
		bps, _ := ratelimit.ParseRate(s)
		fmt.Println(s, bps)
	}
	// Output:
	// 10MiB/s 1.048576e+07
	// 80Mbit/s 1e+07
	// off 0
}

func TestParseSchedule(t *testing.T) {
	h := time.Hour
	good := map[string]ratelimit.Schedule{
		"08:00,2MiB/s 19:00,off":   {{8 * h, 2 * MiB}, {19 * h, 0}},
		"19:00,off  08:30,1M\t":    {{8*h + 30*time.Minute, MiB}, {19 * h, 0}},
		"00:00,80Mbps":             {{0, 10e6}},
		"8:05,1k 23:59,2k 12:00,0": {{8*h + 5*time.Minute, KiB}, {12 * h, 0}, {23*h + 59*time.Minute, 2 * KiB}},
	}
	for in, want := range good {
		if got, err := ratelimit.ParseSchedule(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseSchedule(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "  ", "8,1M", "08:00", "08:00,", "24:00,1M", "08:60,1M", "-1:00,1M", "08:5,1M",
		"08:00,5XB", "08:00,1M 08:00,2M", "08:00;1M", "ab:cd,1M"} {
		if got, err := ratelimit.ParseSchedule(in); err == nil {
			t.Errorf("ParseSchedule(%q) = %v, want error", in, got)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("ParseSchedule(%q) error %q should name the input", in, err)
		}
	}
}

func TestRateAt(t *testing.T) {
	at := func(hh, mm, ss int) time.Time { return time.Date(2025, 6, 1, hh, mm, ss, 0, time.UTC) }
	day, _ := ratelimit.ParseSchedule("08:00,2MiB/s 19:00,off")
	night, _ := ratelimit.ParseSchedule("22:00,1M 06:00,off") // limited across midnight
	cases := []struct {
		s    ratelimit.Schedule
		t    time.Time
		want float64
	}{
		{day, at(0, 0, 0), 0},
		{day, at(7, 59, 59), 0},
		{day, at(8, 0, 0), 2 * MiB},
		{day, at(18, 59, 59), 2 * MiB},
		{day, at(19, 0, 0), 0},
		{night, at(21, 59, 59), 0},
		{night, at(22, 0, 0), MiB},
		{night, at(23, 59, 59), MiB},
		{night, at(0, 0, 0), MiB}, // before the first slot: yesterday's last one holds
		{night, at(5, 59, 59), MiB},
		{night, at(6, 0, 0), 0},
		{nil, at(12, 0, 0), 0},
		// Time of day is read in t's own location: 23:30 in UTC+2 is 21:30 UTC.
		{night, time.Date(2025, 6, 1, 23, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)), MiB},
	}
	for _, c := range cases {
		if got := c.s.RateAt(c.t); got != c.want {
			t.Errorf("%v.RateAt(%v) = %v, want %v", c.s, c.t, got, c.want)
		}
	}
}

func TestScheduleRun(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		schedule string
		start    time.Time
		boundary time.Duration // from start, in real (elapsed) time
		before   float64
		after    float64
	}{
		{"morning", "08:00,2MiB/s 19:00,off", time.Date(2025, 1, 1, 7, 30, 0, 0, time.UTC), 30 * time.Minute, 0, 2 * MiB},
		{"midnight", "22:00,1M 06:00,off", time.Date(2025, 1, 1, 21, 0, 0, 0, time.UTC), time.Hour, 0, MiB},
		{"next day", "08:00,2MiB/s 19:00,off", time.Date(2025, 1, 1, 19, 0, 0, 0, time.UTC), 13 * time.Hour, 0, 2 * MiB},
		// Spring forward: from 01:30 EST, 03:00 EDT is 30 minutes away.
		{"dst", "01:00,1M 03:00,2M", time.Date(2025, 3, 9, 1, 30, 0, 0, ny), 30 * time.Minute, MiB, 2 * MiB},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ratelimit.ParseSchedule(c.schedule)
			if err != nil {
				t.Fatal(err)
			}
			clk := newSimAt(c.start)
			l := ratelimit.NewWithClock(12345, clk)
			ctx, cancel := context.WithCancel(context.Background())
			done := false
			clk.Go(func() {
				s.Run(ctx, l, clk)
				done = true
			})
			clk.Go(func() {
				bg := context.Background()
				_ = clk.Sleep(bg, c.boundary-time.Millisecond)
				if got := l.Rate(); got != c.before {
					t.Errorf("rate just before the boundary = %v, want %v", got, c.before)
				}
				_ = clk.Sleep(bg, 2*time.Millisecond)
				if got := l.Rate(); got != c.after {
					t.Errorf("rate just after the boundary = %v, want %v", got, c.after)
				}
				cancel()
			})
			clk.Wait()
			if !done {
				t.Error("Run did not return after ctx ended")
			}
		})
	}
}

func TestScheduleRunEmpty(t *testing.T) {
	clk := newSim()
	l := ratelimit.NewWithClock(MiB, clk)
	clk.Go(func() { ratelimit.Schedule(nil).Run(context.Background(), l, clk) })
	clk.Wait()
	if l.Rate() != 0 {
		t.Errorf("empty schedule left rate %v, want unlimited", l.Rate())
	}
}
