package main

import (
	"fmt"
	"strings"
	"testing"
)

// An upload killed on one machine resumes on another: the same command with another
// (empty) journal directory finds the interrupted upload on the store and sends only
// the parts it lacks.
func TestKilledUploadResumesWithoutJournal(t *testing.T) {
	b := newCrashBed(t, 40<<20)
	b.crash("anywhere", t.TempDir(), "part-journaled:2", 0, "--concurrency", "1") // killed with parts 1 and 2 sent
	out := b.finish("anywhere", t.TempDir())
	var had, parts int
	var sent float64
	var unit string
	if i := strings.Index(out, "resuming: "); i < 0 || !strings.Contains(out, "found on the store") {
		t.Fatalf("no resume from the store reported:\n%s", out)
	} else if _, err := fmt.Sscanf(out[i:], "resuming: %d of %d parts", &had, &parts); err != nil {
		t.Fatalf("cannot read the resume (%v):\n%s", err, out)
	}
	if i := strings.Index(out, "resumed: "); i < 0 {
		t.Fatalf("no bytes sent reported:\n%s", out)
	} else if _, err := fmt.Sscanf(out[i:], "resumed: %g %s sent now", &sent, &unit); err != nil || unit != "MiB" {
		t.Fatalf("cannot read the bytes sent (%v):\n%s", err, out)
	}
	t.Logf("killed with %d of %d parts acknowledged; the re-run sent %g MiB:\n%s", had, parts, sent, out)
	if had != 2 || parts != 5 || sent != float64(8*(parts-had)) {
		t.Errorf("re-run sent %g MiB with %d of %d parts resumed; want %d MiB", sent, had, parts, 8*(parts-had))
	}
}
