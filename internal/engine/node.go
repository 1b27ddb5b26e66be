package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/graph"
)

// outEdge is an edge as the upstream node sees it.
type outEdge struct {
	to    *node
	types []string // nil: every type crosses
}

func (o *outEdge) accepts(t string) bool { return o.types == nil || slices.Contains(o.types, t) }

// node is a component at run time.
type node struct {
	e          *Engine
	gn         *graph.Node
	name       string
	role       flow.Role
	deadLetter bool
	comp       any
	src        flow.Source
	proc       flow.Processor
	// batchProc is proc when it handles whole batches (an external
	// component, for which a call is a round trip).
	batchProc flow.BatchProcessor
	sink      flow.Sink
	log       *slog.Logger

	in       *queue // nil for a source
	outs     []outEdge
	policy   policy
	stats    *counters
	parallel int
	ordered  bool

	// seq lets ordered parallel workers emit in input order.
	seq struct {
		mu   sync.Mutex
		cond *sync.Cond
		next uint64
	}

	// pending holds a source's unacknowledged batches.
	pmu     sync.Mutex
	pending map[*ack]struct{}

	// track follows a source's acknowledged positions (see checkpoint.go);
	// sinkTrack what a checkpointing sink wrote, nil for other sinks.
	track     *srcTrack
	sinkTrack *sinkTrack

	lastLog    atomic.Int64 // run-relative nanoseconds of the last error log
	suppressed atomic.Int64

	// gate lets Reload hold the node between batches (see reload.go).
	gate gate
	// health is a sink's failure streak (see health.go).
	health healthState

	// ctx and cancel bound a source's Run (a child of the run's source
	// context, so that Reload can stop one source).
	ctx    context.Context
	cancel context.CancelFunc

	// finishedAlone is set when a source's Run returned by itself (not
	// cancelled, no error).
	finishedAlone atomic.Bool

	// done is closed when the node's goroutine returned.
	done chan struct{}
	// ended is set once the node will send nothing more: it told its
	// downstream queues, or Reload took its place over.
	ended atomic.Bool
	// endMu guards exited and owned: whether the goroutine finished its
	// work, and whether Reload (rather than the goroutine) then tells the
	// downstream queues and closes the component.
	endMu  sync.Mutex
	exited bool
	owned  bool
}

// run drives the node until its input is drained (or its source is
// exhausted), tells the nodes downstream, and closes the component —
// unless Reload took the node over meanwhile (see takeOver), which then
// does both itself.
func (n *node) run() {
	defer close(n.done)
	switch n.role {
	case flow.RoleSource:
		err := n.src.Run(n.ctx, &emitter{n: n})
		if err == nil && n.ctx.Err() == nil {
			n.finishedAlone.Store(true)
		}
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errStopped) {
			n.e.fail(fmt.Errorf("source %q: %w", n.name, err))
		}
	default:
		var wg sync.WaitGroup
		for range n.parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.work()
			}()
		}
		wg.Wait()
	}
	n.endMu.Lock()
	n.exited = true
	owned := n.owned
	n.endMu.Unlock()
	if owned {
		return
	}
	// Between batches, so that Reload is not rewiring the edges meanwhile;
	// a run stopped hard needs no more signals.
	if _, ok := n.enter(nil); ok {
		n.finish()
		n.leave()
	}
	n.ended.Store(true)
	if err := n.close(); err != nil {
		n.e.recordErr(err)
	}
}

// finish tells every queue n feeds (and the dead-letter sink's) that n
// will push no more.
func (n *node) finish() {
	for i := range n.outs {
		n.outs[i].to.in.producerDone()
	}
	if d := n.e.dead; d != nil && !n.deadLetter {
		d.in.producerDone()
	}
	n.ended.Store(true)
}

// close closes the component, if it has resources, within the grace
// period.
func (n *node) close() error {
	c, ok := n.comp.(flow.Closer)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.e.opts.Grace)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		return fmt.Errorf("close %s %q: %w", n.role, n.name, err)
	}
	return nil
}

