package spec

import (
	"fmt"

	"github.com/flowctl/flowctl/internal/flow"
)

// ProtocolNone marks a component that moves its data itself (`protocol:
// none`): flowctl starts it, waits for it to register with the control
// plane (through any of its services), watches its heartbeats and restarts
// it, but streams no events to or from it.
const ProtocolNone = "none"

// selfMoving checks the components that move their data themselves: they
// are started by flowctl (command or image; a url with protocol none is
// reported by runner), and their inputs, which order
// their start, are components of the same kind — an edge between one of
// them and a component flowctl streams events through carries nothing.
func (p *parser) selfMoving(pl *Pipeline) {
	none := func(c *Component) bool { return c != nil && c.Protocol == ProtocolNone }
	byName := map[string]*Component{}
	for _, c := range pl.Components() {
		if _, dup := byName[c.Name]; !dup {
			byName[c.Name] = c
		}
	}
	check := func(c *Component, deadLetter bool) {
		if !none(c) {
			return
		}
		at, _ := lookupPos(c.Positions, "protocol")
		what := fmt.Sprintf("%s %q", c.Role, c.Name)
		switch {
		case deadLetter:
			p.errorf(at, "remove `protocol: none`: flowctl sends failed events to the dead-letter sink, so it must speak a protocol (auto, grpc, flowctl-v1, stdio, http) or be a built-in",
				"the dead_letter sink cannot move its data itself")
		case c.Runner == RunBuiltin:
			p.errorf(at, "remove `protocol:`; a built-in runs inside flowctl and gets its events from it",
				"%s is a built-in (type %q) and cannot have protocol none", what, c.Type)
		}
	}
	for _, c := range pl.Components() {
		check(c, false)
	}
	check(pl.DeadLetter, true)
	for _, c := range pl.Components() {
		for _, in := range c.Inputs {
			up := byName[in.From]
			if up == nil || none(up) == none(c) {
				continue
			}
			if none(c) {
				p.errorf(in.Pos, fmt.Sprintf("remove %q from its inputs (it moves its data itself and reads from its upstream on its own), or remove `protocol: none` so that flowctl streams %q's events to it", in.From, in.From),
					"%s (protocol: none) reads from %q, whose events flowctl streams: a component that moves its data itself receives nothing from flowctl", noneWhat(c), in.From)
				continue
			}
			hint := fmt.Sprintf("read from a component flowctl streams events from, or run %q with `protocol: none` as well", c.Name)
			if c.Role == flow.RoleSink && c.Runner == RunBuiltin {
				hint = fmt.Sprintf("read from a component flowctl streams events from; %q moves its data itself (protocol: none), so a built-in sink after it never gets an event", in.From)
			}
			p.errorf(in.Pos, hint, "%s reads from %q, which moves its data itself (protocol: none): no event will come", noneWhat(c), in.From)
		}
	}
}

func noneWhat(c *Component) string { return fmt.Sprintf("%s %q", c.Role, c.Name) }
