package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// pending is a batch a source emitted and flowctl has not acknowledged.
type pending struct {
	seq    uint64
	events []*Event
	wire   []*streamv1.Event
	queued bool // waiting to be sent on the current stream
	sent   bool // sent at least once (a resend is a redelivery)
	gone   bool // withdrawn by emit before it was ever sent
}

// readStream is one Read stream.
type readStream struct {
	srv     streamv1.SourceService_ReadServer
	closed  bool // the peer or the network ended it
	endSent bool
}

// sourceService serves SourceService for a Source. One Read stream at a
// time; Run starts with the first stream and is shared by later ones.
//
// Every emitted batch stays in unacked until flowctl acks it; when a stream
// breaks, the next stream first sends all of unacked again (same seq,
// redelivered) — the source side of at-least-once. A batch is sent only
// with credit; emit blocks until its batch is sent (backpressure).
type sourceService struct {
	streamv1.UnimplementedSourceServiceServer
	rt    *runtime
	src   Source
	acker Acker

	runCtx    context.Context
	runCancel context.CancelFunc

	mu         sync.Mutex
	cond       *sync.Cond
	active     *readStream
	credit     int64
	nextSeq    uint64
	unacked    map[uint64]*pending
	queue      []*pending // to send on the active stream, in seq order
	runStarted bool
	runDone    bool
	runErr     error
	// runStopped: Run returned after runCtx was cancelled (drain), so the
	// End sent is "stopping", not "exhausted". It is read when Run returns:
	// by the time End goes out, flowctl's ack of the last batch may already
	// have made Serve cancel runCtx.
	runStopped bool
	done       chan struct{} // closed once runDone and unacked is empty
	doneClosed bool
}

func newSourceService(rt *runtime, src Source) *sourceService {
	ss := &sourceService{rt: rt, src: src, nextSeq: 1, unacked: map[uint64]*pending{}, done: make(chan struct{})}
	ss.acker, _ = src.(Acker)
	ss.cond = sync.NewCond(&ss.mu)
	ss.runCtx, ss.runCancel = context.WithCancel(context.Background())
	context.AfterFunc(ss.runCtx, func() {
		ss.mu.Lock()
		ss.cond.Broadcast()
		ss.mu.Unlock()
	})
	return ss
}

func (ss *sourceService) register(gs grpcRegistrar) { streamv1.RegisterSourceServiceServer(gs, ss) }
func (ss *sourceService) finished() <-chan struct{} { return ss.done }

func (ss *sourceService) result() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.runErr != nil && !errors.Is(ss.runErr, context.Canceled) {
		return fmt.Errorf("source run: %w", ss.runErr)
	}
	return nil
}

// drain stops Run, then waits for flowctl to acknowledge everything
// emitted (or ctx to end).
func (ss *sourceService) drain(ctx context.Context, _ string) bool {
	ss.runCancel()
	ss.mu.Lock()
	if !ss.runStarted {
		ss.runDone, ss.runStopped = true, true
		ss.checkDoneLocked()
	}
	ss.mu.Unlock()
	select {
	case <-ss.done:
	case <-ctx.Done():
		ss.mu.Lock()
		n := len(ss.unacked)
		ss.mu.Unlock()
		ss.rt.log.Warn("drain timeout with batches unacknowledged; flowctl may replay them", "unacked", n)
		return false
	}
	// Everything is acknowledged; let flowctl close the stream itself
	// (it does after the last ack) rather than cutting it.
	stop := context.AfterFunc(ctx, func() {
		ss.mu.Lock()
		ss.cond.Broadcast()
		ss.mu.Unlock()
	})
	defer stop()
	ss.mu.Lock()
	for ss.active != nil && ctx.Err() == nil {
		ss.cond.Wait()
	}
	clean := ss.active == nil
	ss.mu.Unlock()
	return clean
}

func (ss *sourceService) GetInfo(context.Context, *streamv1.InfoRequest) (*streamv1.ComponentInfo, error) {
	return ss.rt.info(), nil
}

func (ss *sourceService) Health(context.Context, *streamv1.HealthRequest) (*streamv1.HealthResponse, error) {
	return ss.rt.health(), nil
}

// previousStreamGrace is how long a new Read stream waits for the previous
// one to end before it is refused.
const previousStreamGrace = 2 * time.Second