// work is one worker of a processor or sink. It pops inside the gate, so
// a batch a worker holds always counts for Reload's pause.
func (n *node) work() {
	var buf []*flow.Event
	for {
		pausing, ok := n.enter(nil)
		if !ok {
			return // stopped hard while held for a reload
		}
		b, seq, res := n.in.pop(n.e.hard, pausing)
		switch res {
		case popEnd:
			n.leave()
			return
		case popPaused:
			n.leave()
			continue
		}
		n.e.opts.Taps.Publish(n.name, true, b.events)
		if n.sink != nil {
			n.writeBatch(b)
			n.leave()
			continue
		}
		buf = n.processBatch(b, seq, buf)
		n.leave()
		if n.e.stopped() {
			return
		}
	}
}

// emitter is the flow.Emitter a source gets.
type emitter struct{ n *node }

// Emit implements flow.Emitter. The first push may give up when ctx is
// done (the batch was not handed over: done gets ctx's error); once part
// of the batch is queued, the rest is queued too unless the run is
// stopped hard, so a drain never loses half a batch.
func (em *emitter) Emit(ctx context.Context, events []*flow.Event, done func(error)) error {
	return em.emit(ctx, events, done, nil)
}

// EmitAt implements flow.PositionEmitter: the batch's position is
// committed once it and every batch before it were acknowledged.
func (em *emitter) EmitAt(ctx context.Context, events []*flow.Event, pos flow.Position) error {
	return em.emit(ctx, events, nil, &pos)
}

func (em *emitter) emit(ctx context.Context, events []*flow.Event, done func(error), pos *flow.Position) error {
	n := em.n
	e := n.e
	if len(events) == 0 {
		flow.RecycleBatch(events)
		if done != nil {
			done(nil)
		}
		if pos != nil {
			// Nothing to write: the position is reached once every
			// batch before is acknowledged.
			n.track.done(n.track.assign(), *pos)
		}
		return nil
	}
	chunks := (len(events) + flow.MaxBatch - 1) / flow.MaxBatch
	a, err := n.begin(ctx, done, pos, int64(chunks))
	if err != nil {
		return err
	}
	defer n.leave()
	n.traceBatch(a, len(events))

	soft := ctx.Done()
	for i := 0; i < len(events); i += flow.MaxBatch {
		j := min(i+flow.MaxBatch, len(events))
		b := batchPool.Get().(*batch)
		if chunks == 1 {
			flow.RecycleBatch(b.events)
			b.events = events
		} else {
			b.events = append(b.events[:0], events[i:j]...)
		}
		b.ack = a
		b.refs.Store(1)
		if !n.send(b, soft) {
			if soft != nil && !e.stopped() {
				// Nothing was handed over: forget the batch.
				n.pmu.Lock()
				delete(n.pending, a)
				n.pmu.Unlock()
				if done != nil {
					done(ctx.Err())
				}
				return ctx.Err()
			}
			return errStopped
		}
		n.stats.out.Add(int64(j - i))
		soft = nil
	}
	if chunks > 1 {
		flow.RecycleBatch(events)
	}
	return nil
}

// Reject implements flow.Rejecter: the events go where the source's
// on_error sends a failed event (dead_letter when the pipeline has a
// dead-letter sink, else drop), counted on the source, under an ack of
// their own so that done fires once the dead-letter sink wrote them.
func (em *emitter) Reject(ctx context.Context, events []*flow.Event, errs []error, done func(error)) error {
	n := em.n
	e := n.e
	if len(events) != len(errs) {
		return fmt.Errorf("reject: %d events but %d errors", len(events), len(errs))
	}
	if len(events) == 0 {
		if done != nil {
			done(nil)
		}
		return nil
	}
	// Rejected events take a place in the source's order, so that its
	// position moves past them only once they were dead-lettered; they
	// move it nowhere themselves (the next EmitAt does).
	a, err := n.begin(ctx, done, &flow.Position{}, 1) // this call's hold, released below
	if err != nil {
		return err
	}
	defer n.leave()

	var t tally
	var dead []failure
	for i, ev := range events {
		t.errors++
		n.settleOne(failure{ev: ev, err: errs[i], attempts: 1}, &t, &dead)
	}
	t.flush(n.stats)
	if len(dead) > 0 {
		e.dead.in.push(n.deadLetterBatch(a, dead), nil, e.hard)
	}
	a.release()
	return nil
}

