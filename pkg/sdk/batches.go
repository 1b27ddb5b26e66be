package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// batchConn is one processor or sink stream, as serveBatches sees it: Resp
// is ProcessResponse or SinkResponse.
type batchConn[Resp any] struct {
	ctx context.Context
	// recv returns the next batch; a message without one returns nil, nil.
	recv func() (*inBatch, error)
	send func(*Resp) error
	// handle does the work for a batch and returns its answer.
	handle func(ctx context.Context, b *inBatch) *Resp
	// grant and drain build the other messages, or add to an answer.
	grant func(r *Resp, c *streamv1.Credit) *Resp
	drain func(r *Resp, d *streamv1.Drain) *Resp
}

// serveBatches runs one stream of batches in, answers out:
//
//	recv loop ──► in (cap = initial credit) ──► worker: handle, answer + Credit{1}
//
// Credit: the stream starts with Credit{initial}; every answer carries
// Credit{1} until the drain starts, so the peer never has more than
// `initial` batches unanswered. A batch beyond the credit granted ends the
// stream with RESOURCE_EXHAUSTED (the peer broke the protocol; the batches
// it has unanswered are redelivered by it). Because of that bound the recv
// loop never blocks on `in`, so reading the peer's messages never stalls.
//
// Drain: once the runtime drains, the stream sends Drain, grants no more
// credit, keeps answering what arrives, and returns when the peer closes its
// side. Run cuts streams that outlive the drain timeout.
func serveBatches[Resp any](rt *runtime, c batchConn[Resp]) error {
	initial := rt.s.initialCredit
	if !rt.beginStream() {
		var zero Resp
		_ = c.send(c.drain(&zero, &streamv1.Drain{Reason: "draining"}))
		return status.Error(codes.Unavailable, "component is draining; open the stream on another instance")
	}
	defer rt.endStream()

	var sendMu sync.Mutex
	send := func(r *Resp) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return c.send(r)
	}
	var granted atomic.Int64
	granted.Store(int64(initial))
	var zero Resp
	if err := send(c.grant(&zero, &streamv1.Credit{Batches: uint32(initial)})); err != nil {
		return err
	}

	// inflight holds the seqs received and not answered yet, to refuse a
	// seq sent twice on one stream.
	var inMu sync.Mutex
	inflight := map[uint64]bool{}

	// hctx bounds the work: cut when the stream breaks or the peer breaks
	// the protocol, not when it merely closes its side (then the work in
	// hand is finished and answered).
	hctx, cancelWork := context.WithCancel(c.ctx)
	defer cancelWork()
	in := make(chan *inBatch, initial)
	workerErr := make(chan error, 1)
	go func() {
		var err error
		for b := range in {
			if err != nil {
				continue // the stream is broken; what is left is redelivered by the peer
			}
			resp := c.handle(hctx, b)
			if err = hctx.Err(); err != nil {
				continue // cut short: not answered, so the peer redelivers it
			}
			if !rt.draining() {
				granted.Add(1)
				resp = c.grant(resp, &streamv1.Credit{Batches: 1})
			}
			inMu.Lock()
			delete(inflight, b.seq)
			inMu.Unlock()
			err = send(resp)
		}
		workerErr <- err
	}()

	// The drain notice goes out from its own goroutine, which must be gone
	// before the handler returns (no Send after that): close streamDone,
	// then wait (defers run last-in first-out).
	var notifier sync.WaitGroup
	defer notifier.Wait()
	streamDone := make(chan struct{})
	defer close(streamDone)
	notifier.Add(1)
	go func() {
		defer notifier.Done()
		select {
		case <-rt.drainCh:
			var zero Resp
			_ = send(c.drain(&zero, &streamv1.Drain{Reason: "component is stopping"}))
		case <-streamDone:
		}
	}()

	var recvErr error
	violation := false // recvErr is the peer breaking the protocol
	received := int64(0)
	for {
		b, err := c.recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break
		}
		if b == nil {
			continue
		}
		received++
		if received > granted.Load() {
			violation = true
			recvErr = status.Errorf(codes.ResourceExhausted,
				"batch seq %d sent without credit: %d batches granted so far, this is batch %d; wait for a Credit before sending",
				b.seq, granted.Load(), received)
			break
		}
		if b.seq == 0 {
			violation = true
			recvErr = status.Error(codes.InvalidArgument, "batch without seq: sequence numbers start at 1")
			break
		}
		inMu.Lock()
		dup := inflight[b.seq]
		inflight[b.seq] = true
		inMu.Unlock()
		if dup {
			violation = true
			recvErr = status.Errorf(codes.InvalidArgument, "batch seq %d sent again on the same stream before it was answered", b.seq)
			break
		}
		rt.batches.Add(1)
		rt.eventsIn.Add(int64(b.count()))
		in <- b
	}
	if recvErr != nil {
		cancelWork()
	}
	close(in)
	werr := <-workerErr
	if recvErr != nil {
		if violation {
			rt.log.Warn("refused a batch stream that broke the protocol", "err", recvErr)
		}
		return recvErr
	}
	return werr
}

