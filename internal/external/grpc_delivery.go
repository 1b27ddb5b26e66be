package external

import (
	"context"
	"sync"
	"sync/atomic"
)

// seqCounter hands out batch sequence numbers for the native protocol.
// One counter for the whole process makes a seq unique per hop, across
// every stream and every incarnation of a component, for the whole run,
// and strictly increasing across first deliveries on a hop, as
// stream.proto asks; seqs of one hop need not be contiguous. It starts at
// 1 (0 is never used).
var seqCounter atomic.Uint64

func nextSeq() uint64 { return seqCounter.Add(1) }

// delivery remembers the seqs one batch was sent with, so a redelivery of
// the same batch (after a broken stream or a restart) goes out with the
// same seqs and redelivered = true. A batch larger than the component's
// max_batch is sent in chunks, one seq each.
type delivery struct {
	mu   sync.Mutex
	seqs []uint64 // per chunk; 0 until assigned
	sent []bool   // per chunk: sent at least once
}

type deliveryKey struct{}

// WithDelivery returns ctx carrying a fresh delivery record for one batch.
// A caller that may send the same batch more than once (the supervisor
// redelivering after a crash) wraps ctx once per batch and passes the
// result, or any context derived from it, to every attempt: the native
// gRPC conns then resend the batch with the seq of its first delivery and
// redelivered = true, as stream.proto requires. Without it every attempt
// is a new delivery with a new seq, which the protocol also allows but
// which hides from the component that it may have seen the events.
func WithDelivery(ctx context.Context) context.Context {
	return context.WithValue(ctx, deliveryKey{}, &delivery{})
}

func deliveryFrom(ctx context.Context) *delivery {
	d, _ := ctx.Value(deliveryKey{}).(*delivery)
	return d
}

// chunkSeq returns the seq to send chunk i of n with and whether that is a
// redelivery, assigning a new seq on the first delivery. busy reports
// seqs still unanswered on the stream about to be used: such a seq cannot
// be sent there again (a protocol error), so the chunk gets a new one.
func (d *delivery) chunkSeq(i, n int, busy func(uint64) bool) (seq uint64, redelivered bool) {
	if d == nil {
		return nextSeq(), false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.seqs) != n {
		// First delivery, or the component's max_batch changed across a
		// restart so the chunks differ: start afresh.
		d.seqs = make([]uint64, n)
		d.sent = make([]bool, n)
	}
	if d.seqs[i] == 0 || busy(d.seqs[i]) {
		d.seqs[i] = nextSeq()
		d.sent[i] = false
	}
	return d.seqs[i], d.sent[i]
}

// markSent records that chunk i went out at least once.
func (d *delivery) markSent(i int) {
	if d == nil {
		return
	}
	d.mu.Lock()
	if i < len(d.sent) {
		d.sent[i] = true
	}
	d.mu.Unlock()
}
