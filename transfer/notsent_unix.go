//go:build linux || darwin

package transfer

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// limitUnsent keeps at most notSent bytes of a connection's request body unsent in the
// kernel: a body's bytes then count as moved about when they leave, not when a socket
// buffer of megabytes swallows them, which a new connection's first window would read
// as goodput. Advice only: an error changes nothing.
func limitUnsent(_, _ string, c syscall.RawConn) error {
	_ = c.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, notSent)
	})
	return nil
}
