package main

import (
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestShardVariantRoundTrips(t *testing.T) {
	for _, n := range distShardCounts {
		if got := shardsOf(shardVariant(n)); got != n {
			t.Errorf("shardsOf(%q) = %d, want %d", shardVariant(n), got, n)
		}
	}
	if got := shardsOf("matched"); got != 0 {
		t.Errorf("shardsOf(matched) = %d, want 0", got)
	}
}

func TestDistScenariosOnlyWhenSelected(t *testing.T) {
	for _, sc := range distScenarios {
		if slices.Contains(allScenarios, sc) {
			t.Errorf("%s is in the default scenarios: a plain or --quick run would start the 4-node cluster", sc)
		}
		if titles[sc] == "" {
			t.Errorf("%s has no title in the report", sc)
		}
	}
	h := &harness{set: settingsFor(true)}
	if e := h.distEntries(scDistShards); len(e) != len(distShardCounts) {
		t.Errorf("dist-shards has %d steps, want one per shard count", len(e))
	}
	if got, want := len(h.distEntries(scDistCopy)), len(h.entries("copy-6g")); got != want || got == 0 {
		t.Errorf("dist-copy-6g has %d steps, copy-6g %d: want the same tools", got, want)
	}
}

func TestAggregateShards(t *testing.T) {
	ends := []spawnEnded{
		{Wall: 3, User: 1, Sys: 0.5, MaxRSS: 20 << 10},
		{Wall: 5, User: 2, Sys: 0.25, MaxRSS: 30 << 10},
		{Wall: 4, User: 1.5, Sys: 0.25, MaxRSS: 25 << 10},
	}
	got := aggregateShards(ends, 5.5)
	want := shardTotals{wall: 5.5, user: 4.5, sys: 1, maxRSS: 30 << 10, slowest: 5, fastest: 3}
	if got != want {
		t.Errorf("aggregateShards = %+v, want %+v", got, want)
	}
}

func TestCheckShardResults(t *testing.T) {
	res := func(done, failed int, ok bool) spawnEnded {
		okStr := "false"
		if ok {
			okStr = "true"
		}
		return spawnEnded{Stdout: `{"event":"file","key":"x"}` + "\n" +
			`{"event":"result","ok":` + okStr + `,"done":` + strconv.Itoa(done) + `,"failed":` + strconv.Itoa(failed) + "}\n"}
	}
	for _, tc := range []struct {
		name string
		ends []spawnEnded
		want string // "" for no error, else a substring of it
	}{
		{"every file once", []spawnEnded{res(600, 0, true), res(700, 0, true), res(700, 0, true)}, ""},
		{"a file twice", []spawnEnded{res(600, 0, true), res(701, 0, true), res(700, 0, true)}, "did 2001 files"},
		{"a file missed", []spawnEnded{res(1000, 0, true), res(999, 0, true)}, "did 1999 files"},
		{"a failed file", []spawnEnded{res(1000, 1, true), res(1000, 0, true)}, "1 failed"},
		{"no result", []spawnEnded{res(1000, 0, true), {Stdout: "boom\n"}}, "printed no result"},
	} {
		err := checkShardResults(tc.ends, 2000)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// onStore gives a step the CPU time the store spent while it ran, and nothing where that
// cannot be read.
func TestOnStoreMeasuresTheStep(t *testing.T) {
	if e := onStore(nil, func() {}); e != nil {
		t.Errorf("onStore without pids = %v, want nil", e)
	}
	x := 0
	e := onStore([]int{os.Getpid()}, func() {
		for i := range 300_000_000 { // CPU time of the "store" (ourselves) during the step
			x ^= i
		}
	})
	// x is 0 once every i of 0..4k+3 is xored in: the loop ran to its end.
	if x != 0 || e == nil || e["store_cpu_s"] <= 0 || e["store_cpu_s"] > 30 {
		t.Errorf("onStore(self) gave %v (x %d), want the step's CPU time", e, x)
	}
}

func TestStoreCPUReadsProc(t *testing.T) {
	if got := storeCPU(nil); got != -1 {
		t.Errorf("storeCPU(nil) = %v, want -1", got)
	}
	if got := storeCPU([]int{os.Getpid(), 1 << 30}); got != -1 {
		t.Errorf("storeCPU with a pid that does not exist = %v, want -1", got)
	}
	for sum := 0; sum < 1e8; sum++ { // some CPU time of our own to read back
		_ = sum
	}
	got := storeCPU([]int{os.Getpid()})
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	want := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	if got <= 0 || math.Abs(got-want) > 0.1 {
		t.Errorf("storeCPU(self) = %.2f s, getrusage says %.2f s", got, want)
	}
	if two := storeCPU([]int{os.Getpid(), os.Getpid()}); two < 2*got {
		t.Errorf("storeCPU of the same process twice = %.2f, want at least twice %.2f", two, got)
	}
}
