//go:build !unix

package resume

import (
	"errors"
	"os"
)

// Journals need flock; without it two processes could interleave one journal.
var errNoLocks = errors.New("resume: journal locking is not supported on this platform")

func lockFile(path, journal string) (*os.File, error) { return nil, errNoLocks }

func isLocked(path string) bool { return false }
