package transfer

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/osfile"
	"github.com/s3xfer/s3xfer/resume"
)

// toFile downloads into the partial file, then renames it into place; an object that
// changes meanwhile makes it start over once.
func (d *download) toFile(ctx context.Context) (Result, error) {
	res, err := d.toFileOnce(ctx)
	if errors.Is(err, ErrSourceChanged) && !d.opts.NoRestart && ctx.Err() == nil {
		d.notice("s3://%s/%s changed during the download; starting over", d.bucket, d.key)
		d.resumed, d.resumedBytes = false, 0
		d.acked.Store(0)
		d.nDone.Store(0)
		res, err = d.toFileOnce(ctx)
	}
	return res, err
}

func (d *download) toFileOnce(ctx context.Context) (Result, error) {
	if fi, err := os.Stat(d.path); err == nil && fi.IsDir() {
		return Result{}, fmt.Errorf("destination %s is a directory; name the file to write", d.path)
	}
	if err := d.begin(ctx); err != nil {
		return Result{}, err
	}
	partial := d.path + PartialSuffix
	j, done, err := d.openJournal(partial)
	if err != nil {
		return Result{}, err
	}
	res, err := d.intoFile(ctx, partial, j, done)
	if err == nil {
		if j != nil {
			err = j.Delete()
		}
		return res, err
	}
	// Keep what a resume can use; remove what it cannot.
	if j != nil && !errors.Is(err, ErrSourceChanged) && !errors.Is(err, ErrIntegrity) {
		j.Close()
		return Result{}, err
	}
	os.Remove(partial)
	if j != nil {
		j.Delete()
	}
	return Result{}, err
}

// intoFile fills the partial file, verifies and fsyncs it, and renames it into place.
func (d *download) intoFile(ctx context.Context, partial string, j *resume.Journal, done []bool) (Result, error) {
	flags := os.O_RDWR | os.O_CREATE
	if done == nil {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(partial, flags, 0o666)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	if err := f.Truncate(d.info.Size); err != nil { // sized up front: every range is a WriteAt
		return Result{}, err
	}
	// A journaled range counts once it is on disk: the file first, then its record, unless
	// the journal names its boot (NoSync). Without a journal, writeback of each range starts
	// as it lands, so that the fsync before the rename does not write the whole file in the
	// critical path (1.7x slower on 1 GiB), and concurrent fsyncs do not stall the writers.
	syncRanges := j != nil && (!d.opts.NoSync || j.Header().BootID == "")
	fsyncs := &groupSync{sync: f.Sync}
	finished := func(ctx context.Context, r chunk.Part) error {
		switch {
		case syncRanges:
			if err := fsyncs.after(fsyncs.written()); err != nil {
				return err
			}
		case !d.opts.NoSync:
			startWriteback(f, r.Offset, r.Size)
		}
		if j == nil {
			return nil
		}
		return j.Append(ctx, resume.Part{Number: r.Number, Size: r.Size, Offset: r.Offset, Checksum: d.rangeSum(r)})
	}
	res, err := d.into(ctx, f, done, finished)
	if err != nil {
		return Result{}, err
	}
	if !d.opts.NoSync {
		if err := f.Sync(); err != nil {
			return Result{}, err
		}
	}
	if err := f.Close(); err != nil {
		return Result{}, err
	}
	if err := os.Rename(partial, d.path); err != nil {
		return Result{}, err
	}
	if d.opts.NoSync {
		return res, nil
	}
	return res, osfile.SyncDir(filepath.Dir(d.path))
}

// groupSync makes writes durable with as few fsyncs as possible: one fsync at a time,
// and a write is covered by any fsync that started after it, so the ranges that finish
// while an fsync runs share the next one instead of each running its own.
type groupSync struct {
	sync      func() error // fsync
	mu        sync.Mutex   // held during an fsync
	requested atomic.Uint64
	synced    uint64 // under mu: every ticket up to this one is on disk
}

// written returns a ticket for the writes done before the call.
func (g *groupSync) written() uint64 { return g.requested.Add(1) }

// after returns once the writes of ticket are on disk.
func (g *groupSync) after(ticket uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.synced >= ticket {
		return nil
	}
	upTo := g.requested.Load()
	if err := g.sync(); err != nil {
		return err
	}
	g.synced = upTo
	return nil
}

// openJournal finds the journal of an interrupted download to the same file and returns
// the ranges it has finished, if it still applies; else it starts a new journal. It
// returns a nil journal without Config.Journal, and nil done for a fresh start.
func (d *download) openJournal(partial string) (*resume.Journal, []bool, error) {
	store := d.m.cfg.Journal
	if store == nil {
		return nil, nil, nil
	}
	abs, err := filepath.Abs(d.path)
	if err != nil {
		return nil, nil, err
	}
	id := resume.ID(resume.Download, abs)
	src := resume.Source{Bucket: d.bucket, Key: d.key, ETag: d.info.ETag, Size: d.info.Size}
	j, err := store.Open(id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, resume.ErrCorrupt), errors.Is(err, resume.ErrVersion):
		d.notice("ignoring unusable journal (%v); starting over", err)
	case err != nil:
		return nil, nil, err
	default:
		done, why := d.adopt(j, src, partial)
		if why == nil {
			return j, done, nil
		}
		if errors.Is(why, ErrSourceChanged) && d.opts.NoRestart {
			j.Close()
			return nil, nil, &OptionError{Option: "NoRestart", Want: "false to start over", Err: fmt.Errorf("%w since the interrupted download", why)}
		}
		d.notice("%v; starting over", why)
		if err := j.Delete(); err != nil {
			return nil, nil, err
		}
	}
	if len(d.ranges) <= 1 {
		return nil, nil, nil // one range has nothing to resume: spare the small files of a directory the fsyncs
	}
	j, err = store.Create(id, resume.Header{Kind: resume.Download, Endpoint: d.m.cfg.Endpoint, Bucket: d.bucket,
		Key: d.key, LocalPath: abs, Source: src, PartSize: d.opts.PartSize, Size: d.info.Size, Created: time.Now(),
		BootID: d.journalBoot()})
	return j, nil, err
}

