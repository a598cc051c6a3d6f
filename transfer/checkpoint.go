package transfer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/resume"
)

// Checkpoint keeps a directory job's progress in the store instead of the local job
// journal, so that the job run again on any machine (a shard rescheduled elsewhere)
// goes on where the last run stopped, and so that two live runs of one job cannot both
// own it. It is one small JSON object per job, written with conditional requests: created
// with If-None-Match: *, replaced with If-Match: the ETag this run wrote last. A run that
// finds its write refused (412) was taken over and stops with a *CheckpointOwnedError.
//
// The owner writes the object at least every Lease/3 (its heartbeat) and at most every
// Every when files settle. Another run takes over at once a checkpoint whose owner
// stopped (failed, interrupted, done) or whose heartbeat is older than the owner's Lease
// by the taker's clock. Else it waits until the lease has run out (at most one lease),
// reading the checkpoint every quarter lease: if the owner writes meanwhile, it is alive,
// and the taker stops with a *CheckpointOwnedError; if not, it is dead, and the taker
// takes over. A killed run's job is thus taken up within a lease. An owner none of whose
// writes goes through within its lease stops with ErrLeaseLapsed, before a taker may take
// over, rather than go on beside it. Clocks that disagree by more than a lease can only
// make a taker stop a live owner early, never let both go on: the old owner's next write
// fails. A done checkpoint makes a rerun of the job skip every file it did.
type Checkpoint struct {
	// Bucket and Prefix say where: the object is Prefix/OP-shard-K-of-N-HASH.json, HASH
	// naming the source and the destination (which the object names in full).
	Bucket, Prefix string
	// Lease is how long the owner may go without writing before another run may take
	// the job over. Zero means DefaultCheckpointLease.
	Lease time.Duration
	// Every is the least time between two writes of progress. Zero means 5 seconds.
	// Progress not yet written when a run dies is done again by the next one.
	Every time.Duration
}

// DefaultCheckpointLease is a Checkpoint's Lease unless set.
const DefaultCheckpointLease = time.Minute

const defaultCheckpointEvery = 5 * time.Second

// ErrNoConditionalWrites says the store does not honour If-None-Match or If-Match on
// PutObject, so a checkpoint kept there could not keep two runs of a job apart.
var ErrNoConditionalWrites = errors.New("the store does not honour conditional writes (If-None-Match and If-Match on PutObject)")

// ErrLeaseLapsed says that no write of a job's checkpoint went through before the lease
// of the last one ran out: another run may have taken the job over by then, so this one
// stopped rather than go on writing the job's files beside it.
var ErrLeaseLapsed = errors.New("no write of the job's checkpoint went through within its lease, so another run may take the job over; this run stopped")

// CheckpointOwnedError says another run of the same job owns its checkpoint.
type CheckpointOwnedError struct {
	Bucket, Key string
	Owner       string    // the other run: host/pid/random
	Heartbeat   time.Time // its last write, by its clock
	Lease       time.Duration
	// Lost says this run owned the checkpoint until the other took it over: this run
	// stopped, and the other goes on.
	Lost bool
}

func (e *CheckpointOwnedError) Error() string {
	if e.Lost && e.Owner == "" {
		return fmt.Sprintf("the job's checkpoint s3://%s/%s was deleted while this run held it; this run stopped", e.Bucket, e.Key)
	}
	if e.Lost {
		return fmt.Sprintf("the job's checkpoint s3://%s/%s was taken over by another run (%s); this run stopped, the other goes on", e.Bucket, e.Key, e.Owner)
	}
	return fmt.Sprintf("the job's checkpoint s3://%s/%s is held by another run (%s, which wrote it at %s with a lease of %s): another copy of this job is running",
		e.Bucket, e.Key, e.Owner, e.Heartbeat.UTC().Format(time.RFC3339), e.Lease)
}

// The states of a checkpoint: only a running one has an owner that may not be replaced.
const (
	ckptRunning = "running"
	ckptStopped = "stopped" // failed or interrupted: to be resumed
	ckptDone    = "done"
)