// Read is the source stream: see SourceService in stream.proto.
func (ss *sourceService) Read(srv streamv1.SourceService_ReadServer) error {
	ss.mu.Lock()
	// A reconnecting flowctl may open its new stream before this side has
	// seen the old one end: give the old one a moment to go.
	for wait := time.Now().Add(previousStreamGrace); ss.active != nil && time.Now().Before(wait); {
		ss.mu.Unlock()
		select {
		case <-time.After(10 * time.Millisecond):
		case <-srv.Context().Done():
			return srv.Context().Err()
		}
		ss.mu.Lock()
	}
	if ss.active != nil {
		ss.mu.Unlock()
		return status.Error(codes.FailedPrecondition, "a Read stream is already open: a source serves one stream at a time")
	}
	st := &readStream{srv: srv}
	ss.active = st
	ss.credit = 0
	// Everything unacknowledged goes out again on this stream, oldest
	// first, marked redelivered if it was sent before.
	ss.queue = ss.queue[:0]
	for _, p := range ss.unacked {
		p.queued = true
		ss.queue = append(ss.queue, p)
	}
	sort.Slice(ss.queue, func(i, j int) bool { return ss.queue[i].seq < ss.queue[j].seq })
	if !ss.runStarted && !ss.runDone {
		ss.runStarted = true
		go ss.run()
	}
	ss.cond.Broadcast()
	ss.mu.Unlock()

	sendDone := make(chan error, 1)
	go func() { sendDone <- ss.sendLoop(st) }()

	var err error
	for {
		var req *streamv1.SourceRequest
		req, err = srv.Recv()
		if err != nil {
			break
		}
		var acked *pending
		ss.mu.Lock()
		if c := req.GetCredit(); c != nil {
			ss.credit += int64(c.GetBatches())
		}
		if a := req.GetAck(); a != nil {
			if p, ok := ss.unacked[a.GetSeq()]; ok && p.sent {
				delete(ss.unacked, a.GetSeq())
				acked = p
				ss.checkDoneLocked()
			}
		}
		ss.cond.Broadcast()
		ss.mu.Unlock()
		if acked != nil && ss.acker != nil {
			ss.acker.Acked(acked.events)
		}
	}
	ss.mu.Lock()
	st.closed = true
	if ss.active == st {
		ss.active = nil
	}
	ss.cond.Broadcast()
	ss.mu.Unlock()
	serr := <-sendDone
	switch {
	case errors.Is(err, io.EOF):
		return serr
	default:
		return err
	}
}

// sendLoop sends queued batches while there is credit, then End once Run
// has returned and the queue is empty. It returns when the stream closes.
func (ss *sourceService) sendLoop(st *readStream) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for {
		for !st.closed && !(ss.credit > 0 && len(ss.queue) > 0) && !(ss.runDone && len(ss.queue) == 0 && !st.endSent) {
			ss.cond.Wait()
		}
		if st.closed {
			return nil
		}
		var msg *streamv1.SourceResponse
		if ss.credit > 0 && len(ss.queue) > 0 {
			p := ss.queue[0]
			ss.queue = ss.queue[1:]
			p.queued = false
			if p.gone {
				continue
			}
			ss.credit--
			msg = &streamv1.SourceResponse{Batch: &streamv1.Batch{Seq: p.seq, Events: p.wire, Redelivered: p.sent}}
			p.sent = true
			ss.rt.batches.Add(1)
			ss.rt.eventsOut.Add(int64(len(p.wire)))
		} else {
			st.endSent = true
			reason := "exhausted"
			switch {
			case ss.runStopped:
				reason = "stopping"
			case ss.runErr != nil:
				reason = "failed: " + ss.runErr.Error()
			}
			msg = &streamv1.SourceResponse{End: &streamv1.End{Reason: reason}}
		}
		ss.cond.Broadcast() // emit waits for its batch to leave the queue
		ss.mu.Unlock()
		err := st.srv.Send(msg)
		ss.mu.Lock()
		if err != nil {
			// The stream is broken; what was sent on it stays unacked and
			// goes out again on the next stream.
			st.closed = true
			return nil
		}
	}
}

func (ss *sourceService) run() {
	err := ss.src.Run(ss.runCtx, ss.emit)
	if err != nil && ss.runCtx.Err() == nil {
		ss.rt.log.Error("source run failed", "err", err)
	}
	ss.mu.Lock()
	ss.runDone = true
	ss.runErr = err
	ss.runStopped = ss.runCtx.Err() != nil
	ss.checkDoneLocked()
	ss.cond.Broadcast()
	ss.mu.Unlock()
}

// checkDoneLocked closes done once Run has returned and nothing is
// unacknowledged. ss.mu must be held.
func (ss *sourceService) checkDoneLocked() {
	if ss.runDone && len(ss.unacked) == 0 && !ss.doneClosed {
		ss.doneClosed = true
		close(ss.done)
	}
}

// emit is the EmitFunc handed to Run.
func (ss *sourceService) emit(ctx context.Context, events ...*Event) error {
	for len(events) > 0 {
		n := min(len(events), MaxBatch)
		if err := ss.emitBatch(ctx, events[:n]); err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}

func (ss *sourceService) emitBatch(ctx context.Context, events []*Event) error {
	wire := make([]*streamv1.Event, len(events))
	for i, e := range events {
		wire[i] = e.ToWire()
	}
	stop := context.AfterFunc(ctx, func() {
		ss.mu.Lock()
		ss.cond.Broadcast()
		ss.mu.Unlock()
	})
	defer stop()

	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.stopped(ctx); err != nil {
		return err
	}
	p := &pending{seq: ss.nextSeq, events: events, wire: wire, queued: true}
	ss.nextSeq++
	ss.unacked[p.seq] = p
	ss.queue = append(ss.queue, p)
	ss.cond.Broadcast()
	for p.queued {
		if err := ss.stopped(ctx); err != nil {
			// Withdraw it: it was never sent, so nobody will ack it.
			p.gone = true
			delete(ss.unacked, p.seq)
			return err
		}
		ss.cond.Wait()
	}
	return nil
}

// stopped returns why emit must give up, if it must.
func (ss *sourceService) stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ss.runCtx.Err() != nil {
		return fmt.Errorf("emit: source is stopping: %w", context.Canceled)
	}
	return nil
}
