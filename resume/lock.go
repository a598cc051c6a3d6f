//go:build unix || windows

package resume

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// errHeld is what tryLock returns when another open file holds the lock.
var errHeld = errors.New("lock held")

// lockFile takes the exclusive lock of the lock file path of journal, creating it, and
// writes our PID into it. The lock belongs to the open file (flock on unix, LockFileEx on
// Windows), so a second open in the same process conflicts too, and the system drops it
// when the process dies: no stale locks.
func lockFile(path, journal string) (*os.File, error) {
	for {
		f, err := openLock(path)
		if err != nil {
			return nil, err
		}
		if err := tryLock(f, true); err != nil {
			f.Close()
			if errors.Is(err, errHeld) {
				return nil, &LockedError{Path: journal, PID: readPID(path)}
			}
			return nil, &fs.PathError{Op: "lock", Path: path, Err: err}
		}
		// Delete unlinks the lock file before releasing it. If that happened after our open,
		// we hold a lock on an orphan, and must lock the file now at path instead.
		mine, err1 := f.Stat()
		cur, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(mine, cur) {
			// The PID is only for messages: failing to record it is harmless.
			if f.Truncate(0) == nil {
				f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			}
			return f, nil
		}
		f.Close()
		if err1 != nil {
			return nil, err1
		}
		if err2 != nil && !errors.Is(err2, fs.ErrNotExist) {
			return nil, err2
		}
	}
}

// readPID returns the PID recorded in a lock file, or 0.
func readPID(path string) int {
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// isLocked reports whether someone holds the lock file path, by taking and at once
// dropping a shared lock.
func isLocked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(tryLock(f, false), errHeld)
}