const checkpointVersion = 1

// checkpointDoc is the checkpoint object. It holds no credentials: the job's ends,
// its owner, its progress.
type checkpointDoc struct {
	Version      int       `json:"version"`
	Job          string    `json:"job"`
	Owner        string    `json:"owner"`
	Seq          int64     `json:"seq"` // counts the writes: tells this run's own write after a lost answer
	State        string    `json:"state"`
	Heartbeat    time.Time `json:"heartbeat"`
	LeaseSeconds float64   `json:"lease_seconds"`
	Upto         string    `json:"upto,omitempty"`
	Files        int       `json:"files,omitempty"`
	Bytes        int64     `json:"bytes,omitempty"`
	Failed       []string  `json:"failed,omitempty"`
}

func (d *checkpointDoc) lease() time.Duration {
	return time.Duration(d.LeaseSeconds * float64(time.Second))
}

// storeCheckpoint is a job's open checkpoint: a progressLog. Its methods are safe for
// concurrent use.
type storeCheckpoint struct {
	m           *Manager
	ctx         context.Context // the job's, without its cancellation: the last write goes out after an interrupt
	op          string
	bucket, key string
	every       time.Duration
	skips       bool // Done answers from the checkpoint (directory jobs); Sync compares instead

	mu        sync.Mutex // the state
	doc       checkpointDoc
	failed    map[string]bool
	dirty     bool
	lastWrite time.Time // when the last write went through
	held      time.Time // when it was sent: this run's lease runs from it

	wmu   sync.Mutex // one write at a time: each names the ETag of the one before
	etag  string
	owned bool  // a write of this run took: a refused one means it was taken over
	lost  error // set once a write was refused: every later one fails with it

	stop, stopped chan struct{} // the heartbeat's
}

// checkpointKey names a job's checkpoint object.
func checkpointKey(cp Checkpoint, op, ident string, sh Shard) string {
	sum := sha256.Sum256([]byte(ident))
	name := op + "-" + hex.EncodeToString(sum[:8]) + ".json"
	if sh.Count > 1 {
		name = fmt.Sprintf("%s-shard-%d-of-%d-%s.json", op, sh.Index, sh.Count, hex.EncodeToString(sum[:8]))
	}
	return path.Join(strings.TrimSuffix(cp.Prefix, "/"), name)
}

// checkpointOutside refuses a checkpoint under a prefix the job lists (h's Bucket/Key
// and Source): a sync --delete would delete it, a copy copy it.
func checkpointOutside(cp Checkpoint, h resume.Header) error {
	key := AsPrefix(cp.Prefix)
	for _, end := range []resume.Source{{Bucket: h.Bucket, Key: h.Key}, h.Source} {
		if end.Bucket == cp.Bucket && strings.HasPrefix(key, AsPrefix(end.Key)) {
			return &OptionError{Option: "Checkpoint", Want: "a prefix outside s3://" + end.Bucket + "/" + AsPrefix(end.Key),
				Err: fmt.Errorf("the checkpoint location s3://%s/%s is inside s3://%s/%s, which the job lists", cp.Bucket, key, end.Bucket, AsPrefix(end.Key))}
		}
	}
	return nil
}

