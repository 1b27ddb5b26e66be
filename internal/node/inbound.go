package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// inboundWindow is the credit a node grants each upstream stream: at most
// this many batches received there and not yet acknowledged. One credit
// comes back with every ack, so backpressure inside this node (full
// queues, a slow sink) reaches the upstream node as withheld credit.
const inboundWindow = 16

// inbound is the SinkService this node serves to its upstream nodes, and
// the flow.Source the engine here runs in place of the upstream
// components. A batch received is emitted into the engine; its Ack goes
// back on the stream it came on once everything derived from it is done
// here (and acknowledged further downstream).
//
// It ends (Run returns nil) when every node of every upstream component
// sent End: expected[component] nodes each.
type inbound struct {
	streamv1.UnimplementedSinkServiceServer

	component string
	role      flow.Role
	expected  map[string]int
	log       *slog.Logger

	ready    chan struct{} // closed when Run started
	out      flow.Emitter
	runCtx   context.Context
	draining chan struct{} // closed when Run's ctx ended: no new batches

	mu       sync.Mutex
	closed   bool                       // Run returned: no Emit may start
	ended    map[string]map[string]bool // component → nodes that sent End
	allEnded chan struct{}
	endOnce  sync.Once
	emits    sync.WaitGroup

	batches, events, redeliveredBatches, redeliveredEvents atomic.Int64
}

func newInbound(component string, role flow.Role, expected map[string]int, log *slog.Logger) *inbound {
	in := &inbound{component: component, role: role, expected: expected, log: log,
		ready: make(chan struct{}), draining: make(chan struct{}),
		ended: map[string]map[string]bool{}, allEnded: make(chan struct{})}
	if len(expected) == 0 {
		close(in.allEnded)
	}
	return in
}

// Run implements flow.Source.
func (in *inbound) Run(ctx context.Context, out flow.Emitter) error {
	in.out, in.runCtx = out, ctx
	close(in.ready)
	select {
	case <-in.allEnded:
		in.log.Info("every upstream node sent End; finishing")
	case <-ctx.Done():
	}
	close(in.draining)
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.emits.Wait()
	return nil
}

// GetInfo implements streamv1.SinkServiceServer.
func (in *inbound) GetInfo(context.Context, *streamv1.InfoRequest) (*streamv1.ComponentInfo, error) {
	return &streamv1.ComponentInfo{Name: in.component, Role: streamv1.Role_ROLE_SINK, Description: "flowctl node of component " + in.component, ProtocolVersion: 1}, nil
}

// Health implements streamv1.SinkServiceServer.
func (in *inbound) Health(context.Context, *streamv1.HealthRequest) (*streamv1.HealthResponse, error) {
	select {
	case <-in.draining:
		return &streamv1.HealthResponse{Status: streamv1.HealthStatus_HEALTH_STATUS_STOPPING}, nil
	default:
	}
	select {
	case <-in.ready:
		return &streamv1.HealthResponse{Status: streamv1.HealthStatus_HEALTH_STATUS_HEALTHY}, nil
	default:
		return &streamv1.HealthResponse{Status: streamv1.HealthStatus_HEALTH_STATUS_STARTING}, nil
	}
}

// endedAll records End from node of component and reports whether every
// expected node has now sent it.
func (in *inbound) markEnded(component, node string) {
	in.mu.Lock()
	if in.ended[component] == nil {
		in.ended[component] = map[string]bool{}
	}
	in.ended[component][node] = true
	all := true
	for c, n := range in.expected {
		if len(in.ended[c]) < n {
			all = false
		}
	}
	in.mu.Unlock()
	in.log.Info("upstream node sent End", "from", component, "node", node)
	if all {
		in.endOnce.Do(func() { close(in.allEnded) })
	}
}

