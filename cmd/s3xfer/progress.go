package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cheggaaa/pb/v3"
	"github.com/cheggaaa/pb/v3/termutil"

	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/transfer"
)

// uiMode is how a run shows its progress.
type uiMode int

const (
	modePlain uiMode = iota // a line every few seconds: logs, pipes
	modeTerm                // pb bars redrawn in place on a terminal
	modeQuiet               // nothing but errors
	modeJSON                // one JSON object per line, for scripts
)

// ui is how a run talks to the user. It draws the Manager's events (it is the
// transfer.Progress of the run) and prints results. Bytes are acknowledged bytes, so a bar
// never goes backwards on a retry, and starts from what a resume already had.
type ui struct {
	mu    sync.Mutex
	mode  uiMode
	out   io.Writer // results: stdout, or stderr when stdout carries the data
	errw  io.Writer // progress and notices
	enc   *json.Encoder
	every time.Duration // plain mode: time between progress lines

	job          bool // a multi-file job: a total bar and per-large-file bars
	files        int  // files of the job
	filesDone    int
	failed       int
	total        int64 // bytes of the job, or of the single transfer
	doneBytes    int64 // bytes of finished transfers and of files skipped as done before
	baseBytes    int64 // bytes done before this run (skipped files, resumed parts): not in the rate
	live         map[xferID]*xfer
	seq          int
	single       *xfer // not a job: the one transfer, kept when it finishes
	start, last  time.Time
	drawn        int // lines of bars on screen
	totalBar     *pb.ProgressBar
	stop, closed chan struct{}
}

type xferID struct{ op, bucket, key, path string }

type xfer struct {
	ev  transfer.Event
	bar *pb.ProgressBar
	seq int
}

// newUI picks the mode: --json, --quiet, else bars on a terminal and lines elsewhere.
// dataOnStdout moves results to stderr, since stdout carries an object's bytes.
func newUI(e *env, quiet, asJSON, dataOnStdout bool) *ui {
	u := &ui{out: e.stdout, errw: e.stderr, live: map[xferID]*xfer{}, every: 5 * time.Second, start: time.Now()}
	if dataOnStdout {
		u.out = e.stderr
	}
	switch {
	case asJSON:
		u.mode = modeJSON
		u.enc = json.NewEncoder(u.out)
		e.jsonOut = u.out
	case quiet:
		u.mode = modeQuiet
	case isTerminal(e.stderr):
		u.mode = modeTerm
	}
	u.last = u.start
	if u.mode == modeTerm || u.mode == modePlain {
		u.stop, u.closed = make(chan struct{}), make(chan struct{})
		go u.tick()
	}
	return u
}

// isTerminal reports whether w is a terminal; /dev/null is a character device too.
func isTerminal(w io.Writer) bool {
	if r, ok := w.(*redactor); ok {
		w = r.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	null, nerr := os.Stat(os.DevNull)
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && (nerr != nil || !os.SameFile(st, null))
}

// beginJob announces a multi-file job: files and bytes in all, of which skipped files
// (skippedBytes) were done by an earlier run.
func (u *ui) beginJob(files int, total int64, skipped int, skippedBytes int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.job, u.files, u.total = true, files, total
	u.filesDone, u.doneBytes, u.baseBytes = skipped, skippedBytes, skippedBytes
}

// found adds a file the job's walk or listing selected to its totals, which grow while
// files move.
func (u *ui) found(size int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files++
	u.total += size
}

// skippedFile counts a file of the job that an earlier run did.
func (u *ui) skippedFile(size int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.filesDone++
	u.doneBytes += size
	u.baseBytes += size
}

// fileDone counts one file of the job as finished, or failed.
func (u *ui) fileDone(ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if ok {
		u.filesDone++
	} else {
		u.failed++
	}
}

// Report receives the Manager's events. It is safe for concurrent use.
func (u *ui) Report(ev transfer.Event) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch u.mode {
	case modeQuiet:
		return
	case modeJSON:
		u.enc.Encode(eventJSON(ev))
		return
	}
	id := xferID{ev.Op, ev.Bucket, ev.Key, ev.Path}
	switch ev.Kind {
	case transfer.Notice:
		u.lineLocked(u.errw, fmt.Sprintf("%s %s: %s", ev.Op, objectName(ev), noticeText(ev)))
	case transfer.Started:
		x := u.live[id]
		if x == nil {
			u.seq++
			x = &xfer{seq: u.seq}
			u.live[id] = x
			if ev.Resumed {
				u.baseBytes += ev.Bytes
			}
		}
		x.ev = ev
		if !u.job {
			u.single, u.total = x, max(ev.Size, 0)
		}
		if u.mode == modeTerm && x.bar == nil && ev.Size > 0 && (!u.job || ev.Parts > 0) {
			x.bar = newBar(ev.Size, `{{string . "name"}} {{bar . "[" "=" ">" " " "]"}} {{percent . }} {{counters . }} {{string . "parts"}} {{speed . "%s/s" "? B/s"}} {{rtime . "ETA %s"}}`)
			x.bar.Set("name", shorten(ev.Key, 32))
		}
	case transfer.PartDone:
		if x := u.live[id]; x != nil {
			x.ev = ev
		}
	case transfer.Finished:
		x := u.live[id]
		delete(u.live, id)
		if x == nil {
			return
		}
		x.ev = ev
		if u.job && ev.Err == nil {
			u.doneBytes += ev.Size
		}
		if !u.job && ev.Err == nil {
			u.total, x.ev.Bytes = ev.Size, ev.Size // a stream's size is known at its end
		}
	}
}

