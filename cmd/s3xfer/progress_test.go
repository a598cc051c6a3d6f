package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/s3xfer/s3xfer/transfer"
)

// screen replays what a terminal shows for the bytes the ui writes: text, \r, \n, and the
// escapes the bars use (ESC[K erase line, ESC[nA cursor up, ESC[J erase below).
func screen(t *testing.T, out string) []string {
	t.Helper()
	var rows [][]rune
	row, col := 0, 0
	at := func() {
		for len(rows) <= row {
			rows = append(rows, nil)
		}
	}
	for i := 0; i < len(out); i++ {
		switch c := out[i]; c {
		case '\r':
			col = 0
		case '\n':
			row, col = row+1, 0
		case '\033':
			j := i + 2
			for j < len(out) && out[j] >= '0' && out[j] <= '9' {
				j++
			}
			if i+1 >= len(out) || out[i+1] != '[' || j >= len(out) {
				t.Fatalf("unknown escape at %d in %q", i, out)
			}
			n, _ := strconv.Atoi(out[i+2 : j])
			at()
			switch out[j] {
			case 'K':
				rows[row] = rows[row][:min(col, len(rows[row]))]
			case 'J':
				rows[row] = rows[row][:min(col, len(rows[row]))]
				rows = rows[:row+1]
			case 'A':
				row = max(row-max(n, 1), 0)
			default:
				t.Fatalf("unknown escape %q", out[i:j+1])
			}
			i = j
		default:
			at()
			for len(rows[row]) <= col {
				rows[row] = append(rows[row], ' ')
			}
			rows[row][col] = rune(c)
			col++
		}
	}
	var lines []string
	for _, r := range rows {
		if s := strings.TrimRight(string(r), " "); s != "" {
			lines = append(lines, s)
		}
	}
	return lines
}

// TestVerboseLogsAndBarsShareTheScreen checks that --verbose log lines written while bars
// are drawn stay whole, each on its own line above the bars, and that the bars are not
// left behind twice.
func TestVerboseLogsAndBarsShareTheScreen(t *testing.T) {
	var errw bytes.Buffer
	u := &ui{mode: modeTerm, out: &bytes.Buffer{}, errw: &errw, live: map[xferID]*xfer{}}
	tick := func() { // what the ui's ticker does, without its timing
		u.mu.Lock()
		defer u.mu.Unlock()
		u.drawLocked()
	}
	log := logger(u, true)
	ev := transfer.Event{Op: "upload", Bucket: "b", Key: "big.bin", Size: 100 << 20, Parts: 10}

	ev.Kind = transfer.Started
	u.Report(ev)
	tick()
	log.Debug("retrying part", "part", 3, "attempt", 1)
	ev.Kind, ev.Bytes, ev.PartsDone = transfer.PartDone, 10<<20, 1
	u.Report(ev)
	tick()
	log.Debug("retrying part", "part", 4, "attempt", 1)
	tick()
	u.close()

	lines := screen(t, errw.String())
	if len(lines) != 3 {
		t.Fatalf("screen has %d lines, want 2 log lines and a bar:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, part := range []string{"3", "4"} {
		if l := lines[i]; !strings.HasPrefix(l, "time=") || !strings.HasSuffix(l, `msg="retrying part" part=`+part+" attempt=1") {
			t.Errorf("line %d = %q, want the whole log record of part %s", i+1, l, part)
		}
	}
	if bar := lines[2]; !strings.HasPrefix(bar, "big.bin") || !strings.Contains(bar, "1/10 parts") {
		t.Errorf("last line = %q, want the bar of big.bin at 1/10 parts", bar)
	}
}

// A notice of an upload that may stay on the store gives the commands that find and
// remove it, with the object's name.
func TestLeftoverNoticeNamesTheCommands(t *testing.T) {
	ev := transfer.Event{Kind: transfer.Notice, Op: "upload", Bucket: "b", Key: "big.iso", Leftover: true,
		Msg: "the upload it recorded, if any, stays on the store as an incomplete upload"}
	want := ev.Msg + " (s3xfer ls-uploads s3://b/big.iso lists it with its upload ID; s3xfer abort s3://b/big.iso UPLOAD-ID removes it)"
	if got := noticeText(ev); got != want {
		t.Errorf("noticeText = %q, want %q", got, want)
	}
}
