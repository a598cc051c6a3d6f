// Package resume keeps the crash-safe journal of one transfer: what is being sent where,
// from which version of the source, and which parts the store has acknowledged, so an
// interrupted transfer continues where it stopped instead of starting over.
//
// A journal is one file per destination in a Store directory, locked against a second
// user by flock on a lock file beside it. The header is written once, atomically and
// durably; every acknowledged part is then appended as one self-checking record, and
// counts only once that record is on disk. Journals hold no credentials: there is no
// field for them.
//
// # On-disk format
//
// A journal, <id>.journal, is a text file of lines, each
//
//	JSON <tab> CRC-32C (Castagnoli) of the JSON as 8 lowercase hex digits <newline>
//
// The first line is the Header, each further line one Part. encoding/json escapes tabs
// and newlines, so the last tab of a line splits it unambiguously. Records after the
// last one that checks out, if no good record follows them, are a torn tail left by a
// crash mid-append: they were never acknowledged, so they are ignored and Open cuts
// them off. A bad record followed by a good one, or a bad header, is ErrCorrupt.
// The lock file <id>.lock holds the decimal PID of its holder, for messages only.
package resume

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FormatVersion is the journal format this package writes and reads.
const FormatVersion = 1

// Kind is the kind of transfer a journal records.
type Kind string

// The kinds of transfer.
const (
	Upload   Kind = "upload"
	Copy     Kind = "copy"
	Download Kind = "download"
)

// Source identifies the version of a transfer's source, so a resume never splices parts
// of two versions: a local file by path, size, mtime and device+inode (uploads), an
// object by bucket, key and ETag (copies and downloads). Source is comparable with ==.
type Source struct {
	Path    string `json:"path,omitempty"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns,omitempty"`
	Dev     uint64 `json:"dev,omitempty"`
	Ino     uint64 `json:"ino,omitempty"`
	Bucket  string `json:"bucket,omitempty"`
	Key     string `json:"key,omitempty"`
	ETag    string `json:"etag,omitempty"`
}

// Header describes a transfer. It is written once, durably, by Store.Create, before the
// first part is sent, and never changes afterwards.
type Header struct {
	Version   int    `json:"version"` // set by Create to FormatVersion
	Kind      Kind   `json:"kind"`
	Endpoint  string `json:"endpoint"`
	Bucket    string `json:"bucket"` // the S3 side: destination of an upload or copy, source of a download
	Key       string `json:"key"`
	LocalPath string `json:"local_path,omitempty"` // source file of an upload, destination file of a download
	Source    Source `json:"source"`
	UploadID  string `json:"upload_id,omitempty"` // empty for downloads
	PartSize  int64  `json:"part_size"`
	Size      int64  `json:"size"`
	Checksum  string `json:"checksum,omitempty"` // integrity mode, e.g. "crc32c"
	// BootID, if set, names the boot that wrote the journal: its records were not
	// fsynced with their data (a download with NoSync), so they hold only until a restart.
	BootID  string    `json:"boot_id,omitempty"`
	Created time.Time `json:"created"`
}

// Part is one acknowledged part (or, for a download, one finished range). Number is 1-based.
type Part struct {
	Number   int    `json:"n"`
	Size     int64  `json:"size"`
	Offset   int64  `json:"off,omitempty"` // a download range's place in the object
	ETag     string `json:"etag,omitempty"`
	Checksum string `json:"sum,omitempty"`
}

var (
	// ErrLocked is matched (errors.Is) by a *LockedError.
	ErrLocked = errors.New("resume: journal in use")
	// ErrCorrupt means a journal cannot be trusted: its header is unreadable or a record
	// other than the last is damaged. Such a journal cannot be resumed, only deleted.
	ErrCorrupt = errors.New("resume: corrupt journal")
	// ErrVersion means a journal was written in another format version.
	ErrVersion = errors.New("resume: unsupported journal version")
)

// LockedError reports a journal held by another Journal, in this process or another.
type LockedError struct {
	Path string // the journal
	PID  int    // the holder, as it recorded itself; 0 if unknown
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d", e.PID)
	}
	return fmt.Sprintf("journal %s is in use by %s; wait for it or stop it", e.Path, who)
}

// Is reports whether target is ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// DefaultDir returns the directory of journals: $XDG_STATE_HOME/s3xfer, or
// ~/.local/state/s3xfer when XDG_STATE_HOME is unset or not absolute (as the XDG spec says).
func DefaultDir() (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("resume: no journal directory: %w", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "s3xfer"), nil
}

// ID names the journal of one destination: the first 32 hex digits of
// SHA-256(kind + "\x00" + dest). It is deterministic and safe as a file name. dest is the
// caller's destination, e.g. "http://host:9000/bucket/key" or an absolute local path.
func ID(kind Kind, dest string) string {
	sum := sha256.Sum256([]byte(string(kind) + "\x00" + dest))
	return hex.EncodeToString(sum[:16])
}

// Store is a directory of journals. Dir "" means DefaultDir(). The directory is created
// with mode 0700 on first write; journals and lock files are 0600. A Store holds no state,
// so copies are interchangeable and safe for concurrent use.
type Store struct {
	Dir string
}

// Info describes one journal found by List.
type Info struct {
	ID, Path string
	Header   Header // zero if the header is unreadable
	Parts    int    // distinct acknowledged parts; for a directory job, the files done
	Bytes    int64  // their total size
	Locked   bool   // in use at the time of the listing
	Err      error  // non-nil (ErrCorrupt, ErrVersion, an I/O error) if the journal is unusable
}

// paths returns the journal and lock file of id, rejecting ids that are not plain file names.
func (s Store) paths(id string) (journal, lock string, err error) {
	if id == "" || id != filepath.Base(id) || id[0] == '.' {
		return "", "", fmt.Errorf("resume: invalid journal id %q", id)
	}
	dir := s.Dir
	if dir == "" {
		if dir, err = DefaultDir(); err != nil {
			return "", "", err
		}
	}
	p := filepath.Join(dir, id)
	return p + ".journal", p + ".lock", nil
}

// List returns every journal in the directory, sorted by ID, without locking any: a
// journal being written may show fewer parts than it has. Unusable journals are listed
// with Err set. Locked is probed by taking a shared lock for an instant, so an Open racing
// with List can rarely see ErrLocked. A missing directory lists nothing.
func (s Store) List() ([]Info, error) {
	probe, _, err := s.paths("x")
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(probe)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resume: list: %w", err)
	}
	var infos []Info
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".journal")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		in := Info{ID: id, Path: path, Locked: isLocked(filepath.Join(dir, id+".lock"))}
		data, err := os.ReadFile(path)
		var parts map[int]Part
		if err == nil {
			in.Header, parts, _, err = parse(path, data)
		}
		if in.Header.Kind.Job() {
			var st jobState
			in.Header, st, _, err = parseJob(path, data)
			in.Parts, in.Bytes = st.files, st.bytes
		}
		in.Err = err
		for _, p := range parts {
			in.Parts++
			in.Bytes += p.Size
		}
		infos = append(infos, in)
	}
	return infos, nil
}