// journalBoot is the boot ID a new journal records: with NoSync its ranges are trusted
// only within this boot. Where there is no boot ID to record, the ranges are fsynced.
func (d *download) journalBoot() string {
	if !d.opts.NoSync {
		return ""
	}
	return bootID()
}

// bootID identifies the running boot of the machine (Linux), or is empty.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// reason is why a journal cannot be resumed.
type reason string

func (r reason) Error() string { return string(r) }

// adopt resumes journal j if it records this version of the object and the partial file
// is still there: its finished ranges count as done. Else it says why not.
func (d *download) adopt(j *resume.Journal, src resume.Source, partial string) ([]bool, error) {
	h := j.Header()
	switch {
	case d.opts.NoResume:
		return nil, reason("discarding the interrupted download (no-resume)")
	case h.Kind != resume.Download || h.Endpoint != d.m.cfg.Endpoint || h.Bucket != d.bucket || h.Key != d.key:
		return nil, reason("the journal is of another transfer")
	case h.Source != src:
		return nil, fmt.Errorf("%w: s3://%s/%s changed", ErrSourceChanged, d.bucket, d.key)
	case h.BootID != "" && h.BootID != bootID():
		return nil, reason("the machine restarted since the interrupted download, whose ranges were not fsynced")
	}
	if fi, err := os.Stat(partial); err != nil || fi.Size() != d.info.Size {
		return nil, reason(partial + " is gone or was changed")
	}
	if err := d.plan(h.PartSize); err != nil {
		return nil, reason(err.Error())
	}
	done := make([]bool, len(d.ranges))
	for _, p := range j.Parts() {
		if p.Number > len(d.ranges) || done[p.Number-1] {
			continue
		}
		r := d.ranges[p.Number-1]
		if r.Size != p.Size || r.Offset != p.Offset {
			continue
		}
		if d.in.streamed() { // a range counts only with the checksum that verifies it
			sum, err := base64.StdEncoding.DecodeString(p.Checksum)
			if err != nil || len(sum) == 0 {
				continue
			}
			d.ck.sums[r.Number-1] = sum
		}
		done[p.Number-1] = true
		d.acked.Add(p.Size)
		d.nDone.Add(1)
	}
	for i, span := range d.partRanges { // a part all journaled passed its check
		d.ck.checked[i] = !slices.Contains(done[span[0]:span[1]], false)
	}
	d.resumed, d.resumedBytes = true, d.acked.Load()
	d.notice("resuming: %d of %d ranges already downloaded", d.nDone.Load(), len(d.ranges))
	return done, nil
}