// openCheckpoint takes the job's checkpoint: it creates it, or takes it over from a run
// that stopped or whose lease ran out, carrying its progress unless fresh (or unless the
// job does not skip by it). It then checks that the store refuses conditional writes
// that must fail.
func (m *Manager) openCheckpoint(ctx context.Context, cp Checkpoint, op, ident, job string, sh Shard, skips, fresh bool) (*storeCheckpoint, error) {
	if cp.Lease < 0 || cp.Every < 0 {
		return nil, &OptionError{Option: "Checkpoint", Want: "a Lease and an Every of zero or more", Err: fmt.Errorf("checkpoint lease %s, every %s", cp.Lease, cp.Every)}
	}
	lease := cp.Lease
	if lease == 0 {
		lease = DefaultCheckpointLease
	}
	c := &storeCheckpoint{m: m, ctx: context.WithoutCancel(ctx), op: op, bucket: cp.Bucket, key: checkpointKey(cp, op, ident, sh),
		every: cp.Every, skips: skips, failed: map[string]bool{}}
	if c.every == 0 {
		c.every = defaultCheckpointEvery
	}
	old, etag, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	if old != nil && old.State == ckptRunning {
		if old, etag, err = c.outlive(ctx, old, etag); err != nil {
			return nil, err
		}
	}
	c.doc = checkpointDoc{Version: checkpointVersion, Job: job, Owner: ownerID(), LeaseSeconds: lease.Seconds()}
	switch {
	case old == nil:
	case old.Version != checkpointVersion:
		return nil, fmt.Errorf("the job's checkpoint s3://%s/%s was written by checkpoint format version %d, this build reads version %d; delete it to run the job again from its first file",
			c.bucket, c.key, old.Version, checkpointVersion)
	default:
		c.doc.Seq = old.Seq
		if skips && !fresh {
			c.doc.Upto, c.doc.Files, c.doc.Bytes = old.Upto, old.Files, old.Bytes
			for _, k := range old.Failed {
				c.failed[k] = true
			}
		}
	}
	c.etag = etag // "": create
	if err := c.write(ctx, ckptRunning); err != nil {
		return nil, err
	}
	if err := c.probe(ctx); err != nil {
		if errors.Is(err, ErrNoConditionalWrites) {
			m.store.RemoveObject(ctx, c.bucket, c.key, minio.RemoveObjectOptions{}) // an unsafe checkpoint is no use to any run
		}
		return nil, err
	}
	return c, nil
}

// outlive waits for the owner of a running checkpoint to write it again, until its lease
// has run out by this run's clock and at most one lease, reading it every quarter lease:
// an owner that writes in that time is alive, and this run stops with a
// *CheckpointOwnedError. It returns the checkpoint to take over: as found, or as the owner
// left it when it ended meanwhile.
func (c *storeCheckpoint) outlive(ctx context.Context, old *checkpointDoc, etag string) (*checkpointDoc, string, error) {
	lease := old.lease()
	wait := min(old.Heartbeat.Add(lease).Sub(c.m.store.now()), lease)
	if wait <= 0 {
		return old, etag, nil
	}
	c.notice(fmt.Sprintf("the job's checkpoint is held by another run (%s, last written %s, lease %s): waiting until %s for it to write again; if it does not, this run takes the job over",
		old.Owner, old.Heartbeat.UTC().Format(time.RFC3339), lease, c.m.store.now().Add(wait).UTC().Format(time.RFC3339)))
	for wait > 0 {
		step := min(wait, max(lease/4, time.Millisecond))
		if err := c.m.store.sleep(ctx, step); err != nil {
			return nil, "", err
		}
		wait -= step
		cur, curETag, err := c.read(ctx)
		switch {
		case err != nil:
			return nil, "", err
		case cur != nil && curETag != etag && cur.State == ckptRunning:
			return nil, "", &CheckpointOwnedError{Bucket: c.bucket, Key: c.key, Owner: cur.Owner, Heartbeat: cur.Heartbeat, Lease: cur.lease()}
		case curETag != etag:
			return cur, curETag, nil // the owner ended (or the checkpoint was deleted): taken over at once
		}
	}
	c.notice(fmt.Sprintf("taking the job over from %s, whose lease ran out (last written %s)", old.Owner, old.Heartbeat.UTC().Format(time.RFC3339)))
	return old, etag, nil
}

// notice tells the user about the checkpoint.
func (c *storeCheckpoint) notice(msg string) {
	c.m.notice(Event{Kind: Notice, Op: c.op, Bucket: c.bucket, Key: c.key}, msg)
}

