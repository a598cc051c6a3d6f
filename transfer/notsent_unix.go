//go:build linux || darwin

package transfer

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// setNotSentLowat sets conn's TCP_NOTSENT_LOWAT to n bytes (0: the system's default).
// Advice only: an error changes nothing.
func setNotSentLowat(conn net.Conn, n int) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
	})
}
