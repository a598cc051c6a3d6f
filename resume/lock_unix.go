//go:build unix

package resume

import (
	"errors"
	"os"
	"syscall"
)

// openLock opens the lock file path, creating it.
func openLock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

// tryLock takes an flock on f, exclusive or shared, without waiting: errHeld if another
// open file holds a conflicting one. Closing f releases it.
func tryLock(f *os.File, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errHeld
	}
	return err
}
