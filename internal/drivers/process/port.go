package process

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// Ports for children come from a range below Linux's default ephemeral
// range (32768–60999), as Nomad's dynamic ports do (20000–32000). A port
// the kernel picks for `:0` is an ephemeral one, and between our closing
// the probe listener and the child binding the port, any outgoing
// connection on the machine may be given the same number as its local
// port; the child then fails with "address already in use". Ports below
// that range are never handed out by the kernel on its own.
const (
	portRangeLow  = 20000
	portRangeHigh = 32000
	portTries     = 64
	recentPorts   = 256
)

var portState struct {
	sync.Mutex
	recent map[int]struct{}
	order  []int
}

// FreePort returns a TCP port on host that was free a moment ago and that
// this process has not handed out recently. Another process may still take
// it before the child binds it; the supervisor's restart covers that race.
// When no port of the range is free it falls back to one the kernel picks.
func FreePort(host string) (int, error) {
	portState.Lock()
	defer portState.Unlock()
	for range portTries {
		p := portRangeLow + rand.IntN(portRangeHigh-portRangeLow)
		if _, used := portState.recent[p]; used {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(p)))
		if err != nil {
			continue
		}
		l.Close()
		rememberPort(p)
		return p, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	rememberPort(p)
	return p, nil
}

func rememberPort(p int) {
	if portState.recent == nil {
		portState.recent = make(map[int]struct{}, recentPorts)
	}
	if len(portState.order) == recentPorts {
		delete(portState.recent, portState.order[0])
		portState.order = portState.order[1:]
	}
	portState.recent[p] = struct{}{}
	portState.order = append(portState.order, p)
}
