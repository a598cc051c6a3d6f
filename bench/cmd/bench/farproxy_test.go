package main

import (
	"bytes"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPacerPipelinesTheDelay: without a ceiling, bytes ready at t arrive at t+delay
// whatever came before them: the delay is a pipeline, not a sleep per read that would add
// up.
func TestPacerPipelinesTheDelay(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := pacer{delay: 20 * time.Millisecond, burst: farBuf}
	for i := range 100 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		leave, due := l.send(now, farBuf)
		if !leave.Equal(now) || !due.Equal(now.Add(20*time.Millisecond)) {
			t.Fatalf("chunk %d ready at +%s: leaves +%s, due +%s; want +%s and +%s", i, now.Sub(t0),
				leave.Sub(t0), due.Sub(t0), now.Sub(t0), now.Add(20*time.Millisecond).Sub(t0))
		}
	}
}

// TestPacerCeiling: with a ceiling, a backlog leaves at the rate (after the first
// burst), each chunk still due one delay after it leaves; after an idle spell the bucket
// lets a burst through at once again.
func TestPacerCeiling(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const rate = 1e6 // bytes per second: a 64 KiB chunk every 65.536 ms
	per := time.Duration(float64(farBuf) / rate * float64(time.Second))
	l := pacer{rate: rate, delay: 20 * time.Millisecond, burst: farBuf}
	var last time.Time
	for i := range 50 {
		leave, due := l.send(t0, farBuf) // all ready at once
		want := t0
		if i > 0 {
			want = t0.Add(time.Duration(i-1) * per)
		}
		if d := leave.Sub(want); d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("chunk %d leaves at +%s, want +%s", i, leave.Sub(t0), want.Sub(t0))
		}
		if due.Sub(leave) != 20*time.Millisecond {
			t.Fatalf("chunk %d due %s after it leaves, want 20ms", i, due.Sub(leave))
		}
		last = leave
	}
	// Beyond the first chunk (the burst), the backlog drained at the rate: the last chunk
	// has left once the link has carried it.
	got := float64(49*farBuf) / (last.Sub(t0) + per).Seconds()
	if got < 0.999*rate || got > 1.001*rate {
		t.Errorf("backlog left at %.0f B/s, want %.0f", got, rate)
	}
	idle := last.Add(time.Second)
	if leave, _ := l.send(idle, 1000); !leave.Equal(idle) {
		t.Errorf("after an idle second a small write waits until +%s", leave.Sub(idle))
	}
}

// TestPacerHandshake: nothing leaves before notBefore (the connection's round trip).
func TestPacerHandshake(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, rate := range []float64{0, 85e6} {
		l := pacer{rate: rate, delay: 20 * time.Millisecond, burst: farBuf, notBefore: t0.Add(40 * time.Millisecond)}
		leave, due := l.send(t0, 500)
		if !leave.Equal(t0.Add(40*time.Millisecond)) || !due.Equal(t0.Add(60*time.Millisecond)) {
			t.Errorf("rate %g: first bytes leave at +%s, due +%s; want +40ms, +60ms", rate, leave.Sub(t0), due.Sub(t0))
		}
	}
}

// TestFarProxyCarriesBytes: an echo through the proxy returns every byte in order, both
// ways at once, and the end of the stream; it cannot be faster than the path allows
// (a lower bound only: the proxy never delivers early).
func TestFarProxyCarriesBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	const delay, rate = 5 * time.Millisecond, 50e6
	p, err := newFarProxy(ln.Addr().String(), delay, rate)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	want := make([]byte, 3<<20)
	_, _ = gen{seed: 3, size: int64(len(want))}.ReadAt(want, 0)
	start := time.Now()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		_, _ = c.Write(want)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if !bytes.Equal(got, want) {
		t.Fatalf("echo through the proxy: %d bytes back, want the %d sent, in order", len(got), len(want))
	}
	// A handshake round trip, then there and back; and the bytes at the ceiling, less a burst.
	if low := 4 * delay; elapsed < low {
		t.Errorf("echo took %s, less than the path's %s of delay", elapsed, low)
	}
	if low := time.Duration(float64(len(want)-farBuf) / rate * float64(time.Second)); elapsed < low {
		t.Errorf("%d bytes took %s, faster than the %g B/s ceiling allows (%s)", len(want), elapsed, rate, low)
	}
}

