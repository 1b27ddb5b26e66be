package expr

import (
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"

	"github.com/flowctl/flowctl/internal/flow"
)

// eventVars is the CEL activation over one event. It has flow.Event as its
// underlying type so that a *flow.Event converts to it for free: evaluating
// an expression then allocates no activation and no variable map, which is
// what lets a filter keep up with a million events a second.
type eventVars flow.Event

// ResolveName returns the value of a declared variable. Values are handed to
// CEL as plain Go values; CEL reads fields of the payload's
// map[string]any directly, without wrapping it.
func (a *eventVars) ResolveName(name string) (any, bool) {
	ev := (*flow.Event)(a)
	switch name {
	case "data":
		v, err := ev.Value()
		if err != nil {
			// Eval reports the parse error before evaluating; here the
			// variable simply has no value.
			return nil, false
		}
		return v, true
	case "id":
		return ev.ID, true
	case "type":
		return ev.Type, true
	case "source":
		return ev.Source, true
	case "subject":
		return ev.Subject, true
	case "time":
		return ev.Time, true
	case "metadata":
		if ev.Metadata == nil {
			return emptyMetadata, true
		}
		return ev.Metadata, true
	}
	return nil, false
}

// emptyMetadata stands for an event without metadata, so that
// `"k" in metadata` is false instead of an error.
var emptyMetadata = map[string]string{}

// Parent is nil: an event is the whole scope of an expression.
func (a *eventVars) Parent() interpreter.Activation { return nil }

// indexVars is the activation of a program compiled WithIndex.
type indexVars struct {
	i types.Int
}

// ResolveName returns i, the index of the generated event.
func (a *indexVars) ResolveName(name string) (any, bool) {
	if name == "i" {
		return a.i, true
	}
	return nil, false
}

// Parent is nil: the index is the whole scope.
func (a *indexVars) Parent() interpreter.Activation { return nil }

var (
	_ interpreter.Activation = (*eventVars)(nil)
	_ interpreter.Activation = (*indexVars)(nil)
)
