package transfer

import (
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendFile sends up to n bytes of f at off through c with sendfile(2): the kernel passes
// them from the page cache to the socket, without the copy that writing them makes. It
// returns how many it sent; the caller writes the rest, which also reports a failed
// connection as any write does.
func sendFile(c net.Conn, f *os.File, off int64, n int) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	fc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	sent := 0
	_ = fc.Control(func(src uintptr) {
		_ = rc.Write(func(dst uintptr) bool {
			for sent < n {
				pos := off + int64(sent)
				k, err := unix.Sendfile(int(dst), int(src), &pos, n-sent)
				if k > 0 {
					sent += k
				}
				switch {
				case err == unix.EAGAIN:
					return false // wait until the socket takes more
				case err == unix.EINTR:
				case err != nil || k <= 0: // e.g. no sendfile on this file system, or a file that shrank
					return true
				}
			}
			return true
		})
	})
	return sent
}
