package process

import (
	"fmt"
	"net"
)

// FreePort returns a TCP port on host that was free a moment ago (the
// kernel picked it and the listener was closed). Another process may take
// it before the child binds it; the supervisor's restart covers that race.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
