package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

// How flowctl drives the earlier flowctl.v1 services (docs/protocols-v1.md
// says the same for users). They have no sequence numbers, no
// acknowledgements and no credits, so flowctl adds its own bookkeeping
// where the contract leaves room and is plain about where it does not:
//
//   - Processor: one long-lived Process stream per worker, half-closed
//     only when the incarnation stops; outputs are matched to inputs by
//     id, then by order, and an input without an answer is settled when
//     the stream went quiet (v1_process.go says exactly how).
//   - Consumer (sink): one Consume stream per batch; the ConsumeResponse
//     at its end answers the batch. events_failed = 0 means all written;
//     when all failed, the batch fails (on_error retries it); when only
//     some failed the contract does not say which, so every event of the
//     batch is reported failed, permanently (retrying would write the
//     others twice): they go to the dead-letter sink with the consumer's
//     errors.
//   - Source: one StreamEvents stream for the component's lifetime, with
//     the component's config as params; Recv returns what has arrived (up
//     to 256 events). A source cannot be told what was processed, so after
//     a crash it resumes wherever it decides: delivery from a flowctl.v1
//     source is at-most-once (or whatever its own resume gives).
//
// A consumer that never ends its stream after flowctl closed its side
// would hold every batch forever; after twice v1EndWait without an answer
// flowctl ends the stream itself, takes the batch as written and logs a
// warning once (at-most-once).
//
// Several consumer batches are in flight at once, each on its own stream,
// at most v1Window of them per component.
const v1Window = 8

// v1EndWait is half of how long flowctl waits for a flowctl.v1 consumer's
// answer after it closed its side (a variable for tests).
var v1EndWait = 5 * time.Second

// v1Protocol drives components written against the earlier flowctl.v1
// services.
type v1Protocol struct{}

func (v1Protocol) Name() string { return ProtocolV1 }

// Launch gives the child a free port: flowctl.v1 components listen on
// PORT and register it as their endpoint.
func (v1Protocol) Launch(_ *Runtime, c *spec.Component) (Launch, error) {
	return portLaunch(c, true)
}

func (v1Protocol) Ready(ctx context.Context, rt *Runtime, inst *Instance) (Conns, error) {
	e, err := waitRegistration(ctx, rt, inst)
	if err != nil {
		return Conns{}, err
	}
	if e.Protocol != controlplane.ProtocolV1 {
		return Conns{}, fmt.Errorf("component %q registered through flowctl's native control plane, not flowctl.v1's: set `protocol: grpc` (or `auto`)", inst.ID)
	}
	return connectV1(ctx, rt, inst, e.Endpoint)
}

// connectV1 dials a flowctl.v1 component and prepares the conn of its
// role. An earlier component may register before it listens, so the first
// call waits for the endpoint to accept (bounded by ctx).
func connectV1(ctx context.Context, rt *Runtime, inst *Instance, endpoint string) (Conns, error) {
	cc, err := DialEndpoint(endpoint, inst.Env[EnvStreamToken])
	if err != nil {
		return Conns{}, err
	}
	role := inst.Component.Role
	info, err := V1Info(ctx, cc, role, grpc.WaitForReady(true))
	switch {
	case status.Code(err) == codes.Unimplemented:
		// GetInfo is optional in practice; the endpoint answers.
	case err != nil:
		cc.Close()
		return Conns{}, fmt.Errorf("component %q at %s: %w", inst.ID, endpoint, err)
	default:
		if r := controlplane.RoleFromV1(info.GetType()); r != "" && r != role {
			cc.Close()
			return Conns{}, fmt.Errorf("component %q says it is a %s, but the pipeline uses it as a %s", inst.ID, r, role)
		}
	}
	log := inst.Logger
	if log == nil {
		log = rt.Logger
	}
	base := &v1Base{cc: cc, log: log, sem: make(chan struct{}, v1Window)}
	base.ctx, base.cancel = context.WithCancel(context.Background())
	switch role {
	case flow.RoleProcessor:
		timeout, err := V1AnswerTimeout(inst.Component)
		if err != nil {
			base.close()
			return Conns{}, err
		}
		p, err := newV1ProcessorConn(base, flowctlv1.NewProcessorServiceClient(cc), rt.v1Shared(inst.ID), timeout, v1Workers(inst.Component))
		if err != nil {
			base.close()
			return Conns{}, fmt.Errorf("component %q at %s: %w", inst.ID, endpoint, err)
		}
		return Conns{Processor: p}, nil
	case flow.RoleSink:
		return Conns{Sink: &v1ConsumerConn{v1Base: base, client: flowctlv1.NewConsumerServiceClient(cc)}}, nil
	case flow.RoleSource:
		src, err := newV1SourceConn(base, flowctlv1.NewSourceServiceClient(cc), configParams(inst.Component.Config))
		if err != nil {
			base.close()
			return Conns{}, fmt.Errorf("component %q at %s: %w", inst.ID, endpoint, err)
		}
		return Conns{Source: src}, nil
	}
	base.close()
	return Conns{}, fmt.Errorf("component %q: unknown role %q", inst.ID, role)
}

