package transfer

import (
	"context"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The connections the client dials keep little of a request body unsent in the kernel,
// so the concurrency controller counts bytes as they leave.
func TestConnectionsKeepLittleUnsent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := newTransport(8, 0).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(bulkConn).Conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got, serr := 0, error(nil)
	if err := raw.Control(func(fd uintptr) {
		got, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if got != notSent {
		t.Errorf("TCP_NOTSENT_LOWAT is %d, want %d", got, notSent)
	}
}
