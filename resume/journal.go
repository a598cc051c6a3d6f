package resume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/s3xfer/s3xfer/internal/osfile"
)

// Journal is an open, locked journal. Its methods are safe for concurrent use. Close or
// Delete it to release the lock; a process that dies releases it too.
type Journal struct {
	path string
	h    Header
	f    *os.File // opened O_APPEND; written only by the flusher while open
	lock *os.File
	wg   sync.WaitGroup // the flusher goroutine, if running

	mu       sync.Mutex
	parts    map[int]Part // durable records only
	next     *batch       // records waiting for the next write+fsync
	flushing bool
	closed   bool
	err      error // first write or sync failure: after it the file may be torn, so nothing more is written
	syncs    int   // fsyncs done by Append, for the benchmark
}

// batch is one group commit: records appended while the previous fsync ran.
type batch struct {
	buf   []byte
	parts []Part
	done  chan struct{} // closed once err is set
	err   error
}

// Create starts the journal id, replacing any old journal of that id atomically. It takes
// the lock (a *LockedError if held), sets h.Version to FormatVersion and a zero h.Created
// to now, and returns once the header is durable: written to a temporary file, fsynced,
// renamed over the journal and the directory fsynced.
func (s Store) Create(id string, h Header) (*Journal, error) {
	path, f, lk, h, err := s.create(id, h)
	if err != nil {
		return nil, err
	}
	return &Journal{path: path, h: h, f: f, lock: lk, parts: map[int]Part{}}, nil
}

// CreateAt is Create for a journal kept at path, outside any Store (a download's record
// beside its partial file), locked by path+".lock".
func CreateAt(path string, h Header) (*Journal, error) {
	f, lk, h, err := createAt(path, path+".lock", h)
	if err != nil {
		return nil, err
	}
	return &Journal{path: path, h: h, f: f, lock: lk, parts: map[int]Part{}}, nil
}

// OpenAt is Open for a journal kept at path (see CreateAt).
func OpenAt(path string) (*Journal, error) {
	var h Header
	var parts map[int]Part
	f, lk, err := openAt(path, path+".lock", func(path string, data []byte) (good int, err error) {
		h, parts, good, err = parse(path, data)
		return good, err
	})
	if err != nil {
		return nil, err
	}
	return &Journal{path: path, h: h, f: f, lock: lk, parts: parts}, nil
}

// create writes the header of a new journal of either kind, holding its lock.
func (s Store) create(id string, h Header) (path string, f, lk *os.File, _ Header, err error) {
	path, lockPath, err := s.paths(id)
	if err != nil {
		return "", nil, nil, h, err
	}
	f, lk, h, err = createAt(path, lockPath, h)
	return path, f, lk, h, err
}

func createAt(path, lockPath string, h Header) (f, lk *os.File, _ Header, err error) {
	h.Version = FormatVersion
	if h.Created.IsZero() {
		h.Created = time.Now().UTC().Round(0)
	}
	line, err := encodeLine(h)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o700)
	}
	if err != nil {
		return nil, nil, h, fmt.Errorf("resume: create %s: %w", path, err)
	}
	if lk, err = lockFile(lockPath, path); err != nil {
		return nil, nil, h, err
	}
	if f, err = writeHeader(path, line); err != nil {
		lk.Close()
		return nil, nil, h, fmt.Errorf("resume: create %s: %w", path, err)
	}
	return f, lk, h, nil
}

// writeHeader replaces path by a file holding line, durably (restic's Save pattern), and
// returns it open for appends. The caller holds the lock, so a fixed temporary name is
// safe; it also overwrites a crash's leftover.
func writeHeader(path string, line []byte) (*os.File, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err = f.Write(line); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = osfile.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// Open takes the lock of journal id (a *LockedError if held) and loads it. A missing
// journal is an error matching fs.ErrNotExist; an untrustworthy one ErrCorrupt or
// ErrVersion. A torn tail, left by a crash during an append, is cut off so the file
// stays well-formed for new appends.
func (s Store) Open(id string) (*Journal, error) {
	var h Header
	var parts map[int]Part
	path, f, lk, err := s.open(id, func(path string, data []byte) (good int, err error) {
		h, parts, good, err = parse(path, data)
		return good, err
	})
	if err != nil {
		return nil, err
	}
	return &Journal{path: path, h: h, f: f, lock: lk, parts: parts}, nil
}

// open locks and reads journal id of either kind with parse, which returns the length of
// its well-formed prefix; a torn tail after it is cut off.
func (s Store) open(id string, parse func(path string, data []byte) (good int, err error)) (path string, f, lk *os.File, err error) {
	path, lockPath, err := s.paths(id)
	if err != nil {
		return "", nil, nil, err
	}
	f, lk, err = openAt(path, lockPath, parse)
	return path, f, lk, err
}

func openAt(path, lockPath string, parse func(path string, data []byte) (good int, err error)) (f, lk *os.File, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("resume: open: %w", err)
	}
	if lk, err = lockFile(lockPath, path); err != nil {
		return nil, nil, err
	}
	if f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0); err != nil {
		lk.Close()
		return nil, nil, fmt.Errorf("resume: open: %w", err)
	}
	data, err := io.ReadAll(f)
	good := 0
	if err == nil {
		good, err = parse(path, data)
	}
	if err == nil && good < len(data) {
		if err = f.Truncate(int64(good)); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		f.Close()
		lk.Close()
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrVersion) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("resume: open %s: %w", path, err)
	}
	return f, lk, nil
}

