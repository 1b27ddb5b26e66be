package external

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// ProcessorConn carries batches to one running external processor over one
// protocol connection.
type ProcessorConn interface {
	// Process sends batch and blocks until the component answered every
	// event of it. It is safe for concurrent use: several batches may be in
	// flight, bounded by the component's credit (or the protocol's window),
	// which Process honours by blocking before it sends. ctx bounds the wait.
	//
	// The conn does not keep batch after returning; the events stay owned by
	// the caller. A nil error means every input index has an entry in
	// Result.Outputs (maybe empty) or Result.Failures. A non-nil error means
	// the connection broke (or ctx ended) and the batch was not answered:
	// the caller redelivers it on the next connection after a restart. An
	// error wrapping ErrNotSent says the batch never reached the component
	// (the conn was broken before), so resending it is not counted as a
	// redelivery.
	Process(ctx context.Context, batch []*flow.Event) (Result, error)
	// Close ends the connection: it stops sending, lets the component see
	// end of input where the protocol has one, and releases resources.
	// Batches still in flight fail with ErrClosed. Safe to call twice.
	Close() error
}

// Result is a component's answer to one batch.
type Result struct {
	// Outputs holds, per input index, the events the component produced
	// for that input (nil or empty: none). len(Outputs) == len(batch).
	Outputs [][]*flow.Event
	// Failures maps an input index to the error the component reported
	// for it. A failure wrapping ErrPermanent should not be retried.
	Failures map[int]error
}

// SinkConn carries batches to one running external sink.
type SinkConn interface {
	// Write sends batch and blocks until the component acknowledged it.
	// Concurrency, ownership and the meaning of err are as for
	// ProcessorConn.Process; failures maps input indexes the sink could not
	// write to their errors.
	Write(ctx context.Context, batch []*flow.Event) (failures map[int]error, err error)
	// Close ends the connection; see ProcessorConn.Close.
	Close() error
}

// SourceConn receives batches from one running external source.
type SourceConn interface {
	// Recv blocks until the source sends a batch, and returns it with its
	// sequence number. Recv is called from one goroutine. An error means
	// the connection broke, ended (io.EOF: the source is exhausted) or ctx
	// ended. The caller owns the events.
	Recv(ctx context.Context) (seq uint64, batch []*flow.Event, err error)
	// Ack tells the source that the batch with seq was fully handled
	// downstream, so it may checkpoint. Safe for concurrent use with Recv.
	// Protocols without acknowledgements return nil.
	Ack(ctx context.Context, seq uint64) error
	// Close ends the connection; see ProcessorConn.Close.
	Close() error
}

// Conns is what a protocol connection gives for a component: exactly the
// field of the component's role is set.
type Conns struct {
	Processor ProcessorConn
	Sink      SinkConn
	Source    SourceConn
}

// Close closes whichever conn is set.
func (c Conns) Close() error {
	switch {
	case c.Processor != nil:
		return c.Processor.Close()
	case c.Sink != nil:
		return c.Sink.Close()
	case c.Source != nil:
		return c.Source.Close()
	}
	return nil
}

// Launch is what a protocol needs from the process that runs a component.
// A protocol's Launch is called before every start (a restart too), so it
// may pick a fresh port each time.
type Launch struct {
	// Env is extra environment for the child (for example PORT). The
	// driver adds the control-plane variables itself.
	Env map[string]string
	// Stdio asks for the child's stdin and stdout as the protocol's pipes
	// (Instance.Stdin, Instance.Stdout); its stdout is then not logged.
	Stdio bool
}

// Instance is one started incarnation of a component, as a protocol sees
// it when it connects.
type Instance struct {
	// Component is the component's validated definition.
	Component *spec.Component
	// ID is the component's id for the control plane
	// (FLOWCTL_COMPONENT_ID): its name in the pipeline.
	ID string
	// Started is when this incarnation started: a protocol that waits for
	// a registration waits for one made since then
	// (controlplane.Registry.WaitRegisteredSince), not for the previous
	// incarnation's.
	Started time.Time
	// Env is the complete environment the process got (nil for a
	// component flowctl did not start, such as a remote url).
	Env map[string]string
	// Stdin and Stdout are the child's pipes when Launch.Stdio was set.
	// Closing Stdin is the child's signal to finish.
	Stdin  io.WriteCloser
	Stdout io.ReadCloser
	// Exited is closed when the process exits (nil for a remote
	// component). Ready must give up when it is closed.
	Exited <-chan struct{}
	// Logger is scoped with the pipeline and component names.
	Logger *slog.Logger
}

// Protocol connects flowctl to an external component over one wire
// protocol. Implementations are stateless values: one serves every
// component and every restart.
//
// Lifecycle per incarnation:
//
//  1. Launch: what the child needs (env, stdio pipes); called before start.
//  2. the driver starts the process (nothing for a remote component).
//  3. Ready: wait until the component can be reached — registered in the
//     control plane, its HTTP health answering, stdio open — then connect
//     and return the conns for its role. ctx carries startup_timeout.
//  4. the conns carry batches until they fail or are closed.
type Protocol interface {
	// Name is the protocol's name as written in `protocol:`.
	Name() string
	// Launch returns what a child speaking this protocol needs. It does
	// not block.
	Launch(rt *Runtime, c *spec.Component) (Launch, error)
	// Ready blocks until the component is reachable and connected, ctx is
	// done or inst.Exited is closed, and returns the conns for the
	// component's role (c.Role).
	Ready(ctx context.Context, rt *Runtime, inst *Instance) (Conns, error)
}

// Runtime is what protocols, the supervisor and the adapters share for one
// run of a pipeline.
type Runtime struct {
	// Pipeline is the pipeline's name.
	Pipeline string
	// Dir is the pipeline file's directory: relative commands and
	// working_dir are resolved against it.
	Dir string
	// Logger is the run's logger; components get it scoped with their
	// names.
	Logger *slog.Logger
	// ControlPlane is the embedded control plane, nil when no component
	// needs one (stdio and http only).
	ControlPlane *controlplane.Server
	// Endpoint is the control plane's host:port (FLOWCTL_ENDPOINT).
	Endpoint string
	// HeartbeatInterval is passed as FLOWCTL_HEARTBEAT_INTERVAL [10s].
	HeartbeatInterval time.Duration
	// HeartbeatTTL, if positive, is passed as FLOWCTL_TTL: how long a
	// component's registration stays healthy without a heartbeat. Zero
	// leaves FLOWCTL_TTL unset (the SDK then uses 3 intervals).
	HeartbeatTTL time.Duration
	// Output receives the children's captured output lines, each already
	// prefixed with the component name; nil means the run's stderr.
	Output io.Writer
	// Drivers looks up the driver that starts a component by name
	// ("process", "docker") [drivers.Lookup]; tests give a fake.
	Drivers func(name string) (drivers.Driver, error)

	// v1procs holds, per flowctl.v1 processor name, what its incarnations
	// share (*v1Shared, v1_process.go).
	v1procs sync.Map
}