// ConnectV1 connects to a flowctl.v1 component's endpoint directly,
// without the control plane: for the conformance command and tests. cfg
// is passed to a source as StreamEvents params.
func ConnectV1(ctx context.Context, endpoint string, role flow.Role, cfg flow.Config, log *slog.Logger) (Conns, error) {
	inst := &Instance{Component: &spec.Component{Name: "component", Role: role, Config: cfg}, ID: "component", Logger: log}
	return connectV1(ctx, &Runtime{Logger: log}, inst, endpoint)
}

// V1Info asks a flowctl.v1 component for its ComponentInfo through the
// service of role (ConsumerService for a sink).
func V1Info(ctx context.Context, cc grpc.ClientConnInterface, role flow.Role, opts ...grpc.CallOption) (*flowctlv1.ComponentInfo, error) {
	var (
		info *flowctlv1.ComponentInfo
		err  error
	)
	switch role {
	case flow.RoleSource:
		info, err = flowctlv1.NewSourceServiceClient(cc).GetInfo(ctx, &emptypb.Empty{}, opts...)
	case flow.RoleProcessor:
		info, err = flowctlv1.NewProcessorServiceClient(cc).GetInfo(ctx, &emptypb.Empty{}, opts...)
	case flow.RoleSink:
		info, err = flowctlv1.NewConsumerServiceClient(cc).GetInfo(ctx, &emptypb.Empty{}, opts...)
	default:
		return nil, fmt.Errorf("get info: unknown role %q", role)
	}
	if err != nil {
		return nil, fmt.Errorf("get info from the flowctl.v1 %s service: %w", role, err)
	}
	return info, nil
}

// V1Health asks a flowctl.v1 component for its health through the service
// of role.
func V1Health(ctx context.Context, cc grpc.ClientConnInterface, role flow.Role) (*flowctlv1.HealthCheckResponse, error) {
	var (
		h   *flowctlv1.HealthCheckResponse
		err error
	)
	req := &flowctlv1.HealthCheckRequest{IncludeDetails: true}
	switch role {
	case flow.RoleSource:
		h, err = flowctlv1.NewSourceServiceClient(cc).HealthCheck(ctx, req)
	case flow.RoleProcessor:
		h, err = flowctlv1.NewProcessorServiceClient(cc).HealthCheck(ctx, req)
	case flow.RoleSink:
		h, err = flowctlv1.NewConsumerServiceClient(cc).HealthCheck(ctx, req)
	default:
		return nil, fmt.Errorf("health: unknown role %q", role)
	}
	if err != nil {
		return nil, fmt.Errorf("health of the flowctl.v1 %s service: %w", role, err)
	}
	return h, nil
}

// configParams turns a component's config into StreamEvents params:
// strings as they are, other values as JSON.
func configParams(cfg flow.Config) map[string]string {
	if len(cfg) == 0 {
		return nil
	}
	params := make(map[string]string, len(cfg))
	for k, v := range cfg {
		switch v := v.(type) {
		case string:
			params[k] = v
		case nil:
			params[k] = ""
		default:
			b, err := json.Marshal(v)
			if err != nil {
				continue
			}
			params[k] = string(b)
		}
	}
	return params
}

