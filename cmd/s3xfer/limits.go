package main

import (
	"context"
	"flag"
	"time"

	"github.com/s3xfer/s3xfer/ratelimit"
)

// limitFlags set the bandwidth limits of a run.
type limitFlags struct {
	rate, upload, download, schedule string
}

func (l *limitFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&l.rate, "limit-rate", "", "bandwidth limit for the whole run, uploads and downloads together: 32MiB/s, 10M, 80Mbit/s or off (default: the profile's s3 max_bandwidth, else none)")
	fs.StringVar(&l.upload, "limit-upload", "", "bandwidth limit for uploads only, within --limit-rate")
	fs.StringVar(&l.download, "limit-download", "", "bandwidth limit for downloads only, within --limit-rate")
	fs.StringVar(&l.schedule, "limit-schedule", "", `daily bandwidth timetable in local time, e.g. "08:00,2MiB/s 19:00,off" (instead of --limit-rate)`)
}

// limiters is the limiter tree of a run: one total limiter (a schedule may drive it),
// with the upload and download limiters as its children when they have their own rate.
type limiters struct {
	up, down *ratelimit.Limiter
	total    *ratelimit.Limiter
	schedule ratelimit.Schedule
}

// build checks every value and builds the limiters; profileRate is the profile's
// max_bandwidth, used when no flag gives a total.
func (l *limitFlags) build(profileRate, profileSource string) (*limiters, error) {
	var lim limiters
	rate, err := parseRateFlag("--limit-rate", l.rate)
	if err != nil {
		return nil, err
	}
	if l.schedule != "" {
		if l.rate != "" {
			return nil, usagef("give --limit-rate or --limit-schedule, not both")
		}
		if lim.schedule, err = ratelimit.ParseSchedule(l.schedule); err != nil {
			return nil, usagef("--limit-schedule: %v", err)
		}
		rate = lim.schedule.RateAt(time.Now())
	} else if l.rate == "" && profileRate != "" {
		if rate, err = ratelimit.ParseRate(profileRate); err != nil {
			return nil, usagef("max_bandwidth in %s: %v", profileSource, err)
		}
	}
	up, err := parseRateFlag("--limit-upload", l.upload)
	if err != nil {
		return nil, err
	}
	down, err := parseRateFlag("--limit-download", l.download)
	if err != nil {
		return nil, err
	}
	if rate > 0 || lim.schedule != nil {
		lim.total = ratelimit.New(rate)
	}
	lim.up, lim.down = lim.total, lim.total
	if up > 0 {
		lim.up = lim.total.Child(up) // a nil total makes it a root
	}
	if down > 0 {
		lim.down = lim.total.Child(down)
	}
	return &lim, nil
}

// run applies the schedule, if any, until ctx ends. It blocks.
func (lim *limiters) run(ctx context.Context) {
	if lim.schedule != nil {
		lim.schedule.Run(ctx, lim.total, nil)
	}
}

func parseRateFlag(name, v string) (float64, error) {
	if v == "" {
		return 0, nil
	}
	r, err := ratelimit.ParseRate(v)
	if err != nil {
		return 0, usagef("%s: %v", name, err)
	}
	return r, nil
}
