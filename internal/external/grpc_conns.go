package external

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// grpcProcessorConn is a ProcessorConn over native Process streams: one
// per worker of the component (its parallelism), each with its own
// credit, so that a component serving each stream with its own worker
// (the Go SDK does) handles that many batches at once. A batch goes to the
// stream with the most room; seqs are unique across them all.
type grpcProcessorConn struct {
	streams []*batchClient
	cc      *grpc.ClientConn
	once    sync.Once
}

func newGRPCProcessorConn(cc *grpc.ClientConn, log *slog.Logger, maxBatch, streams int) (*grpcProcessorConn, error) {
	p := &grpcProcessorConn{cc: cc}
	for range max(streams, 1) {
		c, err := openProcessStream(cc, log, maxBatch)
		if err != nil {
			for _, c := range p.streams {
				c.shutdown()
			}
			return nil, err
		}
		p.streams = append(p.streams, c)
	}
	return p, nil
}

func openProcessStream(cc *grpc.ClientConn, log *slog.Logger, maxBatch int) (*batchClient, error) {
	ctx, cancel := context.WithCancel(context.Background())
	// Answers are decoded straight into flow events (grpc_decode.go),
	// batches encoded straight from them (grpc_encode.go).
	stream, err := streamv1.NewProcessorServiceClient(cc).Process(ctx, grpc.ForceCodecV2(newResponseCodec()))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open the processor stream: %w", err)
	}
	c := newBatchClient("processor", log, maxBatch)
	c.send = func(b *outBatch) error { return stream.SendMsg(b) }
	c.close = stream.CloseSend
	c.recv = func() (incoming, error) {
		var m processResponse
		if err := stream.RecvMsg(&m); err != nil {
			return incoming{}, err
		}
		in := incoming{credit: m.credit, drain: m.drain}
		if r := m.result; r != nil {
			in.seq, in.result = r.seq, r
		}
		return in, nil
	}
	c.cancel = cancel
	c.start()
	return c, nil
}

// pick returns the stream with the most unused credit (then the fewest
// batches in flight); a broken or draining stream only when all are.
func (p *grpcProcessorConn) pick() *batchClient {
	if len(p.streams) == 1 {
		return p.streams[0]
	}
	var best *batchClient
	bestScore := int64(-1 << 62)
	for _, c := range p.streams {
		c.mu.Lock()
		score := c.credit*1024 - int64(len(c.waiting))
		if c.err != nil || c.draining {
			score = -1 << 61
		}
		c.mu.Unlock()
		if score > bestScore {
			best, bestScore = c, score
		}
	}
	return best
}

// Process implements ProcessorConn.
func (p *grpcProcessorConn) Process(ctx context.Context, batch []*flow.Event) (Result, error) {
	c := p.pick()
	answers, parts, err := c.roundTrips(ctx, batch)
	if err != nil {
		return Result{}, err
	}
	res := Result{Outputs: make([][]*flow.Event, len(batch))}
	off := 0
	for i, a := range answers {
		resultInto(&res, off, len(parts[i]), a.result)
		off += len(parts[i])
	}
	return res, nil
}

// resultInto adds a chunk's Result, whose inputs start at off in the
// batch, to res. A failed input's outputs are ignored (stream.proto). An
// answer naming an input index outside the chunk is a component bug: the
// whole chunk fails, permanently, since resending cannot fix it.
func resultInto(res *Result, off, n int, r *decodedResult) {
	for _, o := range r.outputs {
		if int(o.index) >= n {
			for i := range n {
				res.Outputs[off+i] = nil
				setFailure(res, off+i, fmt.Errorf("processor answered batch seq %d with an output for input %d of %d: %w",
					r.seq, o.index, n, ErrPermanent))
			}
			return
		}
	}
	for _, f := range r.failures {
		if int(f.GetIndex()) >= n {
			continue
		}
		setFailure(res, off+int(f.GetIndex()), failureError(f))
	}
	// The events were decoded in one slab per answer; the pointers are
	// allocated together too: an input's first output gets a one-element
	// window of ptrs (capacity 1, so a second output appends elsewhere).
	ptrs := make([]*flow.Event, len(r.outputs))
	for k, o := range r.outputs {
		i := off + int(o.index)
		if _, failed := res.Failures[i]; failed || o.event == nil {
			continue
		}
		if res.Outputs[i] == nil {
			ptrs[k] = o.event
			res.Outputs[i] = ptrs[k : k+1 : k+1]
		} else {
			res.Outputs[i] = append(res.Outputs[i], o.event)
		}
	}
}

