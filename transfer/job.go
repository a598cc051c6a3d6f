package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/s3xfer/s3xfer/resume"
)

// DirOptions configures a directory job: UploadDir, DownloadDir, CopyDir.
type DirOptions struct {
	Filter
	Upload   UploadOptions   // each file's, in UploadDir
	Download DownloadOptions // each file's, in DownloadDir
	Copy     CopyOptions     // each object's, in CopyDir
	// Fresh ignores what the job's journal (or checkpoint) says is done: every file is
	// sent again.
	Fresh bool
	// Checkpoint, if its Bucket is set, keeps the job's progress in the store instead of
	// the local journal: see Checkpoint. Sync keeps one for its transfers to hold the job
	// against a second live run; it never skips by it (comparing is its resume).
	Checkpoint Checkpoint
	// StopAfter stops the job once this many files in a row have failed: the cause is
	// then most likely not one file. Zero means 10; negative, never.
	StopAfter int
	// OnFound, if set, is told of each file the walk or listing selects, before it is
	// transferred: a progress display's total grows with it. The listing goes on while
	// files move, so the total is known only at the end.
	OnFound func(size int64)
	// OnFile, if set, receives each file's outcome as it settles, one call at a time.
	OnFile func(FileResult)
}

// FileResult is the outcome of one file of a directory job or Sync.
type FileResult struct {
	Op       string // "upload", "download", "copy" or, in Sync, "delete"
	Src, Dst string // a local path or s3://bucket/key; a delete has no Src
	Size     int64
	Result   Result // of the transfer, when there was one
	// Skipped says an earlier run of the same job did it, as its journal records; in
	// Sync, that the destination has it already, as the comparison rule says.
	Skipped bool
	// DryRun says Op was not done: SyncOptions.DryRun reports what it would do.
	DryRun bool
	// Note says why a file found was left alone without failing (not a regular file),
	// or, in Sync, that it was compared otherwise than asked (and how).
	Note string
	Err  error
}

// JobResult sums up a directory job.
type JobResult struct {
	Files     int   // selected by the walk or listing
	Done      int   // transferred by this run
	Skipped   int   // done by an earlier run; in Sync, alike at both ends
	Failed    int   // failed, or could not be read or placed
	Bytes     int64 // the size of the files done and skipped
	BytesSent int64 // the bytes this run sent or received
}

// JobError is the error of a directory job that did not settle every file. Done files
// stay done: the same job run again skips them (with Config.Journal).
type JobError struct {
	Op     string
	Failed int // files that failed
	Files  int // files selected before the job ended
	// Stopped says the job ended before taking every file: StopAfter failures in a row,
	// a failure every file would meet (the bucket is gone, the credentials are refused,
	// the store is unreachable), or a walk or listing that failed.
	Stopped bool
	Err     error // the failure that stopped the job, else the last one
}

func (e *JobError) Error() string {
	switch {
	case e.Stopped && e.Failed == 0:
		return fmt.Sprintf("%s stopped after %d files: %v", e.Op, e.Files, e.Err)
	case e.Stopped:
		return fmt.Sprintf("%s stopped after %d of %d files failed: %v", e.Op, e.Failed, e.Files, e.Err)
	}
	return fmt.Sprintf("%s: %d of %d files failed (the last: %v)", e.Op, e.Failed, e.Files, e.Err)
}

func (e *JobError) Unwrap() error { return e.Err }

// fileTask is one file of a job, in the job's key order.
type fileTask struct {
	op       string // if set, the file's Op instead of the job's (Sync mixes them)
	rel      string // its path relative to the job's root: the order and the journal's key
	src, dst string
	size     int64
	err      error       // found but unusable: a failure without a transfer
	note     string      // found and left alone
	remark   string      // said in its FileResult's Note, whatever the outcome
	same     bool        // known alike at both ends: counted skipped, nothing run
	dry      bool        // run only looks: the result says DryRun
	done     func() bool // if set, confirms a file the journal lists as done
	// run does the file's transfer; errUnchanged from it means it found nothing to do.
	run func(ctx context.Context) (Result, error)
}

