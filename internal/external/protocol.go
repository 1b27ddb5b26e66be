package external

import (
	"fmt"
	"sort"
	"sync"
)

var protocols struct {
	mu sync.RWMutex
	m  map[string]Protocol
}

// RegisterProtocol makes p available under p.Name() for `protocol:`.
// Protocol files call it from init. It panics on a duplicate name, which is
// a programming error.
func RegisterProtocol(p Protocol) {
	protocols.mu.Lock()
	defer protocols.mu.Unlock()
	if protocols.m == nil {
		protocols.m = map[string]Protocol{}
	}
	if _, dup := protocols.m[p.Name()]; dup {
		panic(fmt.Sprintf("external: protocol %q registered twice", p.Name()))
	}
	protocols.m[p.Name()] = p
}

// LookupProtocol returns the protocol registered under name, or an error
// wrapping ErrUnknownProtocol that lists the ones that exist.
func LookupProtocol(name string) (Protocol, error) {
	protocols.mu.RLock()
	defer protocols.mu.RUnlock()
	if p, ok := protocols.m[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("protocol %q is not supported in this build (supported: %v): %w",
		name, protocolNamesLocked(), ErrUnknownProtocol)
}

// ProtocolNames returns the registered protocol names, sorted.
func ProtocolNames() []string {
	protocols.mu.RLock()
	defer protocols.mu.RUnlock()
	return protocolNamesLocked()
}

func protocolNamesLocked() []string {
	names := make([]string, 0, len(protocols.m))
	for n := range protocols.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
