package testbed

import (
	"math"
	"os"
	"runtime"
	"syscall"
	"testing"
)

// AsNobody runs fn on a thread whose file-system user is nobody (65534), so that
// permission bits apply even when the test runs as root (code run in-process on that
// thread sees them); without root it just runs fn. It skips the test if root cannot give
// up its file permissions.
func AsNobody(t testing.TB, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		fn()
		return
	}
	dropped := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		syscall.RawSyscall(syscall.SYS_SETFSUID, 65534, 0, 0)
		cur, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, math.MaxUint32, 0, 0) // an invalid ID only reports
		if dropped = cur == 65534; dropped {
			fn()
		}
	}()
	<-done
	if !dropped {
		t.Skip("cannot take a non-root file-system user (setfsuid)")
	}
}

// Tmpfs mounts a tmpfs of size (e.g. "8m") on a new directory, read-only if ro, for tests
// of a full or read-only disk, or skips the test where mounting is not allowed. It is
// unmounted when the test ends.
func Tmpfs(t testing.TB, size string, ro bool) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (a fake io.WriterAt covers ENOSPC in transfer's TestBadInput)")
	}
	dir := t.TempDir()
	var flags uintptr
	if ro {
		flags = syscall.MS_RDONLY
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, "size="+size+",mode=0777"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// ResizeTmpfs gives the tmpfs that Tmpfs mounted on dir a new size, e.g. to free a full disk.
func ResizeTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, "size="+size); err != nil {
		t.Fatal(err)
	}
}

// Mkfifo makes a named pipe at path, or skips the test where it cannot.
func Mkfifo(t testing.TB, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
}