// errUnchanged is what a fileTask's run returns when a closer look (a checksum) found
// the destination alike: the file counts as skipped.
var errUnchanged = errors.New("unchanged")

func (j *job) opOf(t fileTask) string {
	if t.op != "" {
		return t.op
	}
	return j.op
}

// progressLog is where a job keeps its progress: a *resume.JobJournal, or a
// *storeCheckpoint.
type progressLog interface {
	Done(key string) bool
	Failed(key string) bool
	Progress() (upto string, files int, bytes int64)
	Append(rs ...resume.JobRecord) error
	Close() error  // keeps the progress, to resume
	Delete() error // the job is complete
}

// job is one directory job being run.
type job struct {
	m       *Manager
	op      string
	opts    DirOptions
	journal progressLog // nil: none
	cancel  context.CancelFunc

	mu      sync.Mutex
	res     JobResult
	inARow  int
	stopErr error // why the job stops early
	lastErr error
	// oldest and newest end the list of files started and not settled, in key order;
	// lastStarted is the key of the newest file started. Memory is the files in flight.
	oldest, newest *inFlight
	lastStarted    string
	upto           string // the checkpoint: every file up to it is settled
	// baseFiles and baseBytes are what earlier runs did, doneBytes what this one did.
	baseFiles            int
	baseBytes, doneBytes int64
	pending              []resume.JobRecord
	flushed              chan struct{} // closed and replaced by the journal writer
	writing              bool
}

// inFlight is a file being transferred.
type inFlight struct {
	rel          string
	prev         string // the key of the file started before it: the checkpoint while it is the oldest in flight
	older, newer *inFlight
}