// v1Base is what the flowctl.v1 conns share: the connection, a context
// that Close cancels, and the window of concurrent batch streams.
type v1Base struct {
	cc     *grpc.ClientConn
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}

	closed    atomic.Bool
	closeOnce sync.Once
	warned    atomic.Bool
}

// acquire takes a place in the window.
func (b *v1Base) acquire(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.ctx.Done():
		return ErrClosed
	}
}

func (b *v1Base) releaseSlot() { <-b.sem }

// streamCtx returns a context for one batch stream, ended by ctx or by
// Close.
func (b *v1Base) streamCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	sctx, cancel := context.WithCancel(b.ctx)
	stop := context.AfterFunc(ctx, cancel)
	return sctx, func() { stop(); cancel() }
}

// brokenErr is the error for a batch whose stream broke: ErrClosed after
// Close, ctx's error when ctx ended, the stream's error otherwise.
func (b *v1Base) brokenErr(ctx context.Context, what string, err error) error {
	switch {
	case b.closed.Load():
		return fmt.Errorf("%s: %w", what, ErrClosed)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (b *v1Base) warnNoEnd(what string) {
	if b.warned.CompareAndSwap(false, true) {
		b.log.Warn(fmt.Sprintf("the flowctl.v1 component does not end its %s stream after flowctl closed its side; flowctl ends each one after %s of silence and takes what arrived (at-most-once)", what, v1EndWait))
	}
}

func (b *v1Base) close() error {
	var err error
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.cancel()
		err = b.cc.Close()
	})
	return err
}

// endedCleanly reports whether a stream's end status means the component
// finished the stream: OK, or the echo of flowctl's own end of input (a
// handler that returns the io.EOF its Recv gave ends with UNKNOWN "EOF").
func endedCleanly(err error) bool {
	if err == nil || errors.Is(err, io.EOF) {
		return true
	}
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unknown && strings.TrimSpace(s.Message()) == "EOF"
}

// v1ConsumerConn is a SinkConn over flowctl.v1 ConsumerService.
type v1ConsumerConn struct {
	*v1Base
	client flowctlv1.ConsumerServiceClient
}

// Write implements SinkConn; see the comment on v1Window.
func (s *v1ConsumerConn) Write(ctx context.Context, batch []*flow.Event) (map[int]error, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	defer s.releaseSlot()
	sctx, cancel := s.streamCtx(ctx)
	defer cancel()
	stream, err := s.client.Consume(sctx)
	if err != nil {
		return nil, s.brokenErr(ctx, "open a flowctl.v1 Consume stream", err)
	}
	for _, e := range batch {
		if err := stream.Send(eventToV1(e)); err != nil {
			if errors.Is(err, io.EOF) {
				// The stream ended early; its status says why.
				if _, err = stream.CloseAndRecv(); err == nil {
					err = errors.New("the consumer ended the stream before it read the whole batch")
				}
			}
			return nil, s.brokenErr(ctx, "flowctl.v1 Consume stream", err)
		}
	}
	type reply struct {
		resp *flowctlv1.ConsumeResponse
		err  error
	}
	replies := make(chan reply, 1)
	go func() {
		r, err := stream.CloseAndRecv()
		replies <- reply{r, err}
	}()
	var r reply
	select {
	case r = <-replies:
	case <-time.After(v1EndWait):
		// No answer yet: a slow consumer, or one that never ends the
		// stream. Give a slow one a little more, bounded by ctx.
		select {
		case r = <-replies:
		case <-time.After(v1EndWait):
			s.warnNoEnd("Consume")
			cancel()
			return nil, nil
		case <-ctx.Done():
			cancel()
			return nil, s.brokenErr(ctx, "flowctl.v1 Consume stream", ctx.Err())
		}
	case <-ctx.Done():
		cancel()
		return nil, s.brokenErr(ctx, "flowctl.v1 Consume stream", ctx.Err())
	}
	if r.err != nil {
		return nil, s.brokenErr(ctx, "flowctl.v1 Consume stream", r.err)
	}
	return consumeFailures(r.resp, len(batch)), nil
}

