//go:build unix

package osfile

import (
	"errors"
	"os"
	"syscall"
)

// ONonblock is or-ed into the flags of os.OpenFile so that opening a named pipe does not wait, forever, for a
// writer. It changes nothing for a regular file.
const ONonblock = syscall.O_NONBLOCK

// SyncDir makes a rename or removal in dir durable by fsyncing the directory. File systems that cannot
// sync a directory (EINVAL, ENOTSUP) are not an error: there is nothing more to do on them.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		err = nil
	}
	return errors.Join(err, d.Close())
}

// ID returns the device and inode of the file fi describes; ok is false if fi does not come from the
// operating system (os.Stat, os.Lstat, File.Stat).
func ID(fi os.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true
}
