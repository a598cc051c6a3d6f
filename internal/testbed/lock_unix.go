//go:build unix

package testbed

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// lockCluster holds the distributed MinIO's lock file (shared, or exclusive for a test
// that kills nodes) until the test ends, across test processes: a job must not run while
// another test's node is down or being readmitted.
func lockCluster(t testing.TB, exclusive bool) {
	t.Helper()
	dir := os.Getenv("S3XFER_TEST_MINIODIST_DIR")
	if dir == "" {
		return // started by hand without it: no test can kill a node (KillNode needs it)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "killnode.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(lock.Fd()), how); err != nil {
		lock.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // registered first, so it runs after KillNode's restart
}