// begin starts a source call that hands events over: it enters n's gate
// (Reload rewires a source's edges only between batches) and registers a
// pending ack with holds references, numbered in the source's order when
// pos is not nil (see srcTrack). On error nothing was handed over, done
// was told, and the caller returns the error; otherwise the caller must
// leave the gate.
func (n *node) begin(ctx context.Context, done func(error), pos *flow.Position, holds int64) (*ack, error) {
	e := n.e
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e.stopped() {
		return nil, errStopped
	}
	if _, ok := n.enter(ctx.Done()); !ok {
		if e.stopped() {
			return nil, errStopped
		}
		if done != nil {
			done(ctx.Err())
		}
		return nil, ctx.Err()
	}
	a := ackPool.Get().(*ack)
	a.done, a.src, a.born = done, n, e.now()
	a.track = nil
	if pos != nil && n.track != nil {
		a.track, a.seq, a.pos = n.track, n.track.assign(), *pos
	}
	a.n.Store(holds)
	n.pmu.Lock()
	n.pending[a] = struct{}{}
	n.pmu.Unlock()
	return a, nil
}

// finishAck fires a's done callback once, if a is still pending.
func (n *node) finishAck(a *ack, err error) {
	n.pmu.Lock()
	_, ok := n.pending[a]
	delete(n.pending, a)
	n.pmu.Unlock()
	if !ok {
		return
	}
	a.endTrace(err)
	if a.done != nil {
		a.done(err)
	}
	if err == nil && a.track != nil {
		a.track.done(a.seq, a.pos)
	}
	if err == nil {
		n.stats.e2e.observe(time.Duration(n.e.now() - a.born))
		a.done, a.src, a.track, a.pos = nil, nil, nil, flow.Position{}
		ackPool.Put(a)
	}
}

// failPending tells the source every batch still pending that the run
// ended without writing it.
func (n *node) failPending(err error) {
	n.pmu.Lock()
	left := make([]*ack, 0, len(n.pending))
	for a := range n.pending {
		left = append(left, a)
	}
	n.pmu.Unlock()
	for _, a := range left {
		n.finishAck(a, err)
	}
}

func (n *node) pendingCount() int {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	return len(n.pending)
}

// target is one queue a batch goes to.
type target struct {
	q *queue
	b *batch
}