// consumeFailures turns a ConsumeResponse into per-event failures; see the
// comment on v1Window.
func consumeFailures(r *flowctlv1.ConsumeResponse, n int) map[int]error {
	failed := int(r.GetEventsFailed())
	if failed <= 0 {
		return nil
	}
	msg := strings.Join(r.GetErrors(), "; ")
	if msg == "" {
		msg = "no error message"
	}
	var err error
	if failed >= n {
		err = fmt.Errorf("consumer failed the batch: %s", msg)
	} else {
		err = fmt.Errorf("consumer failed %d of %d events of the batch and flowctl.v1 does not say which, so all are reported failed: %s: %w",
			failed, n, msg, ErrPermanent)
	}
	failures := make(map[int]error, n)
	for i := range n {
		failures[i] = err
	}
	return failures
}

// Close implements SinkConn.
func (s *v1ConsumerConn) Close() error { return s.close() }

// v1SourceConn is a SourceConn over flowctl.v1 SourceService.StreamEvents.
type v1SourceConn struct {
	*v1Base
	events chan *flowctlv1.Event // filled by the receive loop
	done   chan struct{}
	seq    uint64 // Recv is called from one goroutine

	mu  sync.Mutex
	err error // why the stream ended (io.EOF: the source finished)
}

// v1SourceBuffer is how many events flowctl reads ahead of the pipeline
// from a flowctl.v1 source (beyond gRPC's own flow-control window).
const v1SourceBuffer = flow.MaxBatch * 4

func newV1SourceConn(base *v1Base, client flowctlv1.SourceServiceClient, params map[string]string) (*v1SourceConn, error) {
	stream, err := client.StreamEvents(base.ctx, &flowctlv1.StreamRequest{Params: params})
	if err != nil {
		return nil, fmt.Errorf("open the flowctl.v1 StreamEvents stream: %w", err)
	}
	s := &v1SourceConn{v1Base: base, events: make(chan *flowctlv1.Event, v1SourceBuffer), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.events)
		for {
			m, err := stream.Recv()
			if err != nil {
				s.mu.Lock()
				switch {
				case s.closed.Load():
					s.err = fmt.Errorf("flowctl.v1 source: %w", ErrClosed)
				case errors.Is(err, io.EOF):
					s.err = io.EOF
				default:
					s.err = fmt.Errorf("flowctl.v1 StreamEvents stream: %w", err)
				}
				s.mu.Unlock()
				return
			}
			select {
			case s.events <- m:
			case <-s.ctx.Done():
			}
		}
	}()
	return s, nil
}

// Recv implements SourceConn: it waits for one event, then takes whatever
// else has arrived, up to flow.MaxBatch events.
func (s *v1SourceConn) Recv(ctx context.Context) (uint64, []*flow.Event, error) {
	var first *flowctlv1.Event
	select {
	case m, ok := <-s.events:
		if !ok {
			s.mu.Lock()
			err := s.err
			s.mu.Unlock()
			return 0, nil, err
		}
		first = m
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	batch := flow.NewBatch()
	batch = append(batch, eventFromV1(first))
more:
	for len(batch) < flow.MaxBatch {
		select {
		case m, ok := <-s.events:
			if !ok {
				break more // the end shows on the next Recv
			}
			batch = append(batch, eventFromV1(m))
		default:
			break more
		}
	}
	s.seq++
	return s.seq, batch, nil
}

// Ack implements SourceConn: flowctl.v1 has no acknowledgements.
func (s *v1SourceConn) Ack(context.Context, uint64) error { return nil }

// Close implements SourceConn.
func (s *v1SourceConn) Close() error {
	err := s.close()
	<-s.done
	return err
}

var (
	_ ProcessorConn = (*v1ProcessorConn)(nil)
	_ SinkConn      = (*v1ConsumerConn)(nil)
	_ SourceConn    = (*v1SourceConn)(nil)
)
