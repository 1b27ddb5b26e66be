package engine

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/flowctl/flowctl/internal/flow"
)

// ack tracks one source batch: n counts the live batches derived from it.
// It starts at the number of chunks the source batch was cut into; every
// derived batch adds one when it is made and subtracts one when released.
type ack struct {
	n    atomic.Int64
	done func(error)
	src  *node
	// born is when the source emitted the batch (monotonic nanoseconds
	// since the run started), for batch latency.
	born int64
	// track, seq and pos: a replayable source's batch (EmitAt), its
	// sequence number and the position it ends at; track is nil otherwise.
	track *srcTrack
	seq   uint64
	pos   flow.Position
	// span is the batch's root span when it is traced (trace.go), else nil.
	span trace.Span
}

var ackPool = sync.Pool{New: func() any { return new(ack) }}

// batch is the unit that moves between nodes. refs counts the queues (or
// workers) holding it: a fan-out hands the same batch to several nodes.
type batch struct {
	events []*flow.Event
	ack    *ack
	refs   atomic.Int32
}

var batchPool = sync.Pool{New: func() any {
	return &batch{events: make([]*flow.Event, 0, flow.MaxBatch)}
}}

// newBatch returns an empty batch derived from a (which now counts it),
// holding one reference.
func newBatch(a *ack) *batch {
	b := batchPool.Get().(*batch)
	b.ack = a
	b.refs.Store(1)
	a.n.Add(1)
	return b
}

// release drops one reference; the last one gives the batch back to the
// pool and releases its hold on the ack.
func (b *batch) release() {
	if b.refs.Add(-1) != 0 {
		return
	}
	a := b.ack
	b.ack = nil
	if cap(b.events) == flow.MaxBatch {
		clear(b.events)
		b.events = b.events[:0]
	} else {
		// A source's odd-sized slice: let it go, take a standard one.
		b.events = flow.NewBatch()
	}
	batchPool.Put(b)
	a.release()
}

// release drops one hold; the last fires the source's done callback.
func (a *ack) release() {
	if a.n.Add(-1) == 0 {
		a.src.finishAck(a, nil)
	}
}
