package graph

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/flowctl/flowctl/internal/spec"
)

// ErrReloadNeedsRestart is returned (wrapped, with the reason) when a new
// pipeline cannot be applied to a running one in place: the dead-letter
// sink or the pipeline's name changed, or (found by the engine) a
// component to change already finished.
var ErrReloadNeedsRestart = errors.New("the change needs a restart of the run")

// ReloadPlan is what applying a new pipeline to a running one does, by
// component name. It is decided from the two graphs alone, so the engine
// (which applies it) and the server (which only asks whether a reload is
// possible) share it without the server importing the engine.
type ReloadPlan struct {
	// Start are the components added (topological order of the new
	// pipeline).
	Start []string
	// Stop are the components removed, or whose role changed under the
	// same name (they are also in Start); reverse topological order of the
	// old pipeline.
	Stop []string
	// Change are the components whose spec changed (config, on_error,
	// type, command, image, buffer, parallelism...): drained, closed and
	// started again from the new spec (topological order).
	Change []string
	// Unchanged keep running as they are, the dead-letter sink included
	// (topological order). Their inputs may still change.
	Unchanged []string
}

// CheckReload returns what a reload of a run of old does to apply next,
// or an error wrapping ErrReloadNeedsRestart naming why next cannot be
// applied in place. (The engine may still refuse a change CheckReload
// allows, when the component concerned already finished in the run.)
func CheckReload(old, next *spec.Pipeline) (ReloadPlan, error) {
	og, err := Build(old)
	if err != nil {
		return ReloadPlan{}, fmt.Errorf("reload: build graph: %w", err)
	}
	ng, err := Build(next)
	if err != nil {
		return ReloadPlan{}, fmt.Errorf("reload: build graph: %w", err)
	}
	if err := RestartNeeded(old.Name, og.DeadLetter(), next.Name, ng); err != nil {
		return ReloadPlan{}, err
	}
	return PlanReload(og.Nodes(), ng), nil
}

// RestartNeeded returns an error wrapping ErrReloadNeedsRestart when going
// from a pipeline called oldName with the dead-letter sink oldDead (nil:
// none) to ng needs a restart.
func RestartNeeded(oldName string, oldDead *Node, newName string, ng *Graph) error {
	newDead := ng.DeadLetter()
	switch {
	case oldName != newName:
		return RestartError("the pipeline's name changed (%q → %q)", oldName, newName)
	case oldDead == nil && newDead != nil:
		return RestartError("a dead-letter sink was added")
	case oldDead != nil && newDead == nil:
		return RestartError("the dead-letter sink was removed")
	case oldDead != nil && (oldDead.Name != newDead.Name || !SameSpec(oldDead.Component, newDead.Component)):
		return RestartError("the dead-letter sink %q changed", oldDead.Name)
	}
	return nil
}

// RestartError is an error wrapping ErrReloadNeedsRestart with the reason.
func RestartError(format string, a ...any) error {
	return fmt.Errorf("reload: %s: %w", fmt.Sprintf(format, a...), ErrReloadNeedsRestart)
}

// PlanReload compares the running components cur (nodes in topological
// order) with ng.
func PlanReload(cur []*Node, ng *Graph) ReloadPlan {
	var p ReloadPlan
	for i := len(cur) - 1; i >= 0; i-- {
		on := cur[i]
		if on.DeadLetter {
			continue
		}
		if nn := ng.Node(on.Name); nn == nil || nn.DeadLetter || nn.Role != on.Role {
			p.Stop = append(p.Stop, on.Name)
		}
	}
	old := make(map[string]*Node, len(cur))
	for _, on := range cur {
		old[on.Name] = on
	}
	for _, nn := range ng.Nodes() {
		on := old[nn.Name]
		switch {
		case nn.DeadLetter:
			p.Unchanged = append(p.Unchanged, nn.Name)
		case on == nil || on.DeadLetter || on.Role != nn.Role:
			p.Start = append(p.Start, nn.Name)
		case SameSpec(on.Component, nn.Component):
			p.Unchanged = append(p.Unchanged, nn.Name)
		default:
			p.Change = append(p.Change, nn.Name)
		}
	}
	return p
}

// SameSpec reports whether a and b run the same way: everything but their
// inputs (edges, which a reload rewires without touching the component),
// their positions in the file, and how run --watch builds their program
// (a rebuilt program restarts its component by itself).
func SameSpec(a, b *spec.Component) bool {
	strip := func(c *spec.Component) spec.Component {
		s := *c
		s.Inputs, s.Pos, s.Positions = nil, spec.Pos{}, nil
		s.Build, s.Watch = nil, nil
		return s
	}
	return reflect.DeepEqual(strip(a), strip(b))
}