// callProcess runs p.Process, turning a panic into an error for that event.
func callProcess(ctx context.Context, p Processor, e *Event) (out []*Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("processor panicked: %v", r))
		}
	}()
	return p.Process(ctx, e)
}

// callWrite runs s.Write, turning a panic into an error for the batch.
func callWrite(ctx context.Context, s Sink, events []*Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sink panicked: %v", r)
		}
	}()
	return s.Write(ctx, events)
}

func failure(i int, err error) *streamv1.Failure {
	return &streamv1.Failure{Index: uint32(i), Error: err.Error(), Permanent: IsPermanent(err)}
}

// processorService serves ProcessorService for a Processor.
type processorService struct {
	streamv1.UnimplementedProcessorServiceServer
	rt *runtime
	p  Processor
}

func (ps *processorService) register(gs grpcRegistrar) {
	streamv1.RegisterProcessorServiceServer(gs, ps)
}
func (ps *processorService) finished() <-chan struct{} { return nil }
func (ps *processorService) result() error             { return nil }
func (ps *processorService) drain(ctx context.Context, _ string) bool {
	return waitStreams(ctx, ps.rt)
}

func (ps *processorService) GetInfo(context.Context, *streamv1.InfoRequest) (*streamv1.ComponentInfo, error) {
	return ps.rt.info(), nil
}

func (ps *processorService) Health(context.Context, *streamv1.HealthRequest) (*streamv1.HealthResponse, error) {
	return ps.rt.health(), nil
}

func (ps *processorService) Process(stream streamv1.ProcessorService_ProcessServer) error {
	// The stream's messages go through wireCodec (wire.go): RecvMsg and
	// SendMsg with its own types.
	return serveBatches(ps.rt, batchConn[processAnswer]{
		ctx: stream.Context(),
		recv: func() (*inBatch, error) {
			var m processRequest
			if err := stream.RecvMsg(&m); err != nil {
				return nil, err
			}
			return m.batch, nil
		},
		send:   func(a *processAnswer) error { return stream.SendMsg(a) },
		handle: ps.handle,
		grant: func(r *processAnswer, c *streamv1.Credit) *processAnswer {
			r.credit = c
			return r
		},
		drain: func(r *processAnswer, d *streamv1.Drain) *processAnswer {
			r.drain = d
			return r
		},
	})
}

func (ps *processorService) handle(ctx context.Context, b *inBatch) *processAnswer {
	ctx = withBatch(ctx, Batch{Seq: b.seq, Redelivered: b.redelivered})
	var span trace.Span
	if ps.rt.tracer != nil && len(b.events) > 0 {
		ctx, span = ps.rt.startSpan(ctx, "process", b.events[0].Metadata, len(b.events))
	}
	res := &processAnswer{result: true, seq: b.seq, outputs: make([]answerOutput, 0, len(b.events))}
	for i := range b.events {
		outs, err := callProcess(ctx, ps.p, &b.events[i])
		if err != nil {
			res.failures = append(res.failures, failure(i, err))
			continue
		}
		for _, o := range outs {
			if o != nil {
				res.outputs = append(res.outputs, answerOutput{index: uint32(i), event: o})
			}
		}
	}
	endSpan(span, len(res.outputs), len(res.failures))
	ps.rt.eventsOut.Add(int64(len(res.outputs)))
	ps.rt.failures.Add(int64(len(res.failures)))
	return res
}

