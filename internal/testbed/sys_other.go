//go:build !linux

package testbed

import (
	"os"
	"runtime"
	"testing"
)

// AsNobody runs fn where permission bits apply to the test: as a user other than root on
// unix. It skips the test as root (there is no setfsuid outside Linux) and on Windows,
// whose files have no permission bits.
func AsNobody(t testing.TB, fn func()) {
	t.Helper()
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("permission bits cannot be made to apply here (Linux's setfsuid, or a non-root unix user)")
	}
	fn()
}

// Tmpfs skips the test: mounting a tmpfs is Linux only.
func Tmpfs(t testing.TB, size string, ro bool) string {
	t.Helper()
	t.Skip("a tmpfs mount needs Linux (a fake io.WriterAt covers ENOSPC in transfer's TestBadInput)")
	return ""
}

// ResizeTmpfs is never reached: Tmpfs skipped the test.
func ResizeTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	t.Skip("a tmpfs mount needs Linux")
}

// Mkfifo skips the test: the tests that use named pipes run on Linux.
func Mkfifo(t testing.TB, path string) {
	t.Helper()
	t.Skip("the named-pipe tests run on Linux")
}
