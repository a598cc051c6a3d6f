package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cheggaaa/pb/v3"

	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/transfer"
)

// progress draws the Manager's events: a pb bar on a terminal, a plain line every few
// seconds otherwise, nothing when quiet. Bytes are acknowledged bytes, so a bar never
// goes backwards on a retry and starts from what a resume already had.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	bar      *pb.ProgressBar // terminal only
	plain    bool
	quiet    bool
	lastLine time.Time
}

func newProgress(e *env, quiet bool) *progress {
	return &progress{w: e.stderr, quiet: quiet, plain: !isTerminal(e.stderr)}
}

// isTerminal reports whether w is a terminal; /dev/null is a character device too.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	null, nerr := os.Stat(os.DevNull)
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && (nerr != nil || !os.SameFile(st, null))
}

func (p *progress) Report(ev transfer.Event) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Kind == transfer.Notice {
		fmt.Fprintf(p.w, "%s s3://%s/%s: %s\n", ev.Op, ev.Bucket, ev.Key, ev.Msg)
		return
	}
	if !p.plain {
		p.drawBar(ev)
		return
	}
	switch ev.Kind {
	case transfer.Started:
		p.lastLine = time.Now()
	case transfer.PartDone:
		if time.Since(p.lastLine) >= 5*time.Second {
			p.lastLine = time.Now()
			fmt.Fprintf(p.w, "%s s3://%s/%s: %s of %s (%d/%d parts)\n", ev.Op, ev.Bucket, ev.Key,
				units.FormatSize(ev.Bytes), units.FormatSize(ev.Size), ev.PartsDone, ev.Parts)
		}
	}
}

func (p *progress) drawBar(ev transfer.Event) {
	switch ev.Kind {
	case transfer.Started:
		if p.bar == nil && ev.Size > 0 {
			p.bar = pb.New64(ev.Size).Set(pb.Bytes, true).SetWriter(p.w).SetRefreshRate(200 * time.Millisecond)
			p.bar.SetTemplateString(`{{string . "name"}} {{bar . }} {{percent . }} {{counters . }} {{speed . }} {{rtime . "ETA %s"}}`)
			p.bar.Set("name", ev.Key)
			p.bar.SetCurrent(ev.Bytes)
			p.bar.Start()
		}
	case transfer.PartDone:
		if p.bar != nil {
			p.bar.SetCurrent(ev.Bytes)
		}
	case transfer.Finished:
		if p.bar != nil && ev.Err == nil {
			p.bar.SetCurrent(ev.Size)
		}
	}
}

func (p *progress) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}