// Reset replaces the journal's header and forgets its parts, durably and without ever
// releasing the lock: for a transfer that journals its intent first and learns its
// upload ID after. It must not run concurrently with other methods of j.
func (j *Journal) Reset(h Header) error {
	h.Version = FormatVersion
	if h.Created.IsZero() {
		h.Created = time.Now().UTC().Round(0)
	}
	line, err := encodeLine(h)
	if err != nil {
		return fmt.Errorf("resume: reset %s: %w", j.path, err)
	}
	j.wg.Wait() // no flush in flight on the old file
	f, err := writeHeader(j.path, line)
	if err != nil {
		return fmt.Errorf("resume: reset %s: %w", j.path, err)
	}
	j.mu.Lock()
	old := j.f
	j.f, j.h, j.parts = f, h, map[int]Part{}
	j.mu.Unlock()
	return old.Close()
}

// Header returns the journal's header.
func (j *Journal) Header() Header { return j.h }

// Path returns the journal's file name.
func (j *Journal) Path() string { return j.path }

// Parts returns the durable parts, loaded or appended, sorted by number; for a number
// recorded twice, the last record wins.
func (j *Journal) Parts() []Part {
	j.mu.Lock()
	defer j.mu.Unlock()
	ps := make([]Part, 0, len(j.parts))
	for _, p := range j.parts {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b Part) int { return a.Number - b.Number })
	return ps
}

// Append records p and returns once the record is durable (fsynced); only then does the
// part count as done. Concurrent Appends share one write and one fsync (group commit).
// If ctx ends first, Append returns ctx.Err(), but the record may still become durable
// and then appear in Parts and in the journal after a crash, as if it had returned nil;
// resuming must confirm parts with the store anyway. After a write or fsync failure
// every Append fails: the file may be torn, and Open repairs that.
func (j *Journal) Append(ctx context.Context, p Part) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Number < 1 {
		return fmt.Errorf("resume: append %s: invalid part number %d", j.path, p.Number)
	}
	rec, err := encodeLine(p)
	if err != nil {
		return fmt.Errorf("resume: append %s: %w", j.path, err)
	}
	j.mu.Lock()
	switch {
	case j.closed:
		err = fmt.Errorf("resume: append %s: %w", j.path, fs.ErrClosed)
	case j.err != nil:
		err = j.err
	}
	if err != nil {
		j.mu.Unlock()
		return err
	}
	if j.next == nil {
		j.next = &batch{done: make(chan struct{})}
	}
	b := j.next
	b.buf = append(b.buf, rec...)
	b.parts = append(b.parts, p)
	if !j.flushing {
		j.flushing = true
		j.wg.Add(1)
		go j.flush()
	}
	j.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes and fsyncs batches until none is waiting. At most one runs at a time,
// so records reach the file whole and in order.
func (j *Journal) flush() {
	defer j.wg.Done()
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.next != nil {
		b, err := j.next, j.err
		j.next = nil
		j.mu.Unlock()
		if err == nil {
			if _, err = j.f.Write(b.buf); err == nil {
				err = j.f.Sync()
			}
			if err != nil {
				err = fmt.Errorf("resume: append %s: %w", j.path, err)
			}
		}
		j.mu.Lock()
		j.syncs++
		if err == nil {
			for _, p := range b.parts {
				j.parts[p.Number] = p
			}
		} else if j.err == nil {
			j.err = err
		}
		b.err = err
		close(b.done)
	}
	j.flushing = false
}

// shut stops new Appends and waits until pending ones are durable (or failed). It
// reports false if the journal was already closed.
func (j *Journal) shut() bool {
	j.mu.Lock()
	was := j.closed
	j.closed = true
	j.mu.Unlock()
	j.wg.Wait()
	return !was
}

// Close makes pending records durable, releases the lock and keeps the file, to resume
// later. It returns the first write or sync failure, if any. Closing a closed or deleted
// Journal does nothing.
func (j *Journal) Close() error {
	if !j.shut() {
		return nil
	}
	return errors.Join(j.err, j.f.Close(), j.lock.Close())
}

// Delete removes the journal and its lock file, then releases the lock. Call it only once
// the transfer is complete and verified: the journal is what makes it resumable.
func (j *Journal) Delete() error {
	if !j.shut() {
		return fmt.Errorf("resume: delete %s: %w", j.path, fs.ErrClosed)
	}
	return remove(j.path, j.f, j.lock)
}

// remove deletes a journal of either kind and its lock file, then releases the lock.
func remove(path string, f, lock *os.File) error {
	// The lock file goes before the lock is released: lockFile re-checks the file it locked.
	err := errors.Join(f.Close(), os.Remove(path), osfile.SyncDir(filepath.Dir(path)), os.Remove(lock.Name()), lock.Close())
	if err != nil {
		return fmt.Errorf("resume: delete %s: %w", path, err)
	}
	return nil
}
