package controlplane

import (
	"sort"
	"time"
)

// Attempt is a registration the control plane saw: made, or refused by
// its guard because the run was not starting a component of that id.
type Attempt struct {
	ID       string
	Protocol string // ProtocolStream, ProtocolV1 or ProtocolLegacy
	At       time.Time
	Refused  bool
}

// maxRefused bounds the refused registrations a guard remembers.
const maxRefused = 32

// noteRefused remembers a refused registration. g.mu must be held.
func (g *Guard) noteRefusedLocked(id, protocol string) {
	if len(g.refused) == maxRefused {
		g.refused = append(g.refused[:0], g.refused[1:]...)
	}
	g.refused = append(g.refused, Attempt{ID: id, Protocol: protocol, At: time.Now(), Refused: true})
}

// RegisteredSince returns the registrations made at or after since (by
// the registry's clock) and those the guard refused since then (by the
// system clock), oldest first, for an error that says which ids did
// register while flowctl waited for another.
func (s *Server) RegisteredSince(since time.Time) []Attempt {
	var out []Attempt
	for _, e := range s.reg.List() {
		if !e.RegisteredAt.Before(since) {
			out = append(out, Attempt{ID: e.ID, Protocol: e.Protocol, At: e.RegisteredAt})
		}
	}
	if g := s.guard; g != nil {
		g.mu.Lock()
		for _, a := range g.refused {
			if !a.At.Before(since) {
				out = append(out, a)
			}
		}
		g.mu.Unlock()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}
