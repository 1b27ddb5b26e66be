package external

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// errDraining is returned for batches a component did not take because it
// is draining (it sent Drain): they belong to its next incarnation.
var errDraining = errors.New("component is draining: batch not sent; it goes to the next instance")

// answer is what the receive loop hands a waiting caller: a processor's
// Result or a sink's Ack, or the error that ended the stream first.
type answer struct {
	result *decodedResult
	ack    *streamv1.Ack
	err    error
}

// call is one batch sent on a stream and not answered yet. ch has room for
// its one answer, so the receive loop never blocks on a caller that gave
// up (abandoned calls keep their seq busy until the answer arrives).
type call struct {
	seq uint64
	ch  chan answer
}

// incoming is one message from the component, reduced to what the batch
// client needs.
type incoming struct {
	seq    uint64 // 0: no answer in this message
	result *decodedResult
	ack    *streamv1.Ack
	credit uint32
	drain  *streamv1.Drain
}

// batchClient is the client side of one processor (Process) or sink
// (Write) stream: batches out, answers and credits in.
//
//	callers ──(credit)──► send ──► component
//	waiting[seq] ◄── recv loop ◄── Result/Ack + Credit + Drain
//
// A caller takes one credit per batch and blocks while there is none;
// answers are matched to callers by seq, so several batches may be in
// flight, in any order. When the stream breaks, every caller still
// waiting gets the error (its batch was not answered: the supervisor
// redelivers it). On Drain it sends nothing more, closes its sending side
// and waits for the answers of what it sent.
type batchClient struct {
	what     string // "processor" or "sink", for errors
	log      *slog.Logger
	send     func(*outBatch) error // encoded by responseCodec (grpc_encode.go)
	close    func() error          // closes the sending side
	recv     func() (incoming, error)
	cancel   context.CancelFunc
	release  func() error // closes the gRPC connection
	maxBatch int          // 0: no limit beyond flow.MaxBatch

	sendMu     sync.Mutex // serialises Send and CloseSend
	sendClosed bool       // under sendMu

	mu       sync.Mutex
	credit   int64
	wake     chan struct{} // closed (and replaced) when credit, err or draining change
	waiting  map[uint64]*call
	err      error // the stream ended (broken, or closed by Close)
	draining bool
	done     chan struct{} // closed when the receive loop ended

	closeOnce sync.Once
}

func newBatchClient(what string, log *slog.Logger, maxBatch int) *batchClient {
	return &batchClient{
		what:     what,
		log:      log,
		maxBatch: maxBatch,
		wake:     make(chan struct{}),
		waiting:  map[uint64]*call{},
		done:     make(chan struct{}),
	}
}

// start runs the receive loop; call once the hooks are set.
func (c *batchClient) start() { go c.recvLoop() }

// wakeLocked wakes every caller waiting for credit. c.mu must be held.
func (c *batchClient) wakeLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

func (c *batchClient) recvLoop() {
	defer close(c.done)
	for {
		m, err := c.recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%s ended its stream: %w", c.what, io.ErrUnexpectedEOF)
			} else {
				err = fmt.Errorf("%s stream: %w", c.what, err)
			}
			c.fail(err)
			return
		}
		c.mu.Lock()
		if m.credit > 0 {
			c.credit += int64(m.credit)
		}
		if m.drain != nil && !c.draining {
			c.draining = true
			c.log.Info("component is draining: sending it nothing more", "reason", m.drain.GetReason())
			go c.closeSend()
		}
		var w *call
		if m.seq != 0 {
			w = c.waiting[m.seq]
			delete(c.waiting, m.seq)
		}
		if m.credit > 0 || m.drain != nil {
			c.wakeLocked()
		}
		c.mu.Unlock()
		if m.seq != 0 && w == nil {
			// An answer for a seq not in flight here: a component bug
			// (answered twice) or a caller that gave up long ago. Either
			// way nobody waits for it.
			c.log.Warn("answer for a batch not in flight on this stream; ignored", "seq", m.seq)
		}
		if w != nil {
			w.ch <- answer{result: m.result, ack: m.ack}
		}
	}
}

// fail ends the stream for everyone: callers waiting for an answer or for
// credit get err.
func (c *batchClient) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	waiting := c.waiting
	c.waiting = map[uint64]*call{}
	c.wakeLocked()
	c.mu.Unlock()
	for _, w := range waiting {
		w.ch <- answer{err: err}
	}
}

