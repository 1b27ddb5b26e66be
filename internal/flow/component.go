package flow

import (
	"context"
	"log/slog"
)

// Role says where a component sits in a pipeline.
type Role string

// The three roles of a component.
const (
	RoleSource    Role = "source"
	RoleProcessor Role = "processor"
	RoleSink      Role = "sink"
)

// Component lifecycle, the same for every role and every implementation:
//
//  1. construct: ComponentSpec.New builds it from a validated config; no
//     side effects (no files opened, no sockets).
//  2. validate: ComponentSpec.Validate is pure and fast and already ran when
//     the pipeline file was validated.
//  3. open: Open acquires resources (files, connections, listeners).
//  4. run: Source.Run, Processor.Process or Sink.Write are called.
//  5. close: Close releases what Open acquired; it works after a partial
//     Open and is called exactly once.
type Opener interface {
	// Open acquires the component's resources. It blocks until they are
	// ready; ctx bounds the wait.
	Open(ctx context.Context) error
}

// Closer releases a component's resources.
type Closer interface {
	// Close releases what Open acquired. It blocks until done (a sink
	// flushes); ctx bounds the wait. It is safe after a partial Open.
	Close(ctx context.Context) error
}

// Emitter is what a source hands its events to.
type Emitter interface {
	// Emit hands a batch (at most 256 events) to the pipeline. It blocks
	// while downstream queues are full (backpressure) and returns ctx.Err()
	// when ctx is done. The engine owns the events and the slice afterwards.
	// done, if not nil, is called once when every event derived from the
	// batch was written, filtered, dropped or dead-lettered (err nil), or
	// the run was stopped before that (err non-nil). A source checkpoints
	// on done.
	Emit(ctx context.Context, batch []*Event, done func(err error)) error
}

// Rejecter is implemented by an Emitter that also takes the events a source
// read but refuses to emit as good ones — a malformed line — so that they
// are not lost in silence. The engine's emitter implements it; a source
// checks with a type assertion and, without one, emits the events as they
// are.
type Rejecter interface {
	// Reject hands events, with why each was refused (errs[i] for
	// events[i]), to the source's on_error policy: by default the
	// dead-letter sink, which records the reason, or, without one, they
	// are dropped and counted (the run's summary and exit status say so).
	// It blocks and returns like Emit, owns the events afterwards, and
	// calls done, if not nil, once they were dead-lettered or dropped.
	Reject(ctx context.Context, events []*Event, errs []error, done func(err error)) error
}

// Source produces events.
type Source interface {
	// Run reads events and emits them in batches until the source is
	// exhausted (returns nil: a bounded source) or ctx is done (returns
	// nil or ctx.Err()). A batch is what is ready now: a source never
	// waits to fill one. Any other error stops the pipeline.
	Run(ctx context.Context, out Emitter) error
}

// Processor transforms events one at a time.
type Processor interface {
	// Process handles one event, appending what it produces (zero or more
	// events) to out and returning the extended slice. It must not modify
	// in; to change an event it makes a new one. An error means this event
	// failed: the engine applies the component's on_error policy. It must be
	// safe for concurrent use when parallelism > 1.
	Process(ctx context.Context, in *Event, out []*Event) ([]*Event, error)
}

// Sink writes events out.
type Sink interface {
	// Write writes a batch in order and returns once it was handed over
	// (written to the file, accepted by the server). It returns nil, a
	// *BatchError naming the events that failed, or an error for the whole
	// batch; the engine applies on_error to the failed events. ctx bounds
	// the write. The sink must not keep the slice after returning.
	Write(ctx context.Context, batch []*Event) error
}

// BuildContext is what a constructor gets.
type BuildContext struct {
	// Name is the component's name in the pipeline.
	Name string
	// Pipeline is the pipeline's name.
	Pipeline string
	// Config is the validated config, defaults applied.
	Config Config
	// Dir is the directory of the pipeline file: relative paths in config
	// are resolved against it.
	Dir string
	// Logger is scoped with the pipeline and component names.
	Logger *slog.Logger
	// StateDir is the pipeline's own state directory (where its
	// checkpoints are), for a component that keeps durable state of its
	// own there, such as a response cache; "" when the run keeps no
	// state.
	StateDir string
}
