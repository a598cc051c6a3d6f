//go:build !unix

package osfile

import "os"

// ONonblock is 0: opening a path here does not wait for the other end of a pipe.
const ONonblock = 0

// SyncDir does nothing: Windows cannot fsync a directory (its file systems make a rename durable on
// their own, through their metadata journal), nor can the other non-unix systems Go runs on.
func SyncDir(dir string) error { return nil }

// ID reports no identity (ok false): os.FileInfo carries no device and inode here, so callers identify a
// file by its size and modification time only.
func ID(fi os.FileInfo) (dev, ino uint64, ok bool) { return 0, 0, false }