func newBar(total int64, tmpl string) *pb.ProgressBar {
	b := pb.New64(total).Set(pb.Bytes, true).Set(pb.Static, true)
	b.SetTemplateString(tmpl)
	return b.Start()
}

// acked returns the bytes acknowledged so far; the caller holds mu.
func (u *ui) ackedLocked() int64 {
	if !u.job {
		if u.single == nil {
			return 0
		}
		return u.single.ev.Bytes
	}
	n := u.doneBytes
	for _, x := range u.live {
		n += x.ev.Bytes
	}
	return n
}

func (u *ui) tick() {
	defer close(u.closed)
	period := 200 * time.Millisecond
	if u.mode == modePlain {
		period = min(u.every, time.Second)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case now := <-t.C:
			u.mu.Lock()
			if u.mode == modeTerm {
				u.drawLocked()
			} else if now.Sub(u.last) >= u.every && (u.single != nil || u.job) {
				u.last = now
				fmt.Fprintln(u.errw, u.statusLocked(now))
			}
			u.mu.Unlock()
		}
	}
}

// statusLocked is the plain progress line.
func (u *ui) statusLocked(now time.Time) string {
	acked := u.ackedLocked()
	rate := units.FormatSize(int64(float64(acked-u.baseBytes)/max(now.Sub(u.start).Seconds(), 1e-3))) + "/s"
	if u.job {
		return fmt.Sprintf("progress: %d/%d files, %s, %s", u.filesDone, u.files, ofTotal(acked, u.total), rate)
	}
	ev := u.single.ev
	s := fmt.Sprintf("%s %s: %s, %s", ev.Op, objectName(ev), ofTotal(acked, u.total), rate)
	if ev.Parts > 0 {
		s += fmt.Sprintf(", %d/%d parts", ev.PartsDone, ev.Parts)
	}
	return s
}

func ofTotal(n, total int64) string {
	if total <= 0 {
		return units.FormatSize(n)
	}
	return fmt.Sprintf("%s of %s (%d%%)", units.FormatSize(n), units.FormatSize(total), n*100/total)
}

// drawLocked redraws the bars in place: the job's total, then each large file in flight.
func (u *ui) drawLocked() {
	width, err := termutil.TerminalWidth()
	if err != nil || width < 40 {
		width = 80
	}
	var lines []string
	if u.job {
		if u.totalBar == nil {
			u.totalBar = newBar(u.total, `total {{string . "files"}} {{bar . "[" "=" ">" " " "]"}} {{percent . }} {{counters . }} {{speed . "%s/s" "? B/s"}} {{rtime . "ETA %s"}}`)
		}
		u.totalBar.SetTotal(max(u.total, 1)).SetCurrent(u.ackedLocked()).Set("files", fmt.Sprintf("%d/%d files", u.filesDone, u.files))
		lines = append(lines, u.totalBar.SetWidth(width).String())
	}
	var xs []*xfer
	for _, x := range u.live {
		if x.bar != nil {
			xs = append(xs, x)
		}
	}
	if !u.job && u.single != nil && u.single.bar != nil && !slices.Contains(xs, u.single) {
		xs = append(xs, u.single)
	}
	slices.SortFunc(xs, func(a, b *xfer) int { return a.seq - b.seq })
	for i, x := range xs {
		if i == 8 {
			lines = append(lines, fmt.Sprintf("... and %d more large files", len(xs)-i))
			break
		}
		parts := ""
		if x.ev.Parts > 0 {
			parts = fmt.Sprintf("%d/%d parts", x.ev.PartsDone, x.ev.Parts)
		}
		x.bar.SetCurrent(x.ev.Bytes).Set("parts", parts)
		lines = append(lines, x.bar.SetWidth(width).String())
	}
	u.clearLocked()
	for _, l := range lines {
		fmt.Fprintf(u.errw, "\r%s\033[K\n", l)
	}
	u.drawn = len(lines)
}