// sinkService serves SinkService for a Sink.
type sinkService struct {
	streamv1.UnimplementedSinkServiceServer
	rt *runtime
	s  Sink
}

func (ss *sinkService) register(gs grpcRegistrar) { streamv1.RegisterSinkServiceServer(gs, ss) }
func (ss *sinkService) finished() <-chan struct{} { return nil }
func (ss *sinkService) result() error             { return nil }
func (ss *sinkService) drain(ctx context.Context, _ string) bool {
	return waitStreams(ctx, ss.rt)
}

func (ss *sinkService) GetInfo(context.Context, *streamv1.InfoRequest) (*streamv1.ComponentInfo, error) {
	return ss.rt.info(), nil
}

func (ss *sinkService) Health(context.Context, *streamv1.HealthRequest) (*streamv1.HealthResponse, error) {
	return ss.rt.health(), nil
}

func (ss *sinkService) Write(stream streamv1.SinkService_WriteServer) error {
	return serveBatches(ss.rt, batchConn[streamv1.SinkResponse]{
		ctx: stream.Context(),
		recv: func() (*inBatch, error) {
			m, err := stream.Recv()
			if b := m.GetBatch(); b != nil {
				return &inBatch{seq: b.GetSeq(), redelivered: b.GetRedelivered(), pb: b}, err
			}
			return nil, err
		},
		send:   stream.Send,
		handle: ss.handle,
		grant: func(r *streamv1.SinkResponse, c *streamv1.Credit) *streamv1.SinkResponse {
			r.Credit = c
			return r
		},
		drain: func(r *streamv1.SinkResponse, d *streamv1.Drain) *streamv1.SinkResponse {
			r.Drain = d
			return r
		},
	})
}

func (ss *sinkService) handle(ctx context.Context, b *inBatch) *streamv1.SinkResponse {
	ctx = withBatch(ctx, Batch{Seq: b.seq, Redelivered: b.redelivered})
	events := make([]*Event, b.count())
	slab := make([]Event, len(events)) // one allocation per batch
	for i, we := range b.pb.GetEvents() {
		slab[i].fromWire(we)
		events[i] = &slab[i]
	}
	ack := &streamv1.Ack{Seq: b.seq}
	var span trace.Span
	if ss.rt.tracer != nil && len(events) > 0 {
		ctx, span = ss.rt.startSpan(ctx, "write", events[0].Metadata, len(events))
	}
	err := callWrite(ctx, ss.s, events)
	var be *BatchError
	switch {
	case err == nil:
	case errors.As(err, &be):
		for i := range events {
			if e, ok := be.Failed[i]; ok && e != nil {
				ack.Failures = append(ack.Failures, failure(i, e))
			}
		}
	default:
		for i := range events {
			ack.Failures = append(ack.Failures, failure(i, err))
		}
	}
	endSpan(span, len(events)-len(ack.Failures), len(ack.Failures))
	ss.rt.eventsOut.Add(int64(len(events) - len(ack.Failures)))
	ss.rt.failures.Add(int64(len(ack.Failures)))
	return &streamv1.SinkResponse{Ack: ack}
}

// beginStream counts a new batch stream, unless the drain has started.
func (rt *runtime) beginStream() bool {
	rt.streamMu.Lock()
	defer rt.streamMu.Unlock()
	if rt.draining() {
		return false
	}
	rt.openStreams++
	return true
}

// endStream uncounts a batch stream and wakes waitStreams.
func (rt *runtime) endStream() {
	rt.streamMu.Lock()
	defer rt.streamMu.Unlock()
	rt.openStreams--
	if rt.openStreams == 0 && rt.noStreams != nil {
		close(rt.noStreams)
		rt.noStreams = nil
	}
}

// waitStreams waits until every batch stream has ended or ctx ends, and
// reports whether they all ended. The drain has started, so no stream
// begins meanwhile.
func waitStreams(ctx context.Context, rt *runtime) bool {
	rt.streamMu.Lock()
	if rt.openStreams == 0 {
		rt.streamMu.Unlock()
		return true
	}
	done := make(chan struct{})
	rt.noStreams = done
	rt.streamMu.Unlock()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		rt.log.Warn("drain timeout: cutting streams still open; their unanswered batches will be redelivered")
		return false
	}
}
