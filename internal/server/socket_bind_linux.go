//go:build linux

package server

import (
	"context"
	"net"
	"syscall"
)

// bindSocket creates and listens on the Unix socket at path, 0600 from the
// moment it exists. Linux gives the socket file the mode of the socket
// (less the umask) when it binds, so the socket is made 0600 before the
// bind: no other user can connect even for an instant, whatever the umask
// and whoever else may enter the directory. (A chmod after the bind, which
// ListenSocket still makes, leaves a moment in which a umask of 000 lets
// anyone connect, and keep that connection.)
func bindSocket(path string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), 0o600) }); cerr != nil {
			return cerr
		}
		return err
	}}
	return lc.Listen(context.Background(), "unix", path)
}