// clearLocked erases the bars, so a line can be printed where they were.
func (u *ui) clearLocked() {
	if u.drawn > 0 {
		fmt.Fprintf(u.errw, "\033[%dA\r\033[J", u.drawn)
		u.drawn = 0
	}
}

// lineLocked prints a line above the bars.
func (u *ui) lineLocked(w io.Writer, line string) {
	if u.mode == modeTerm {
		u.clearLocked()
		fmt.Fprintln(w, line)
		u.drawLocked()
		return
	}
	fmt.Fprintln(w, line)
}

// logWriter is where log records go: stderr, under the ui's lock, so a record never lands
// inside a progress line; on a terminal the bars are erased, the record written, and the
// bars drawn again below it. slog handlers write each record with one Write.
func (u *ui) logWriter() io.Writer { return uiLog{u} }

type uiLog struct{ u *ui }

func (l uiLog) Write(p []byte) (int, error) {
	u := l.u
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.drawn == 0 {
		return u.errw.Write(p)
	}
	u.clearLocked()
	n, err := u.errw.Write(p)
	u.drawLocked()
	return n, err
}

// say prints a result line for people: not with --quiet or --json.
func (u *ui) say(format string, a ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.mode == modeQuiet || u.mode == modeJSON {
		return
	}
	u.lineLocked(u.out, fmt.Sprintf(format, a...))
}

// warn reports a problem that does not stop the run (a file skipped): on stderr, or as a
// "warning" event with --json.
func (u *ui) warn(format string, a ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	msg := fmt.Sprintf(format, a...)
	if u.mode == modeJSON {
		u.enc.Encode(map[string]string{"event": "warning", "msg": msg})
		return
	}
	u.lineLocked(u.errw, "s3xfer: "+msg)
}

// emit writes one JSON object, with --json only.
func (u *ui) emit(v any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.mode == modeJSON {
		u.enc.Encode(v)
	}
}

func (u *ui) json() bool { return u.mode == modeJSON }

// close stops drawing, leaving the final state of the bars on screen. Safe to call twice.
func (u *ui) close() {
	if u.stop != nil {
		close(u.stop)
		<-u.closed
		u.stop = nil
	}
	u.settle()
}

// settle leaves the bars of what finished on screen, and starts afresh below them.
func (u *ui) settle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.mode == modeTerm && (u.job || u.single != nil) {
		u.drawLocked()
	}
	// What is on screen stays: nothing is drawn again until a new transfer starts.
	u.drawn, u.single, u.job, u.totalBar = 0, nil, false, nil
	clear(u.live)
}

// jsonEvent is one transfer event as --json writes it.
type jsonEvent struct {
	Event     string `json:"event"` // started, part, finished, notice
	Op        string `json:"op"`
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	Path      string `json:"path,omitempty"`
	Size      int64  `json:"size"`
	Bytes     int64  `json:"bytes"`
	Parts     int    `json:"parts"`
	PartsDone int    `json:"parts_done"`
	Resumed   bool   `json:"resumed,omitempty"`
	Msg       string `json:"msg,omitempty"`
	Error     string `json:"error,omitempty"`
}

func eventJSON(ev transfer.Event) jsonEvent {
	j := jsonEvent{Op: ev.Op, Bucket: ev.Bucket, Key: ev.Key, Path: ev.Path, Size: ev.Size, Bytes: ev.Bytes,
		Parts: ev.Parts, PartsDone: ev.PartsDone, Resumed: ev.Resumed, Msg: noticeText(ev)}
	switch ev.Kind {
	case transfer.Started:
		j.Event = "started"
	case transfer.PartDone:
		j.Event = "part"
	case transfer.Finished:
		j.Event = "finished"
		if ev.Err != nil {
			j.Error = explain(ev.Err)
		}
	case transfer.Notice:
		j.Event = "notice"
	}
	return j
}

// noticeText is a library notice, with the commands that act on what it reports.
func noticeText(ev transfer.Event) string {
	if ev.Leftover {
		return fmt.Sprintf("%s (s3xfer ls-uploads %s lists it with its upload ID; s3xfer abort %[2]s UPLOAD-ID removes it)", ev.Msg, objectName(ev))
	}
	return ev.Msg
}

func objectName(ev transfer.Event) string { return "s3://" + ev.Bucket + "/" + ev.Key }

// shorten keeps the end of s, which tells files apart, within n characters.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s + strings.Repeat(" ", n-len(r))
	}
	return "..." + string(r[len(r)-n+3:])
}

// redactor replaces secrets in everything written through it: a last line of defence, on
// top of messages that never include them.
type redactor struct {
	w       io.Writer
	secrets []string
}

func (r *redactor) Write(p []byte) (int, error) {
	s := string(p)
	changed := false
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s, changed = strings.ReplaceAll(s, sec, "<redacted>"), true
		}
	}
	if !changed {
		return r.w.Write(p)
	}
	if _, err := io.WriteString(r.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