// runJob takes the files tasks yields, in key order, through the Manager: as many at once
// as keep its concurrency budget busy, so the first file moves while the walk or listing
// goes on, and memory does not grow with the number of files. The job's journal (with
// Config.Journal) keeps a checkpoint, so the same job run again skips what is done without
// a request per file.
func (m *Manager) runJob(ctx context.Context, op string, h resume.Header, ident string, opts DirOptions,
	tasks func(ctx context.Context, yield func(fileTask) bool) error) (JobResult, error) {
	if err := opts.Filter.Check(); err != nil {
		return JobResult{}, err
	}
	if opts.StopAfter == 0 {
		opts.StopAfter = 10
	}
	if sh := opts.Shard; sh.Count > 1 {
		ident += fmt.Sprintf("\x00shard %d of %d", sh.Index, sh.Count) // each shard its own checkpoint
	}
	var jr progressLog
	var ck *storeCheckpoint
	switch {
	case opts.Checkpoint.Bucket != "":
		var err error
		job := op + " " + strings.ReplaceAll(ident, "\x00", " ")
		if err := checkpointOutside(opts.Checkpoint, h); err != nil {
			return JobResult{}, err
		}
		if ck, err = m.openCheckpoint(ctx, opts.Checkpoint, op, ident, job, opts.Shard, h.Kind != "", opts.Fresh); err != nil {
			return JobResult{}, err
		}
		jr = ck
	case h.Kind != "": // Sync keeps none: comparing the two ends is its resume
		jj, err := m.openJob(op, h, ident, opts.Fresh)
		if err != nil {
			return JobResult{}, err
		}
		if jj != nil {
			jr = jj
		}
	}
	if m.tune != nil {
		m.tune.openJobs.Add(1)
		defer m.tune.openJobs.Add(-1)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	j := &job{m: m, op: op, opts: opts, journal: jr, cancel: cancel, flushed: make(chan struct{})}
	if jr != nil {
		j.upto, j.baseFiles, j.baseBytes = jr.Progress()
	}
	if ck != nil {
		ck.start(j.stop)
	}
	// m.files bounds the workers: twice the requests in flight, which are the real bound,
	// to keep them fed. A worker takes the next file when it is done with one: a goroutine
	// per file would grow a new stack for every one, which costs a small file more than
	// reading it does.
	var g errgroup.Group
	work := make(chan func()) // to an idle worker; closed when there is no more
	listErr := tasks(ctx, func(t fileTask) bool {
		if ctx.Err() != nil {
			return false
		}
		if opts.OnFound != nil {
			opts.OnFound(t.size)
		}
		if t.same || jr != nil && jr.Done(t.rel) && (t.done == nil || t.done()) {
			j.skip(t)
			return true
		}
		if m.files.acquire(ctx) != nil {
			return false
		}
		s := j.begin(t)
		file := func() {
			defer m.files.release()
			var r Result
			err := t.err
			if err == nil && t.note == "" {
				r, err = t.run(ctx)
			}
			j.settle(ctx, s, t, r, err)
		}
		select {
		case work <- file:
		default:
			g.Go(func() error {
				for ; file != nil; file = <-work {
					file()
				}
				return nil
			})
		}
		return ctx.Err() == nil
	})
	close(work)
	g.Wait()
	return j.end(ctx, listErr)
}

// openJob opens the job's journal, or creates it; nil without Config.Journal.
func (m *Manager) openJob(op string, h resume.Header, ident string, fresh bool) (*resume.JobJournal, error) {
	store := m.cfg.Journal
	if store == nil {
		return nil, nil
	}
	h.Endpoint = m.cfg.Endpoint
	id := resume.ID(h.Kind, m.cfg.Endpoint+"\x00"+ident)
	if !fresh {
		jr, err := store.OpenJob(id)
		switch {
		case err == nil:
			return jr, nil
		case errors.Is(err, resume.ErrCorrupt), errors.Is(err, resume.ErrVersion):
			m.notice(Event{Kind: Notice, Op: op, Bucket: h.Bucket, Key: h.Key, Path: h.LocalPath}, fmt.Sprintf(
				"ignoring and replacing the unusable journal of this job (%v): the files an earlier run finished are transferred again, those it left half-done resume from their own journals", err))
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	return store.CreateJob(id, h)
}

func (j *job) skip(t fileTask) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.res.Files++
	j.res.Skipped++
	j.res.Bytes += t.size
	j.report(FileResult{Op: j.opOf(t), Src: t.src, Dst: t.dst, Size: t.size, Skipped: true, Note: cmp.Or(t.note, t.remark)})
}

func (j *job) begin(t fileTask) *inFlight {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.res.Files++
	s := &inFlight{rel: t.rel, prev: j.lastStarted, older: j.newest}
	j.lastStarted = t.rel
	if j.newest != nil {
		j.newest.newer = s
	} else {
		j.oldest = s
	}
	j.newest = s
	return s
}

// settle counts a file's outcome, decides whether the job goes on, and moves the
// checkpoint past every file settled in order.
func (j *job) settle(ctx context.Context, s *inFlight, t fileTask, r Result, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil && ctx.Err() != nil && t.err == nil {
		return // interrupted or stopped: not this file's failure, and not settled
	}
	j.unlink(s)
	fr := FileResult{Op: j.opOf(t), Src: t.src, Dst: t.dst, Size: t.size, Result: r, Note: cmp.Or(t.note, t.remark), Err: err}
	switch {
	case errors.Is(err, errUnchanged):
		j.inARow = 0
		j.res.Skipped++
		j.res.Bytes += t.size
		fr.Skipped, fr.Err = true, nil
	case err != nil:
		j.res.Failed++
		j.inARow++
		j.lastErr = err
		j.record(resume.JobRecord{Failed: t.rel})
		if j.stopErr == nil && (stopsJob(err) || (j.opts.StopAfter > 0 && j.inARow >= j.opts.StopAfter)) {
			j.stopErr = err
			j.cancel()
		}
	case t.note != "":
	default:
		fr.DryRun = t.dry
		j.inARow = 0
		j.res.Done++
		j.res.Bytes += t.size
		j.res.BytesSent += r.BytesSent
		j.doneBytes += t.size
		if j.journal != nil && j.journal.Failed(t.rel) {
			j.record(resume.JobRecord{Retried: t.rel})
		}
	}
	j.report(fr)
	j.advance()
}

// unlink takes a settled file out of the files in flight.
func (j *job) unlink(s *inFlight) {
	if s.older != nil {
		s.older.newer = s.newer
	} else {
		j.oldest = s.newer
	}
	if s.newer != nil {
		s.newer.older = s.older
	} else {
		j.newest = s.older
	}
}

// advance moves the checkpoint up to the file before the oldest still in flight, or to the
// newest started if none is.
func (j *job) advance() {
	last := j.lastStarted
	if j.oldest != nil {
		last = j.oldest.prev
	}
	if j.journal == nil || last <= j.upto {
		return
	}
	j.upto = last
	j.record(resume.JobRecord{Upto: last, Files: j.baseFiles + j.res.Done, Bytes: j.baseBytes + j.doneBytes})
}

// record queues r for the journal writer, which appends what is queued with one fsync
// while files go on settling. Records stay in order, so a failure is durable no later
// than a checkpoint past it.
func (j *job) record(r resume.JobRecord) {
	if j.journal == nil {
		return
	}
	if r.Upto != "" && len(j.pending) > 0 && j.pending[len(j.pending)-1].Upto != "" {
		j.pending[len(j.pending)-1] = r // a newer checkpoint replaces one not yet written
	} else {
		j.pending = append(j.pending, r)
	}
	if !j.writing {
		j.writing = true
		go j.write()
	}
}

func (j *job) write() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for len(j.pending) > 0 {
		rs := j.pending
		j.pending = nil
		j.mu.Unlock()
		err := j.journal.Append(rs...)
		j.mu.Lock()
		if err != nil && j.stopErr == nil {
			if _, ok := j.journal.(*storeCheckpoint); !ok {
				err = fmt.Errorf("job journal: %w", err)
			}
			j.stopErr = err
			j.cancel()
		}
	}
	j.writing = false
	close(j.flushed)
	j.flushed = make(chan struct{})
}

// stop ends the job early for err, unless it is ending for another cause already.
func (j *job) stop(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopErr == nil {
		j.stopErr = err
		j.cancel()
	}
}

// wait returns once the journal writer is idle.
func (j *job) wait() {
	j.mu.Lock()
	for j.writing {
		ch := j.flushed
		j.mu.Unlock()
		<-ch
		j.mu.Lock()
	}
	j.mu.Unlock()
}

func (j *job) report(fr FileResult) {
	if j.opts.OnFile != nil {
		j.opts.OnFile(fr)
	}
}

// end settles the job: its result, its error, its journal.
func (j *job) end(ctx context.Context, listErr error) (JobResult, error) {
	j.wait()
	j.mu.Lock()
	res, stopErr, lastErr := j.res, j.stopErr, j.lastErr
	j.mu.Unlock()
	var err error
	switch {
	case stopErr != nil:
		err = &JobError{Op: j.op, Failed: res.Failed, Files: res.Files, Stopped: true, Err: stopErr}
	case ctx.Err() != nil && listErr == nil:
		err = ctx.Err()
	case listErr != nil:
		err = &JobError{Op: j.op, Failed: res.Failed, Files: res.Files, Stopped: true, Err: listErr}
	case res.Failed > 0:
		err = &JobError{Op: j.op, Failed: res.Failed, Files: res.Files, Err: lastErr}
	}
	if j.journal != nil {
		var jerr error
		if err == nil || res.Done+res.Skipped == 0 && res.Failed == 0 {
			jerr = j.journal.Delete() // complete, or nothing to resume
		} else {
			jerr = j.journal.Close()
		}
		if err == nil {
			err = jerr
		}
	}
	return res, err
}

// stopsJob reports a failure that every other file of a job would meet too.
func stopsJob(err error) bool {
	switch Code(err) {
	case "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed", "InvalidBucketName":
		return true
	}
	var oe *net.OpError
	var de *net.DNSError
	var le *resume.LockedError
	return TLSError(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		(errors.As(err, &oe) && oe.Op == "dial") || errors.As(err, &de) || errors.As(err, &le)
}