// Upstreams returns the upstream components this node waits for, sorted.
func (in *inbound) upstreams() []string {
	out := make([]string, 0, len(in.expected))
	for c := range in.expected {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// streamSend serialises the messages of one stream: acks come from the
// engine's goroutines, Drain from a watcher, credit from the handler.
type streamSend struct {
	mu     sync.Mutex
	stream streamv1.SinkService_WriteServer
	err    error
}

func (s *streamSend) send(m *streamv1.SinkResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.err = s.stream.Send(m)
	return s.err
}

// Write implements streamv1.SinkServiceServer: one upstream node's stream.
func (in *inbound) Write(stream streamv1.SinkService_WriteServer) error {
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	from, node := first(md.Get(mdFrom)), first(md.Get(mdNode))
	if _, ok := in.expected[from]; !ok {
		return status.Errorf(codes.InvalidArgument, "this is the node of %q, whose inputs are %s; a stream from %q (header %s) does not belong here: check the --peer addresses",
			in.component, strings.Join(in.upstreams(), ", "), from, mdFrom)
	}
	if node == "" {
		node = from
	}
	select {
	case <-in.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	out := &streamSend{stream: stream}
	select {
	case <-in.draining:
		_ = out.send(&streamv1.SinkResponse{Drain: &streamv1.Drain{Reason: "node stopping"}})
		return status.Error(codes.Unavailable, "node is stopping")
	default:
	}
	if err := out.send(&streamv1.SinkResponse{Credit: &streamv1.Credit{Batches: inboundWindow}}); err != nil {
		return err
	}
	// Tell the sender when this node starts draining: it sends nothing
	// more here, and what it did not get acked comes to the next instance.
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopWatch := context.AfterFunc(in.runCtx, cancel)
	defer stopWatch()
	go func() {
		select {
		case <-in.draining:
			_ = out.send(&streamv1.SinkResponse{Drain: &streamv1.Drain{Reason: "node stopping"}})
		case <-ectx.Done():
		}
	}()

	var (
		granted atomic.Int64 // credit given on this stream, in batches
		got     int64
		pending sync.WaitGroup // batches emitted, not acked yet
		seen    = map[uint64]bool{}
		seenMu  sync.Mutex
	)
	granted.Store(inboundWindow)
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			pending.Wait() // the sender closed its side: answer what it sent
			return nil
		}
		if err != nil {
			return err
		}
		if m.GetEnd() != nil {
			pending.Wait()
			in.markEnded(from, node)
			return nil
		}
		b := m.GetBatch()
		if b == nil {
			continue
		}
		got++
		switch {
		case got > granted.Load():
			return status.Errorf(codes.ResourceExhausted, "batch seq %d sent without credit: %d received, %d granted", b.GetSeq(), got, granted.Load())
		case b.GetSeq() == 0:
			return status.Error(codes.InvalidArgument, "batch seq 0: seqs start at 1")
		case len(b.GetEvents()) == 0:
			return status.Errorf(codes.InvalidArgument, "batch seq %d has no events", b.GetSeq())
		}
		seenMu.Lock()
		dup := seen[b.GetSeq()]
		seen[b.GetSeq()] = true
		seenMu.Unlock()
		if dup {
			return status.Errorf(codes.InvalidArgument, "batch seq %d sent twice on one stream while unanswered", b.GetSeq())
		}
		in.batches.Add(1)
		in.events.Add(int64(len(b.GetEvents())))
		if b.GetRedelivered() {
			in.redeliveredBatches.Add(1)
			in.redeliveredEvents.Add(int64(len(b.GetEvents())))
		}
		events := make([]*flow.Event, len(b.GetEvents()))
		for i, w := range b.GetEvents() {
			events[i] = external.EventFromStream(w)
		}
		seq := b.GetSeq()
		in.mu.Lock()
		if in.closed {
			in.mu.Unlock()
			// Not emitted, not acked: the sender gives it to the next
			// instance of this node.
			continue
		}
		in.emits.Add(1)
		in.mu.Unlock()
		pending.Add(1)
		var once sync.Once
		// done runs once: the engine calls it when the batch is finished
		// here, or may call it (with an error) when Emit fails.
		done := func(err error) {
			once.Do(func() {
				defer pending.Done()
				seenMu.Lock()
				delete(seen, seq)
				seenMu.Unlock()
				if err != nil {
					return // the run stopped first: no ack, the batch comes again
				}
				granted.Add(1)
				_ = out.send(&streamv1.SinkResponse{Ack: &streamv1.Ack{Seq: seq}, Credit: &streamv1.Credit{Batches: 1}})
			})
		}
		err = in.out.Emit(ectx, events, done)
		in.emits.Done()
		if err != nil {
			done(err)
			if ectx.Err() != nil {
				return status.Error(codes.Unavailable, "node is stopping")
			}
			return fmt.Errorf("emit batch seq %d: %w", seq, err)
		}
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

var (
	_ flow.Source                = (*inbound)(nil)
	_ streamv1.SinkServiceServer = (*inbound)(nil)
)