// TestFarTargets: the far targets compare s3xfer at its defaults with the fastest peer at
// its defaults (not a matched peer variant) and with the best of the concurrency sweep,
// in the same run, and say which was met.
func TestFarTargets(t *testing.T) {
	sample := func(tool, variant string, wall float64) Sample {
		return Sample{Run: 1, Scenario: scFarUpload, Tool: tool, Variant: variant, Bytes: gib, Wall: wall, User: 1, OK: true}
	}
	res := &Results{Settings: Settings{Runs: 1}, Samples: []Sample{
		sample(s3xferCLI, "default", 5),
		sample(s3xferLib, "default", 6.5),
		sample(awsSDK, "default", 10),
		sample(awsSDK, "matched", 1), // not a default: no part of the 0.6 target
		sample(rclone, "default", 12),
		sample(s3xferCLI, sweepVariant(4), 9),
		sample(s3xferCLI, sweepVariant(16), 4.4),
	}}
	var b strings.Builder
	renderFarTargets(&b, tableOf(res))
	got := b.String()
	for _, want := range []string{
		"| far-upload: wall at the defaults ≤ 0.6 × the fastest peer at its defaults | 0.65 | 0.50 | **no** / yes (fastest: aws-sdk-go-v2 default) |",
		"| far-upload: wall at the defaults ≤ 1.1 × the best fixed --concurrency of s3xfer-cli's sweep | 1.48 | 1.14 | **no** / **no** (best: s3xfer-cli fixed 16) |",
		"lowest peer at its defaults: aws-sdk-go-v2 1.00) | 1.00 | 1.00 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, scFarDownload) {
		t.Errorf("targets of a scenario that did not run:\n%s", got)
	}
}

// TestFarScenarios: --quick leaves the far scenarios out unless named; every far scenario
// runs each tool at its defaults and s3xfer-cli at every sweep value.
func TestFarScenarios(t *testing.T) {
	if slices.ContainsFunc(defaultScenarios(true), isFar) || !slices.Contains(defaultScenarios(false), scFarFiles) {
		t.Errorf("default scenarios: quick %v, full %v", defaultScenarios(true), defaultScenarios(false))
	}
	h := &harness{set: Settings{PartSize: 1, Concurrency: 2, Scenarios: farScenarios}}
	h.set.Far = h.farSettings()
	for _, sc := range farScenarios {
		var defaults, sweep []string
		for _, e := range h.farEntries(sc) {
			switch {
			case e.variant == "default":
				defaults = append(defaults, e.tool)
			case strings.HasPrefix(e.variant, "fixed "):
				sweep = append(sweep, strconv.Itoa(e.concurrency))
				if e.tool != s3xferCLI || e.partSize != 0 {
					t.Errorf("%s: sweep step %+v", sc, e)
				}
			}
		}
		if len(defaults) != 6 || strings.Join(sweep, ",") != "4,8,16,32,64" {
			t.Errorf("%s: defaults %v, sweep %v", sc, defaults, sweep)
		}
	}
}

// TestLoopbackAgainstTheOldDefault: next to the store, upload and download run s3xfer at a
// fixed --concurrency 8 right after its defaults, and the targets compare the two.
func TestLoopbackAgainstTheOldDefault(t *testing.T) {
	h := &harness{set: Settings{PartSize: 1, Concurrency: 2, Baseline: "v1"}}
	for _, sc := range []string{"upload", "download"} {
		var fixed []string
		entries := h.entries(sc)
		for i, st := range entries {
			if st.variant == sweepVariant(oldDefault) && st.concurrency == oldDefault {
				fixed = append(fixed, st.tool)
				if prev := entries[max(i-1, 0)]; i == 0 || prev.tool != st.tool || prev.variant != "default" {
					t.Errorf("%s: %s's fixed %d step follows %s %s, not its defaults", sc, st.tool, oldDefault, prev.tool, prev.variant)
				}
			}
		}
		if !slices.Equal(fixed, []string{s3xferLib, s3xferCLI}) {
			t.Errorf("%s: fixed %d steps for %q, want the library and the CLI", sc, oldDefault, fixed)
		}
	}
	sample := func(tool, variant string, wall float64) Sample {
		return Sample{Run: 1, Scenario: "upload", Tool: tool, Variant: variant, Bytes: gib, Wall: wall, User: 1, OK: true}
	}
	res := &Results{Settings: Settings{Runs: 1}, Samples: []Sample{
		sample(s3xferLib, "default", 3.09), sample(s3xferLib, sweepVariant(8), 3),
		sample(s3xferCLI, "default", 3.3), sample(s3xferCLI, sweepVariant(8), 3),
	}}
	var b strings.Builder
	renderTargets(&b, res, tableOf(res))
	want := "| Upload: wall at the defaults ≤ 1.03 × a fixed --concurrency 8 (the default before it was tuned) | 1.03 | 1.10 | yes / **no** |"
	if got := b.String(); !strings.Contains(got, want) || strings.Contains(got, "Download: wall at the defaults") {
		t.Errorf("targets lack %q, or name a scenario that did not run:\n%s", want, got)
	}
}