func setFailure(res *Result, i int, err error) {
	if res.Failures == nil {
		res.Failures = map[int]error{}
	}
	res.Failures[i] = err
}

// failureError turns a wire Failure into an error, wrapping ErrPermanent
// when the component says retrying cannot help.
func failureError(f *streamv1.Failure) error {
	msg := f.GetError()
	if msg == "" {
		msg = "component reported a failure without a message"
	}
	if f.GetPermanent() {
		return fmt.Errorf("%s: %w", msg, ErrPermanent)
	}
	return errors.New(msg)
}

// Close implements ProcessorConn.
func (p *grpcProcessorConn) Close() error {
	var err error
	p.once.Do(func() {
		for _, c := range p.streams {
			c.shutdown()
		}
		err = p.cc.Close()
	})
	return err
}

// grpcSinkConn is a SinkConn over one native Write stream.
type grpcSinkConn struct{ c *batchClient }

func newGRPCSinkConn(cc *grpc.ClientConn, log *slog.Logger, maxBatch int) (*grpcSinkConn, error) {
	ctx, cancel := context.WithCancel(context.Background())
	// Batches are encoded straight from flow events (grpc_encode.go).
	stream, err := streamv1.NewSinkServiceClient(cc).Write(ctx, grpc.ForceCodecV2(newResponseCodec()))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open the sink stream: %w", err)
	}
	c := newBatchClient("sink", log, maxBatch)
	c.send = func(b *outBatch) error { return stream.SendMsg(b) }
	c.close = stream.CloseSend
	c.recv = func() (incoming, error) {
		m, err := stream.Recv()
		if err != nil {
			return incoming{}, err
		}
		in := incoming{credit: m.GetCredit().GetBatches(), drain: m.GetDrain()}
		if a := m.GetAck(); a != nil {
			in.seq, in.ack = a.GetSeq(), a
		}
		return in, nil
	}
	c.cancel = cancel
	c.release = cc.Close
	c.start()
	return &grpcSinkConn{c: c}, nil
}

// Write implements SinkConn.
func (s *grpcSinkConn) Write(ctx context.Context, batch []*flow.Event) (map[int]error, error) {
	answers, parts, err := s.c.roundTrips(ctx, batch)
	if err != nil {
		return nil, err
	}
	var failures map[int]error
	off := 0
	for i, a := range answers {
		for _, f := range a.ack.GetFailures() {
			if int(f.GetIndex()) >= len(parts[i]) {
				continue
			}
			if failures == nil {
				failures = map[int]error{}
			}
			failures[off+int(f.GetIndex())] = failureError(f)
		}
		off += len(parts[i])
	}
	return failures, nil
}

// Close implements SinkConn.
func (s *grpcSinkConn) Close() error { return s.c.shutdown() }

// sourceWindow is the credit flowctl grants a native source: at most this
// many batches sent and not yet acknowledged (one credit returns with
// every ack), so a source never runs far ahead of the pipeline.
const sourceWindow = 16

// sourceCloseWait bounds how long Close waits for a source to end its
// stream after flowctl closed its side.
const sourceCloseWait = 5 * time.Second

// grpcSourceConn is a SourceConn over one native Read stream.
type grpcSourceConn struct {
	log    *slog.Logger
	stream streamv1.SourceService_ReadClient
	cancel context.CancelFunc
	cc     *grpc.ClientConn

	batches chan *streamv1.Batch // filled by the receive loop
	done    chan struct{}        // closed when the receive loop ended

	sendMu     sync.Mutex
	sendClosed bool

	mu       sync.Mutex
	err      error           // why no more batches come (io.EOF: the source ended)
	received map[uint64]bool // seqs received on this stream and not acked
	granted  int64           // credit granted on this stream, in batches
	got      int64           // batches received on this stream

	closeOnce sync.Once
}

func newGRPCSourceConn(cc *grpc.ClientConn, log *slog.Logger) (*grpcSourceConn, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := streamv1.NewSourceServiceClient(cc).Read(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open the source stream: %w", err)
	}
	if err := stream.Send(&streamv1.SourceRequest{Credit: &streamv1.Credit{Batches: sourceWindow}}); err != nil {
		cancel()
		return nil, fmt.Errorf("grant the source its first credit: %w", err)
	}
	s := &grpcSourceConn{
		log: log, stream: stream, cancel: cancel, cc: cc,
		batches:  make(chan *streamv1.Batch, sourceWindow),
		done:     make(chan struct{}),
		received: map[uint64]bool{},
		granted:  sourceWindow,
	}
	go s.recvLoop()
	return s, nil
}

