//go:build linux && (amd64 || arm64)

package transfer

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing a finished range to disk without
// waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE), so that the fsync before the
// rename finds little left to write. Advice only: an error changes nothing.
func startWriteback(f *os.File, off, n int64) {
	const syncFileRangeWrite = 2
	syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
}
