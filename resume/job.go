package resume

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// The kinds of directory job, whose journals are JobJournals.
const (
	UploadDir   Kind = "upload-dir"
	DownloadDir Kind = "download-dir"
	CopyDir     Kind = "copy-dir"
)

// Job reports whether k is a directory job's kind.
func (k Kind) Job() bool { return k == UploadDir || k == DownloadDir || k == CopyDir }

// JobRecord is a line of a job journal after its header. A job takes its files in key
// order (S3's byte order of their relative paths), so its progress is a checkpoint: Upto
// says every file up to and including that key is settled, done or failed; Files and
// Bytes count the done ones. Failed names a file that failed, which a rerun tries again
// although it is before the checkpoint; Retried names one such file done later. Memory
// and work on resume are those of the failures, not of the files done.
type JobRecord struct {
	Upto    string `json:"upto,omitempty"`
	Files   int    `json:"files,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	Failed  string `json:"failed,omitempty"`
	Retried string `json:"retried,omitempty"`
}

// JobJournal is an open, locked job journal. Its methods are safe for concurrent use.
type JobJournal struct {
	path string
	h    Header
	lock *os.File

	mu     sync.Mutex
	f      *os.File
	state  jobState
	closed bool
	err    error // first write or sync failure: nothing more is written
}

// jobState is what a job journal's records add up to.
type jobState struct {
	upto   string
	files  int
	bytes  int64
	failed map[string]bool
}

func (s *jobState) apply(r JobRecord) {
	if r.Failed != "" {
		s.failed[r.Failed] = true
	}
	if r.Retried != "" {
		delete(s.failed, r.Retried)
	}
	if r.Upto != "" {
		s.upto, s.files, s.bytes = r.Upto, r.Files, r.Bytes
	}
}

// CreateJob starts the job journal id, replacing any old one atomically, as Create does.
func (s Store) CreateJob(id string, h Header) (*JobJournal, error) {
	if !h.Kind.Job() {
		return nil, fmt.Errorf("resume: create job journal: kind %q is not a directory job", h.Kind)
	}
	path, f, lk, h, err := s.create(id, h)
	if err != nil {
		return nil, err
	}
	return &JobJournal{path: path, h: h, f: f, lock: lk, state: jobState{failed: map[string]bool{}}}, nil
}

// OpenJob takes the lock of job journal id and loads it, with the errors of Open. A torn
// tail is cut off.
func (s Store) OpenJob(id string) (*JobJournal, error) {
	var h Header
	var st jobState
	path, f, lk, err := s.open(id, func(path string, data []byte) (good int, err error) {
		h, st, good, err = parseJob(path, data)
		return good, err
	})
	if err != nil {
		return nil, err
	}
	return &JobJournal{path: path, h: h, f: f, lock: lk, state: st}, nil
}

// parseJob reads a job journal image as parse reads a transfer's.
func parseJob(path string, data []byte) (h Header, st jobState, good int, err error) {
	st.failed = map[string]bool{}
	line, rest, ok := bytes.Cut(data, []byte{'\n'})
	if !ok || !decodeLine(line, &h) {
		return Header{}, st, 0, fmt.Errorf("%w: %s: unreadable header", ErrCorrupt, path)
	}
	if h.Version != FormatVersion {
		return h, st, 0, fmt.Errorf("%w: %s was written by journal format version %d, this build reads version %d",
			ErrVersion, path, h.Version, FormatVersion)
	}
	if !h.Kind.Job() {
		return h, st, 0, fmt.Errorf("%w: %s is a %s journal, not a directory job's", ErrCorrupt, path, h.Kind)
	}
	good = len(line) + 1
	for n := 2; len(rest) > 0; n++ {
		line, next, complete := bytes.Cut(rest, []byte{'\n'})
		var r JobRecord
		if !complete || !decodeLine(line, &r) {
			for len(next) > 0 { // damage followed by a good record is not a torn tail
				line, next, complete = bytes.Cut(next, []byte{'\n'})
				if complete && decodeLine(line, &JobRecord{}) {
					return h, st, good, fmt.Errorf("%w: %s: damaged record on line %d", ErrCorrupt, path, n)
				}
			}
			break
		}
		st.apply(r)
		good += len(line) + 1
		rest = next
	}
	return h, st, good, nil
}

// Header returns the journal's header.
func (j *JobJournal) Header() Header { return j.h }

// Path returns the journal's file name.
func (j *JobJournal) Path() string { return j.path }

// Done reports whether the file of key was done by the runs the journal records: it is
// at or before the checkpoint and did not fail.
func (j *JobJournal) Done(key string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state.upto != "" && key <= j.state.upto && !j.state.failed[key]
}

// Failed reports whether the file of key failed in a recorded run and was not retried.
func (j *JobJournal) Failed(key string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state.failed[key]
}

// Progress returns the checkpoint and the files and bytes done up to it.
func (j *JobJournal) Progress() (upto string, files int, bytes int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state.upto, j.state.files, j.state.bytes
}

// Append records rs and returns once they are durable (one write, one fsync). After a
// write or sync failure every Append fails.
func (j *JobJournal) Append(rs ...JobRecord) error {
	var buf []byte
	for _, r := range rs {
		line, err := encodeLine(r)
		if err != nil {
			return fmt.Errorf("resume: append %s: %w", j.path, err)
		}
		buf = append(buf, line...)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.closed:
		return fmt.Errorf("resume: append %s: %w", j.path, fs.ErrClosed)
	case j.err != nil:
		return j.err
	}
	if _, err := j.f.Write(buf); err != nil {
		j.err = fmt.Errorf("resume: append %s: %w", j.path, err)
	} else if err := j.f.Sync(); err != nil {
		j.err = fmt.Errorf("resume: append %s: %w", j.path, err)
	}
	if j.err != nil {
		return j.err
	}
	for _, r := range rs {
		j.state.apply(r)
	}
	return nil
}

// shut stops new Appends; false if already closed.
func (j *JobJournal) shut() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	was := j.closed
	j.closed = true
	return !was
}

// Close releases the lock and keeps the file, to resume later.
func (j *JobJournal) Close() error {
	if !j.shut() {
		return nil
	}
	return errors.Join(j.err, j.f.Close(), j.lock.Close())
}

// Delete removes the journal and its lock file, then releases the lock: once the job is
// complete.
func (j *JobJournal) Delete() error {
	if !j.shut() {
		return fmt.Errorf("resume: delete %s: %w", j.path, fs.ErrClosed)
	}
	return remove(j.path, j.f, j.lock)
}
