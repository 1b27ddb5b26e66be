package flow

import (
	"context"
	"errors"
)

// BatchProcessor is an optional interface of a Processor that handles a
// whole batch in one call, such as an external component for which a call
// is a round trip. The engine calls ProcessBatch instead of Process when a
// processor implements it, and still applies on_error per event.
type BatchProcessor interface {
	Processor
	// ProcessBatch handles in and returns, per input index, the events
	// produced (outs has len(in) entries; nil or empty: none) and the
	// events that failed (failures maps an input index to its error; such
	// an index's outputs are ignored). It must not modify in. An error
	// means the whole batch could not be handled (the component is gone,
	// or ctx ended): the engine applies on_error to every event of it.
	// It blocks until the answer arrives; ctx bounds the wait. It must be
	// safe for concurrent use when parallelism > 1.
	ProcessBatch(ctx context.Context, in []*Event) (outs [][]*Event, failures map[int]error, err error)
}

// ErrStopRun marks an error after which the run cannot go on whatever the
// component's on_error says: an external component that keeps crashing,
// or one whose restart_policy forbids a restart. The engine stops the run
// with it instead of retrying, dropping or dead-lettering the events.
var ErrStopRun = errors.New("the run cannot go on")

// Bounded is implemented by a source that can say whether it ends by
// itself (a generator with a count, a file it does not follow, standard
// input). A source that does not implement it is taken as unbounded.
type Bounded interface {
	Bounded() bool
}

// ErrPermanent marks an event's failure that trying again cannot fix (an
// HTTP endpoint that answered 400, an external component that said so).
// The engine does not spend on_error's retries on it: the policy's next
// step (dead_letter, drop or stop) applies at once.
var ErrPermanent = errors.New("permanent failure")