func (s *grpcSourceConn) recvLoop() {
	defer close(s.done)
	ended := false // batches is closed
	end := func(err error) {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
		if !ended {
			ended = true
			close(s.batches)
		}
	}
	for {
		m, err := s.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("source ended its stream without End: %w", io.ErrUnexpectedEOF)
			} else {
				err = fmt.Errorf("source stream: %w", err)
			}
			end(err)
			return
		}
		if b := m.GetBatch(); b != nil && !ended {
			s.mu.Lock()
			s.got++
			got, granted := s.got, s.granted
			s.received[b.GetSeq()] = true
			s.mu.Unlock()
			if got > granted {
				// The source broke the protocol; what it sent stays
				// unacknowledged, for it to send again on a new stream.
				end(fmt.Errorf("source sent batch seq %d without credit: %d batches received, %d granted", b.GetSeq(), got, granted))
				s.cancel()
				return
			}
			if len(b.GetEvents()) > 0 {
				s.batches <- b
			}
		}
		if e := m.GetEnd(); e != nil && !ended {
			// No batch follows; the stream stays open for the acks of
			// what came before, until Close.
			s.log.Info("source sends no more batches", "reason", e.GetReason())
			end(io.EOF)
		}
	}
}

// Recv implements SourceConn. After the source sent End it returns io.EOF
// once the batches before it were taken; the stream stays open for Ack
// until Close.
func (s *grpcSourceConn) Recv(ctx context.Context) (uint64, []*flow.Event, error) {
	select {
	case b, ok := <-s.batches:
		if !ok {
			s.mu.Lock()
			err := s.err
			s.mu.Unlock()
			if err == nil {
				err = io.EOF
			}
			return 0, nil, err
		}
		var events []*flow.Event
		if len(b.GetEvents()) <= flow.MaxBatch {
			events = flow.NewBatch()
		}
		slab := make([]flow.Event, len(b.GetEvents()))
		for i, w := range b.GetEvents() {
			eventFromStreamInto(&slab[i], w)
			events = append(events, &slab[i])
		}
		return b.GetSeq(), events, nil
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// Ack implements SourceConn: it acknowledges seq and, for a batch received
// on this stream, grants the source one more batch.
func (s *grpcSourceConn) Ack(ctx context.Context, seq uint64) error {
	s.mu.Lock()
	credit := s.received[seq]
	delete(s.received, seq)
	s.mu.Unlock()
	req := &streamv1.SourceRequest{Ack: &streamv1.Ack{Seq: seq}}
	if credit {
		req.Credit = &streamv1.Credit{Batches: 1}
		s.mu.Lock()
		s.granted++
		s.mu.Unlock()
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.sendClosed {
		return fmt.Errorf("ack batch seq %d: %w", seq, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ack batch seq %d: %w", seq, err)
	}
	if err := s.stream.Send(req); err != nil {
		// A broken stream: the source sends the batch again on the next
		// one, where it can be acked.
		return fmt.Errorf("ack batch seq %d: %w", seq, err)
	}
	return nil
}

// Close implements SourceConn: it closes flowctl's side of the stream (the
// source then ends it), waits a moment for that, and releases the
// connection.
func (s *grpcSourceConn) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.sendMu.Lock()
		s.sendClosed = true
		_ = s.stream.CloseSend()
		s.sendMu.Unlock()
		// Nobody takes batches any more; those unacknowledged come again
		// on the source's next stream. Draining them also unblocks a
		// receive loop stuck handing one over.
		go func() {
			for range s.batches {
			}
		}()
		select {
		case <-s.done:
		case <-time.After(sourceCloseWait):
		}
		s.mu.Lock()
		s.err = fmt.Errorf("source connection: %w", ErrClosed)
		s.mu.Unlock()
		s.cancel()
		<-s.done
		err = s.cc.Close()
	})
	return err
}

var (
	_ ProcessorConn = (*grpcProcessorConn)(nil)
	_ SinkConn      = (*grpcSinkConn)(nil)
	_ SourceConn    = (*grpcSourceConn)(nil)
)