// closeSend closes the sending side once; sends in progress finish first.
func (c *batchClient) closeSend() {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if !c.sendClosed {
		c.sendClosed = true
		_ = c.close()
	}
}

// busy reports whether seq is unanswered on this stream.
func (c *batchClient) busy(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.waiting[seq]
	return ok
}

// chunks splits batch at the component's max_batch.
func (c *batchClient) chunks(batch []*flow.Event) [][]*flow.Event {
	size := c.maxBatch
	if size <= 0 || size > flow.MaxBatch {
		size = flow.MaxBatch
	}
	if len(batch) <= size {
		return [][]*flow.Event{batch}
	}
	var out [][]*flow.Event
	for len(batch) > 0 {
		n := min(size, len(batch))
		out = append(out, batch[:n])
		batch = batch[n:]
	}
	return out
}

// roundTrips sends batch (in chunks, if it exceeds max_batch) and waits
// for every chunk's answer. The answers are in chunk order.
func (c *batchClient) roundTrips(ctx context.Context, batch []*flow.Event) ([]answer, [][]*flow.Event, error) {
	if len(batch) == 0 {
		return nil, nil, nil
	}
	d := deliveryFrom(ctx)
	parts := c.chunks(batch)
	calls := make([]*call, 0, len(parts))
	for i, p := range parts {
		w, err := c.startCall(ctx, d, i, len(parts), p)
		if err != nil {
			// The chunks already sent stay in flight: their seqs are busy
			// on this stream until answered (the answers are dropped), so
			// a retry here sends them with new seqs.
			return nil, nil, err
		}
		calls = append(calls, w)
	}
	answers := make([]answer, len(calls))
	for i, w := range calls {
		select {
		case a := <-w.ch:
			if a.err != nil {
				return nil, nil, a.err
			}
			answers[i] = a
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("wait for the %s's answer: %w", c.what, ctx.Err())
		}
	}
	return answers, parts, nil
}

// startCall waits for a credit, then sends one chunk.
func (c *batchClient) startCall(ctx context.Context, d *delivery, i, n int, events []*flow.Event) (*call, error) {
	for {
		c.mu.Lock()
		switch {
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return nil, err
		case c.draining:
			c.mu.Unlock()
			return nil, errDraining
		case c.credit > 0:
			c.credit--
			c.mu.Unlock()
			return c.sendCall(d, i, n, events)
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for credit from the %s: %w", c.what, ctx.Err())
		}
	}
}

// sendCall sends one chunk with a credit already taken.
func (c *batchClient) sendCall(d *delivery, i, n int, events []*flow.Event) (*call, error) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	seq, redelivered := d.chunkSeq(i, n, c.busy)
	w := &call{seq: seq, ch: make(chan answer, 1)}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.waiting[seq] = w
	c.mu.Unlock()
	if c.sendClosed {
		c.forget(seq)
		return nil, errDraining
	}
	err := c.send(&outBatch{seq: seq, events: events, redelivered: redelivered})
	if err != nil {
		if errors.Is(err, io.EOF) {
			// The stream is broken; its cause comes from the receive loop,
			// which fails the call.
			<-c.done
			if a := <-w.ch; a.err != nil {
				return nil, a.err
			}
		}
		// Not sent (for example larger than the message limit): the
		// stream lives on, and so does the credit.
		c.forget(seq)
		c.mu.Lock()
		c.credit++
		c.mu.Unlock()
		return nil, fmt.Errorf("send a batch of %d events to the %s: %w", len(events), c.what, err)
	}
	d.markSent(i)
	return w, nil
}

// forget removes a call that was never sent.
func (c *batchClient) forget(seq uint64) {
	c.mu.Lock()
	delete(c.waiting, seq)
	c.mu.Unlock()
}

// shutdown closes the stream: batches in flight fail with ErrClosed.
func (c *batchClient) shutdown() error {
	var err error
	c.closeOnce.Do(func() {
		c.closeSend()
		c.fail(fmt.Errorf("%s connection: %w", c.what, ErrClosed))
		c.cancel()
		<-c.done
		if c.release != nil {
			err = c.release()
		}
	})
	return err
}
