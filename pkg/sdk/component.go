package sdk

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Processor turns each input event into zero or more output events.
//
// Process is called once per input event, one event at a time per stream,
// in input order. It may block; ctx ends when flowctl goes away. Returning
// an error fails that event only (flowctl applies the pipeline's on_error);
// wrap it with Permanent when retrying cannot help. Returning no events and
// no error filters the event out. e is the processor's own: it may change
// and return it. A panic fails the event instead of the process.
type Processor interface {
	Process(ctx context.Context, e *Event) ([]*Event, error)
}

// ProcessorFunc adapts a function to a Processor.
type ProcessorFunc func(ctx context.Context, e *Event) ([]*Event, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, e *Event) ([]*Event, error) { return f(ctx, e) }

// Sink writes batches of events.
//
// Write is called once per batch, one batch at a time per stream, and must
// return only once the events are durably written: its return is the
// acknowledgement flowctl counts as delivery. It may block; ctx ends when
// flowctl goes away. A nil error acknowledges every event; a *BatchError
// fails only the events it lists; any other error fails the whole batch.
// The same batch may be written twice after a crash (BatchInfo says
// Redelivered): write idempotently where you can, for example keyed by
// Event.ID.
type Sink interface {
	Write(ctx context.Context, events []*Event) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, events []*Event) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, events []*Event) error { return f(ctx, events) }

// Source produces events.
//
// Run is called once, when flowctl opens the source's stream. It calls emit
// for each group of events and returns nil when the source is exhausted or
// ctx's error when ctx ends (SIGTERM, or flowctl went away); after it
// returns Serve waits for flowctl to acknowledge what was emitted, then
// returns. emit blocks while flowctl has granted no credit (backpressure)
// and returns an error only when ctx ends or the SDK is shutting down; Run
// should then return. Events passed to emit belong to the SDK afterwards.
// emit splits more than MaxBatch events into several batches.
type Source interface {
	Run(ctx context.Context, emit EmitFunc) error
}

// EmitFunc sends events to flowctl as one batch; see Source.
type EmitFunc func(ctx context.Context, events ...*Event) error

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context, emit EmitFunc) error

// Run calls f.
func (f SourceFunc) Run(ctx context.Context, emit EmitFunc) error { return f(ctx, emit) }

// Acker is implemented by a source that wants to know when flowctl has
// fully processed a batch downstream (all of it reached the sinks, the dead
// letter sink or was dropped as on_error says), for example to checkpoint
// its position. Acked is called once per acknowledged batch with the events
// of that batch, in the order acknowledgements arrive, which need not be
// emission order. It must not block for long: it holds up the stream.
type Acker interface {
	Acked(events []*Event)
}

// MaxBatch is the largest batch the SDK sends from a source; emit splits
// larger groups.
const MaxBatch = 256

// BatchError fails some events of a sink batch and not the others.
type BatchError struct {
	// Failed maps an index in the batch to why that event failed.
	Failed map[int]error
}

// Error lists the failed indexes and their errors.
func (b *BatchError) Error() string {
	idx := make([]int, 0, len(b.Failed))
	for i := range b.Failed {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	parts := make([]string, 0, len(idx))
	for _, i := range idx {
		parts = append(parts, fmt.Sprintf("event %d: %v", i, b.Failed[i]))
	}
	return fmt.Sprintf("%d events failed: %s", len(idx), strings.Join(parts, "; "))
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as one that retrying cannot fix (for example bad
// input), so flowctl skips its retries and applies on_error at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// ErrFlowctlGone is returned by Serve when the flowctl that started the
// component died: its control plane was unreachable for LostAfter heartbeat
// intervals, or the component's parent process changed. main should exit.
var ErrFlowctlGone = errors.New("flowctl is gone")

// Batch describes the batch a Process or Write call belongs to.
type Batch struct {
	// Seq is the batch's sequence number, unique per hop for the run.
	Seq uint64
	// Redelivered is true when flowctl sent this seq before (to this or an
	// earlier instance) without getting an answer: its side effects may
	// already have happened.
	Redelivered bool
}

type batchKey struct{}

// BatchInfo returns the batch that a Process or Write call is handling.
func BatchInfo(ctx context.Context) (Batch, bool) {
	b, ok := ctx.Value(batchKey{}).(Batch)
	return b, ok
}

func withBatch(ctx context.Context, b Batch) context.Context {
	return context.WithValue(ctx, batchKey{}, b)
}
