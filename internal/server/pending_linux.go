package server

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// pendingBytes is how many bytes wait in c's socket to be read (0 when it
// cannot be told).
func pendingBytes(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			n = v
		}
	})
	return n
}