// send hands b (and the caller's reference to it) to every output edge:
// the same batch by reference where every event crosses, a new batch of
// the events an edge's types select otherwise. soft, if not nil, may
// abort the first push. It returns false when it gave up; nothing is
// released then (the run is stopping and pending acks are failed at the
// end).
func (n *node) send(b *batch, soft <-chan struct{}) bool {
	n.e.opts.Taps.Publish(n.name, false, b.events)
	outs := n.outs
	switch {
	case len(outs) == 0:
		b.release()
		return true
	case len(outs) == 1 && outs[0].types == nil:
		return outs[0].to.in.push(b, soft, n.e.hard)
	}
	var tb [8]target
	targets := tb[:0]
	shares := 0
	allTyped := true
	for i := range outs {
		if outs[i].types == nil {
			allTyped = false
			break
		}
	}
	if allTyped {
		// Count the events no input takes: they end here, and the summary
		// should say so rather than lose them silently.
		unrouted := 0
		for _, ev := range b.events {
			taken := false
			for i := range outs {
				if outs[i].accepts(ev.Type) {
					taken = true
					break
				}
			}
			if !taken {
				unrouted++
			}
		}
		if unrouted > 0 {
			n.stats.unrouted.Add(int64(unrouted))
		}
	}
	for i := range outs {
		o := &outs[i]
		if o.types == nil {
			targets = append(targets, target{o.to.in, b})
			shares++
			continue
		}
		crossing := 0
		for _, ev := range b.events {
			if o.accepts(ev.Type) {
				crossing++
			}
		}
		switch crossing {
		case len(b.events):
			targets = append(targets, target{o.to.in, b})
			shares++
		case 0:
		default:
			nb := newBatch(b.ack)
			for _, ev := range b.events {
				if o.accepts(ev.Type) {
					nb.events = append(nb.events, ev)
				}
			}
			targets = append(targets, target{o.to.in, nb})
		}
	}
	if shares == 0 {
		b.release()
	} else {
		b.refs.Add(int32(shares - 1))
	}
	for _, t := range targets {
		if !t.q.push(t.b, soft, n.e.hard) {
			return false
		}
		soft = nil
	}
	return true
}

// processBatch runs the processor over b. buf is the worker's scratch
// output slice, returned for reuse.
func (n *node) processBatch(b *batch, seq uint64, buf []*flow.Event) []*flow.Event {
	ctx := n.e.hardCtx
	start := n.e.now()
	out := buf[:0]
	var tally tally
	var failed []failure
	hop := n.startHop(b, "process")
	if n.batchProc != nil {
		out = n.processWhole(ctx, hop.events(b.events), out, &tally, &failed)
	} else {
		for _, ev := range b.events {
			start := len(out)
			var ok bool
			out, ok = n.processEvent(ctx, ev, out, &tally, &failed)
			if ok && len(out) == start {
				tally.filtered++
			}
			if n.e.stopped() {
				break
			}
		}
	}
	hop.end(len(out), tally.errors)
	n.stats.in.Add(int64(len(b.events)))
	tally.flush(n.stats)
	n.stats.proc.observe(time.Duration(n.e.now() - start))

	ordered := n.ordered && n.parallel > 1
	if ordered {
		n.waitTurn(seq)
	}
	// Failed events leave for the dead-letter sink as a batch derived from
	// b, made before b can be released.
	born := b.ack.born // b may be gone once sent
	var dl *batch
	if len(failed) > 0 {
		dl = n.deadLetterBatch(b.ack, failed)
	}
	forwarded := false
	if len(out) > 0 {
		n.stats.out.Add(int64(len(out)))
		if samePointers(out, b.events) {
			// Pass-through: forward the batch itself.
			forwarded = true
			n.send(b, nil)
		} else {
			for i := 0; i < len(out); i += flow.MaxBatch {
				nb := newBatch(b.ack)
				nb.events = append(nb.events, out[i:min(i+flow.MaxBatch, len(out))]...)
				if !n.send(nb, nil) {
					break
				}
			}
		}
	}
	if dl != nil {
		n.e.dead.in.push(dl, nil, n.e.hard)
	}
	n.stats.observe(time.Duration(n.e.now() - born))
	if !forwarded && !n.e.stopped() {
		b.release()
	}
	if ordered {
		n.passTurn()
	}
	clear(out)
	return out[:0]
}

