//go:build !linux

package server

import "net"

// bindSocket creates and listens on the Unix socket at path. Outside
// Linux the socket file takes its mode from the umask alone, so
// ListenSocket's chmod right after is what restricts it.
func bindSocket(path string) (net.Listener, error) { return net.Listen("unix", path) }
