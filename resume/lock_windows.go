//go:build windows

package resume

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// On Windows the lock is LockFileEx on one byte far beyond the end of the lock file: byte
// range locks there are mandatory, and one over the PID would hide it from readPID. Like
// flock, the lock belongs to the handle and Windows releases it when the process dies.

// lockOffset is the locked byte: beyond any PID, within the range LockFileEx accepts.
const lockOffset = 1 << 62

// openLock opens the lock file path, creating it. Its share mode allows deletion, so that
// Delete can remove the lock file while holding it, as on unix.
func openLock(path string) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil,
		windows.OPEN_ALWAYS, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}

// tryLock locks the byte at lockOffset of f, exclusive or shared, without waiting:
// errHeld if another handle holds a conflicting lock. A shared lock, only a probe, is
// released at once; the exclusive one when f is closed.
func tryLock(f *os.File, exclusive bool) error {
	h := windows.Handle(f.Fd())
	ol := windows.Overlapped{Offset: uint32(lockOffset & 0xffffffff), OffsetHigh: uint32(lockOffset >> 32)}
	flags := uint32(windows.LOCKFILE_FAIL_IMMEDIATELY)
	if exclusive {
		flags |= windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	err := windows.LockFileEx(h, flags, 0, 1, 0, &ol)
	switch {
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return errHeld
	case err != nil:
		return err
	case !exclusive:
		return windows.UnlockFileEx(h, 0, 1, 0, &ol)
	}
	return nil
}
