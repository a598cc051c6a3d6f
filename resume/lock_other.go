//go:build !unix && !windows

package resume

import (
	"errors"
	"os"
)

// Journals need a lock the system drops when its process dies (flock, LockFileEx); without
// one, two processes could interleave one journal.
var errNoLocks = errors.New("resume: journal locking is not supported on this platform")

func lockFile(path, journal string) (*os.File, error) { return nil, errNoLocks }

func isLocked(path string) bool { return false }