// ownerID names this run: host, process and a random part, told apart across machines.
func ownerID() string {
	host, _ := os.Hostname()
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// read returns the checkpoint on the store and its ETag; nil if there is none.
func (c *storeCheckpoint) read(ctx context.Context) (*checkpointDoc, string, error) {
	var doc checkpointDoc
	var etag string
	err := c.m.store.GetObject(ctx, c.bucket, c.key, func() (minio.GetObjectOptions, error) { return minio.GetObjectOptions{}, nil },
		func(body io.Reader, info minio.ObjectInfo, _ http.Header) error {
			b, err := io.ReadAll(io.LimitReader(body, 64<<20))
			if err != nil {
				return err
			}
			etag = info.ETag
			if err := json.Unmarshal(b, &doc); err != nil {
				return fmt.Errorf("the job's checkpoint s3://%s/%s is unreadable (%v); delete it to run the job again from its first file", c.bucket, c.key, err)
			}
			return nil
		})
	switch {
	case Code(err) == "NoSuchKey":
		return nil, "", nil
	case err != nil:
		return nil, "", &Error{Op: "read checkpoint", Bucket: c.bucket, Key: c.key, Err: err}
	}
	return &doc, strings.Trim(etag, `"`), nil
}

// put writes body under the condition opts holds.
func (c *storeCheckpoint) put(ctx context.Context, body []byte, opts minio.PutObjectOptions) (string, error) {
	opts.ContentType = "application/json"
	info, err := c.m.store.PutObject(ctx, c.bucket, c.key, bytesBody(body), int64(len(body)), "", "", opts)
	return strings.Trim(info.ETag, `"`), err
}

// write stores the state as state (running, stopped or done) on the condition that the
// object is still the one this run wrote last (or, first, that there is none). While the
// job runs (state running) a write must go through before this run's lease runs out:
// then another run may take the job over, and this one must not go on beside it.
func (c *storeCheckpoint) write(ctx context.Context, state string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.lost != nil {
		return c.lost
	}
	c.mu.Lock()
	c.doc.Seq++
	c.doc.State, c.doc.Heartbeat = state, c.m.store.now().UTC()
	c.doc.Failed = slices.Sorted(maps.Keys(c.failed))
	doc := c.doc
	c.dirty = false
	held := c.held
	c.mu.Unlock()
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	deadline := doc.Heartbeat.Add(doc.lease()) // the first write, and the last, once the job's files are settled
	if state == ckptRunning && !held.IsZero() {
		deadline = held.Add(doc.lease())
	}
	ctx, cancel := context.WithDeadlineCause(ctx, time.Now().Add(deadline.Sub(c.m.store.now())), ErrLeaseLapsed)
	defer cancel()
	etag, err := c.putAsOwner(ctx, body, doc)
	if err != nil && errors.Is(context.Cause(ctx), ErrLeaseLapsed) {
		err = ErrLeaseLapsed
	}
	var owned *CheckpointOwnedError
	if errors.As(err, &owned) {
		c.lost = err
		return err
	}
	if code := Code(err); code == "NotImplemented" || code == "InvalidArgument" && c.etag == "" {
		return fmt.Errorf("%w: the store at %s refused one (%v)", ErrNoConditionalWrites, c.m.cfg.Endpoint, err)
	}
	if err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return &Error{Op: "write checkpoint", Bucket: c.bucket, Key: c.key, Err: err}
	}
	c.etag, c.owned = etag, true
	c.mu.Lock()
	c.lastWrite, c.held = c.m.store.now(), doc.Heartbeat
	c.mu.Unlock()
	return nil
}

// putAsOwner puts body, doc, on the condition that the object is the one this run wrote
// last. A refusal (412) is another run's write, unless an attempt of this one succeeded
// and only its answer was lost.
func (c *storeCheckpoint) putAsOwner(ctx context.Context, body []byte, doc checkpointDoc) (string, error) {
	var opts minio.PutObjectOptions
	if c.etag == "" {
		opts.SetMatchETagExcept("*")
	} else {
		opts.SetMatchETag(c.etag)
	}
	etag, err := c.put(ctx, body, opts)
	if code := Code(err); code != "PreconditionFailed" && (code != "NoSuchKey" || c.etag == "") {
		return etag, err
	}
	cur, curETag, rerr := c.read(ctx)
	switch {
	case rerr != nil:
		return "", errors.Join(err, rerr)
	case cur != nil && cur.Owner == doc.Owner && cur.Seq == doc.Seq:
		return curETag, nil
	}
	e := &CheckpointOwnedError{Bucket: c.bucket, Key: c.key, Lost: c.owned}
	if cur != nil {
		e.Owner, e.Heartbeat, e.Lease = cur.Owner, cur.Heartbeat, cur.lease()
	}
	return "", e
}

