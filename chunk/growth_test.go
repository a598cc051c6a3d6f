package chunk

import (
	"testing"

	"github.com/s3xfer/s3xfer/internal/units"
)

func TestGrowthReaches5TiBWithin10000Parts(t *testing.T) {
	for _, first := range []int64{MinPartSize, 8 * units.MiB, DefaultPartSize, 64 * units.MiB, units.GiB, MaxPartSize} {
		g := NewGrowth(first, MaxParts, MaxObjectSize)
		if got := g.Capacity(MaxParts); got < MaxObjectSize {
			t.Errorf("first %s: %d parts hold %s, under 5 TiB", units.FormatSize(first), MaxParts, units.FormatSize(got))
		}
		var total int64
		for n := 1; n <= MaxParts; n++ {
			s := g.Size(n)
			if s < first || s > max(MaxPartSize, first) || (n > 1 && s < g.Size(n-1)) {
				t.Fatalf("first %s: part %d is %d bytes", units.FormatSize(first), n, s)
			}
			total += s
		}
		if total != g.Capacity(MaxParts) {
			t.Errorf("first %s: Capacity %d, parts sum to %d", units.FormatSize(first), g.Capacity(MaxParts), total)
		}
	}
}

func TestGrowthDefaultSchedule(t *testing.T) {
	g := NewGrowth(DefaultPartSize, MaxParts, MaxObjectSize)
	if g.Every != 1000 {
		t.Fatalf("Every = %d, want 1000 (the schedule README and docs describe)", g.Every)
	}
	for n, want := range map[int]int64{1: 16 * units.MiB, 1000: 16 * units.MiB, 1001: 32 * units.MiB, 8001: 4 * units.GiB, 9001: MaxPartSize} {
		if got := g.Size(n); got != want {
			t.Errorf("part %d: %s, want %s", n, units.FormatSize(got), units.FormatSize(want))
		}
	}
	if got := g.Capacity(1000); got != 1000*DefaultPartSize {
		t.Errorf("the first 1,000 parts hold %d", got)
	}
	// The doc comment's figure: 5 TiB is reached at part 8,284.
	if g.Capacity(8283) >= MaxObjectSize || g.Capacity(8284) < MaxObjectSize {
		t.Errorf("5 TiB not reached at part 8,284: %d, %d", g.Capacity(8283), g.Capacity(8284))
	}
}

func TestGrowthScaledDown(t *testing.T) {
	if g := NewGrowth(MinPartSize, MaxParts, MaxObjectSize); g.Every != 997 {
		t.Errorf("from 5 MiB: %+v", g)
	}
	g := NewGrowth(MinPartSize, 10, 200*units.MiB)
	if g.Every != 1 || g.Size(3) != 20*units.MiB || g.Capacity(4) != 75*units.MiB {
		t.Fatalf("%+v holds %d", g, g.Capacity(10))
	}
}
