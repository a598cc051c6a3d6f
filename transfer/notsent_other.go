//go:build !(linux || darwin)

package transfer

import "net"

// setNotSentLowat is advice this system does not take.
func setNotSentLowat(net.Conn, int) {}