// probe writes the checkpoint's bytes again under two conditions that must fail: a store
// that lets either through would let two runs both own the job.
func (c *storeCheckpoint) probe(ctx context.Context) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	body, err := json.Marshal(c.doc)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	var create, stale minio.PutObjectOptions
	create.SetMatchETagExcept("*")
	stale.SetMatchETag("00000000000000000000000000000000")
	for _, opts := range []minio.PutObjectOptions{create, stale} {
		etag, err := c.put(ctx, body, opts)
		switch {
		case err == nil:
			c.etag = etag
			return fmt.Errorf("%w: the store at %s accepted a PutObject whose condition did not hold, so a checkpoint there could not keep two runs of a job apart",
				ErrNoConditionalWrites, c.m.cfg.Endpoint)
		case Code(err) != "PreconditionFailed":
			return &Error{Op: "check conditional writes", Bucket: c.bucket, Key: c.key, Err: err}
		}
	}
	return nil
}

// start runs the heartbeat: it writes progress not yet written once Every has passed,
// and the checkpoint at least every Lease/3. A write that fails calls fail, and ends it.
func (c *storeCheckpoint) start(fail func(error)) {
	c.stop, c.stopped = make(chan struct{}), make(chan struct{})
	beat := c.doc.lease() / 3
	tick := max(min(c.every, beat)/4, 10*time.Millisecond) // a write goes out at most a quarter beat late
	go func() {
		defer close(c.stopped)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			c.mu.Lock()
			since := c.m.store.now().Sub(c.lastWrite)
			due := since >= beat || c.dirty && since >= c.every
			c.mu.Unlock()
			if due {
				if err := c.write(c.ctx, ckptRunning); err != nil {
					fail(err)
					return
				}
			}
		}
	}()
}

// Done reports whether the checkpoint says the file of key is done.
func (c *storeCheckpoint) Done(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skips && c.doc.Upto != "" && key <= c.doc.Upto && !c.failed[key]
}

// Failed reports whether the file of key failed in a recorded run and was not retried.
func (c *storeCheckpoint) Failed(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed[key]
}

// Progress returns the checkpoint and the files and bytes done up to it.
func (c *storeCheckpoint) Progress() (upto string, files int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doc.Upto, c.doc.Files, c.doc.Bytes
}

// Append applies rs, and writes the checkpoint if Every has passed since the last write.
func (c *storeCheckpoint) Append(rs ...resume.JobRecord) error {
	c.mu.Lock()
	for _, r := range rs {
		if r.Failed != "" {
			c.failed[r.Failed] = true
		}
		if r.Retried != "" {
			delete(c.failed, r.Retried)
		}
		if r.Upto != "" {
			c.doc.Upto, c.doc.Files, c.doc.Bytes = r.Upto, r.Files, r.Bytes
		}
	}
	c.dirty = true
	due := c.m.store.now().Sub(c.lastWrite) >= c.every
	c.mu.Unlock()
	if !due {
		return nil
	}
	return c.write(c.ctx, ckptRunning)
}

// end stops the heartbeat and writes the last state.
func (c *storeCheckpoint) end(state string) error {
	if c.stop != nil {
		close(c.stop)
		<-c.stopped
		c.stop = nil
	}
	return c.write(c.ctx, state)
}

// Close writes the progress as stopped: the next run takes over at once.
func (c *storeCheckpoint) Close() error { return c.end(ckptStopped) }

// Delete marks the job done: a rerun skips every file it did.
func (c *storeCheckpoint) Delete() error { return c.end(ckptDone) }
