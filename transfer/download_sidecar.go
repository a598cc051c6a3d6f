package transfer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	md5simd "github.com/minio/md5-simd"
	"golang.org/x/sync/errgroup"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/resume"
)

// A journaled download keeps, besides its journal in the journal directory, a copy of it
// beside the partial file: DEST.s3xfer-partial.journal (locked by its .lock file). It is
// the same journal format (header: the object's bucket, key, ETag and size, the part
// size; then a self-checking record per finished range with its checksum), appended after
// the local journal, and holds no credentials. A run whose journal directory does not
// know the download (another machine on a shared filesystem, a wiped journal directory)
// continues from it: see adopt for what it must show first. Both are deleted once the
// file is in place.

// sidecarSuffix names the record beside a partial file: PartialSuffix + sidecarSuffix.
const sidecarSuffix = ".journal"

// IsPartialName reports whether name (a file's name or path) is one a download keeps
// until it completes: a partial file, or its record, lock or temporary file. A walk of a
// download's destination skips them.
func IsPartialName(name string) bool {
	for _, s := range []string{"", sidecarSuffix, sidecarSuffix + ".lock", sidecarSuffix + ".tmp"} {
		if strings.HasSuffix(name, PartialSuffix+s) {
			return true
		}
	}
	return false
}

// RemovePartial removes what an interrupted download to dest left beside it: the partial
// file and its record. Missing files are not an error.
func RemovePartial(dest string) error {
	var errs []error
	for _, s := range []string{"", sidecarSuffix, sidecarSuffix + ".lock", sidecarSuffix + ".tmp"} {
		errs = append(errs, ignoreMissing(os.Remove(dest+PartialSuffix+s)))
	}
	return errors.Join(errs...)
}

// journals are a download's journal here and its record beside the partial file: both or
// neither.
type journals struct {
	local, side *resume.Journal
}

// append records a finished range in both.
func (js journals) append(ctx context.Context, p resume.Part) error {
	if err := js.local.Append(ctx, p); err != nil {
		return err
	}
	return js.side.Append(ctx, p)
}

func (js journals) close() {
	for _, j := range []*resume.Journal{js.local, js.side} {
		if j != nil {
			j.Close()
		}
	}
}

func (js journals) delete() error {
	var errs []error
	for _, j := range []*resume.Journal{js.local, js.side} {
		if j != nil {
			errs = append(errs, j.Delete())
		}
	}
	return errors.Join(errs...)
}

// journalRange is range r's journal record.
func (d *download) journalRange(r chunk.Part) resume.Part {
	return resume.Part{Number: r.Number, Size: r.Size, Offset: r.Offset, Checksum: d.rangeSum(r)}
}

// journalDone records the ranges done in j, at once: concurrent appends share fsyncs.
func (d *download) journalDone(ctx context.Context, j *resume.Journal, done []bool) error {
	have := map[int]bool{}
	for _, p := range j.Parts() {
		have[p.Number] = true
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i, ok := range done {
		if ok && !have[i+1] {
			r := d.ranges[i]
			g.Go(func() error { return j.Append(gctx, d.journalRange(r)) })
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// adoptSidecar resumes from the record beside partial, if there is one and it still
// applies; else, with a notice, it deletes it. It returns the record open
// (and locked) with the ranges done, or nothing.
func (d *download) adoptSidecar(ctx context.Context, src resume.Source, partial string) (*resume.Journal, []bool, error) {
	s, err := resume.OpenAt(partial + sidecarSuffix)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil
	case errors.Is(err, resume.ErrCorrupt), errors.Is(err, resume.ErrVersion):
		d.restarting = append(d.restarting, fmt.Sprintf("deleted the unusable record beside the partial file (%v)", err))
		return nil, nil, errors.Join(ignoreMissing(os.Remove(partial+sidecarSuffix)), ignoreMissing(os.Remove(partial+sidecarSuffix+".lock")))
	case err != nil:
		return nil, nil, err
	}
	done, why := d.adopt(ctx, s, src, partial, true)
	if why == nil {
		return s, done, nil
	}
	if ctx.Err() != nil {
		s.Close()
		return nil, nil, ctx.Err()
	}
	if errors.Is(why, ErrSourceChanged) && d.opts.NoRestart {
		s.Close()
		return nil, nil, &OptionError{Option: "NoRestart", Want: "false to start over", Err: fmt.Errorf("%w since the interrupted download", why)}
	}
	d.restarting = append(d.restarting, fmt.Sprintf("%s: deleted the record %s beside the partial file", d.notContinued(why), s.Path()))
	return nil, nil, s.Delete() // it records nothing this run can use
}

func ignoreMissing(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// sidecar writes the record beside partial afresh, replacing any (whatever it holds, the
// ranges done are what this run knows), with the ranges done.
func (d *download) sidecar(ctx context.Context, partial string, h resume.Header, done []bool) (*resume.Journal, error) {
	h.LocalPath = "" // the record stays valid wherever the filesystem is mounted
	s, err := resume.CreateAt(partial+sidecarSuffix, h)
	if err != nil {
		return nil, err
	}
	if err := d.journalDone(ctx, s, done); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// recheck reads the ranges done back from the partial file, in parallel, and checks each
// against the checksum recorded for it: a record from elsewhere proves only what was
// written there. A range that differs is fetched again; it returns how many did. Ranges
// without a checksum of their own (an object verified by reading it back whole) are
// checked by that read-back at the end.
func (d *download) recheck(ctx context.Context, partial string, done []bool) (int, error) {
	if !d.in.streamed() {
		return 0, nil
	}
	f, err := os.Open(partial)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start, bytes0 := time.Now(), d.acked.Load()
	defer func() {
		d.m.log.Debug("checked the recorded ranges against the partial file", "path", partial,
			"bytes", bytes0, "took", time.Since(start).Round(time.Millisecond))
	}()
	newHash := d.in.algo.hasher
	if d.in.algo == algoMD5 { // in SIMD lanes, as the download hashes them
		srv := md5simd.NewServer()
		defer srv.Close()
		newHash = func() hash.Hash { return srv.NewHash() }
	}
	// The ranges of a part whose digest they all record are checked together, from the first.
	span := func(r chunk.Part) [2]int {
		if d.inSplitPart(r) {
			return d.partRanges[d.partOf[r.Number-1]]
		}
		return [2]int{r.Number - 1, r.Number}
	}
	differ := 0
	err = d.m.eachPart(ctx, d.ranges, func(r chunk.Part) bool { return !done[r.Number-1] || span(r)[0] != r.Number-1 }, func(ctx context.Context, r chunk.Part) error {
		buf := bufPool.Get().(*[]byte)
		defer bufPool.Put(buf)
		h := newHash()
		if c, ok := h.(io.Closer); ok {
			defer c.Close()
		}
		sp := span(r)
		last := d.ranges[sp[1]-1]
		size := last.Offset + last.Size - r.Offset
		if n, err := io.CopyBuffer(h, io.NewSectionReader(f, r.Offset, size), *buf); err != nil || n != size {
			return cmp.Or(err, error(reason(partial+" is shorter than its record says")))
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if !bytes.Equal(h.Sum(nil), d.ck.sums[r.Number-1]) {
			for j := sp[0]; j < sp[1]; j++ {
				d.undo(done, j)
				differ++
			}
		}
		return nil
	})
	return differ, err
}