func samePointers(a, b []*flow.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// waitTurn blocks until the batches popped before seq were emitted (or
// the run stopped).
func (n *node) waitTurn(seq uint64) {
	n.seq.mu.Lock()
	for n.seq.next != seq && !n.e.stopped() {
		n.seq.cond.Wait()
	}
	n.seq.mu.Unlock()
}

func (n *node) passTurn() {
	n.seq.mu.Lock()
	n.seq.next++
	n.seq.cond.Broadcast()
	n.seq.mu.Unlock()
}

// writeBatch writes b to the sink under its on_error policy, then
// releases it.
func (n *node) writeBatch(b *batch) {
	ctx := n.e.hardCtx
	start := n.e.now()
	hop := n.startHop(b, "write")
	events := hop.events(b.events)
	n.stats.in.Add(int64(len(events)))
	var tally tally
	var failed []failure
	for attempt := 1; len(events) > 0; attempt++ {
		err := n.sink.Write(ctx, events)
		if err == nil {
			tally.out += len(events)
			break
		}
		if errors.Is(err, flow.ErrStopRun) {
			tally.errors += len(events)
			n.e.fail(fmt.Errorf("%s %q: %w", n.role, n.name, err))
			break
		}
		if n.e.stopped() {
			break
		}
		bad, errs := failedEvents(events, err)
		tally.out += len(events) - len(bad)
		tally.errors += len(bad)
		if n.policy.mayRetry(attempt) {
			bad, errs = settlePermanent(bad, errs, attempt, &failed)
			if len(bad) == 0 {
				break
			}
			n.logError("write failed, retrying", errs[0], bad[0], attempt)
			tally.retries += len(bad)
			n.noteRetry(attempt, errs[0], &tally)
			if !n.sleep(n.policy.retryWait(attempt, err)) {
				break
			}
			events = bad
			continue
		}
		for i, ev := range bad {
			failed = append(failed, failure{ev: ev, err: errs[i], attempts: attempt})
		}
		break
	}
	if len(failed) > 0 {
		n.settle(b.ack, failed, &tally)
	}
	hop.end(tally.out, tally.errors)
	tally.flush(n.stats)
	if n.e.stopped() {
		// Not written (or not known to be): leave the ack pending, the
		// source hears of the failure when the run ends.
		return
	}
	n.noteDone(len(failed))
	now := n.e.now()
	n.stats.proc.observe(time.Duration(now - start))
	n.stats.observe(time.Duration(now - b.ack.born))
	if n.sinkTrack != nil {
		n.sinkTrack.record(b.ack)
	}
	b.release()
}

// failedEvents splits a Write error into the events that failed and their
// errors: the indexes of a *flow.BatchError, or every event.
func failedEvents(events []*flow.Event, err error) ([]*flow.Event, []error) {
	var be *flow.BatchError
	if errors.As(err, &be) && len(be.Failed) > 0 {
		idx := make([]int, 0, len(be.Failed))
		for i := range be.Failed {
			if i >= 0 && i < len(events) {
				idx = append(idx, i)
			}
		}
		if len(idx) > 0 {
			slices.Sort(idx)
			bad := make([]*flow.Event, len(idx))
			errs := make([]error, len(idx))
			for k, i := range idx {
				bad[k], errs[k] = events[i], be.Failed[i]
			}
			return bad, errs
		}
	}
	errs := make([]error, len(events))
	for i := range errs {
		errs[i] = err
	}
	return slices.Clone(events), errs
}

// sleep waits d unless the run is stopped hard first.
func (n *node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.e.hard:
		return false
	}
}

// logError logs a component error at most once a second per component,
// saying how many were not logged since.
func (n *node) logError(msg string, err error, ev *flow.Event, attempt int) {
	now := n.e.now()
	last := n.lastLog.Load()
	if (last != 0 && now-last < int64(time.Second)) || !n.lastLog.CompareAndSwap(last, max(now, 1)) {
		n.suppressed.Add(1)
		return
	}
	args := []any{logKeyError, err, logKeyAttempt, attempt}
	if ev != nil {
		args = append(args, logKeyEventID, ev.ID)
	}
	if s := n.suppressed.Swap(0); s > 0 {
		args = append(args, logKeySuppressed, s)
	}
	n.log.Warn(msg, args...)
}

var (
	_ flow.Emitter  = (*emitter)(nil)
	_ flow.Rejecter = (*emitter)(nil)
)
