package engine

import (
	"sync/atomic"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// LatencyBuckets are the upper bounds of the batch latency histogram.
var LatencyBuckets = []time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second,
}

// histogram counts durations into LatencyBuckets; updated once per batch.
type histogram struct {
	count, sum atomic.Int64 // sum in nanoseconds
	buckets    []atomic.Int64
}

func newHistogram() histogram {
	return histogram{buckets: make([]atomic.Int64, len(LatencyBuckets)+1)}
}

func (h *histogram) observe(d time.Duration) {
	h.count.Add(1)
	h.sum.Add(int64(d))
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	h.buckets[i].Add(1)
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Count: h.count.Load(), Sum: time.Duration(h.sum.Load()), BucketHits: make([]int64, len(h.buckets))}
	for i := range h.buckets {
		out.BucketHits[i] = h.buckets[i].Load()
	}
	return out
}

// Histogram is a snapshot of durations counted into LatencyBuckets:
// BucketHits[i] counts those at most LatencyBuckets[i] (the last entry:
// longer than every bound).
type Histogram struct {
	Count      int64
	Sum        time.Duration
	BucketHits []int64
}

// counters are one node's live statistics, updated once per batch.
type counters struct {
	in, out, errors, dropped, deadLettered, filtered, retries atomic.Int64
	unrouted                                                  atomic.Int64
	batches                                                   atomic.Int64
	latencySum                                                atomic.Int64 // nanoseconds
	buckets                                                   []atomic.Int64
	// proc is the time a processor or sink spent on each batch (this hop
	// alone); e2e, for a source, the time from emitting a batch to every
	// sink having acknowledged all that derived from it.
	proc, e2e histogram
}

func newCounters() *counters {
	return &counters{buckets: make([]atomic.Int64, len(LatencyBuckets)+1), proc: newHistogram(), e2e: newHistogram()}
}

// observe records that a component finished a batch d after its source
// emitted it.
func (c *counters) observe(d time.Duration) {
	c.batches.Add(1)
	c.latencySum.Add(int64(d))
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	c.buckets[i].Add(1)
}

// ComponentStats is a snapshot of one component's counters.
type ComponentStats struct {
	Name       string
	Role       flow.Role
	DeadLetter bool
	// In counts events received (for a source: none), Out events emitted
	// (for a sink: written).
	In, Out int64
	// Errors counts failed attempts (an event retried twice counts 3
	// errors if the third attempt fails too).
	Errors int64
	// Dropped, DeadLettered and Filtered count events that ended here:
	// dropped by on_error, sent to the dead-letter sink, or kept back by a
	// processor that emitted nothing for them.
	Dropped, DeadLettered, Filtered int64
	// Retries counts events tried again.
	Retries int64
	// Unrouted counts events the component emitted that no input took
	// (every edge out of it selects types, and none matched).
	Unrouted int64
	// QueueDepth is the number of events waiting in the input queue now;
	// QueueCapacity its bound (0 for a source).
	QueueDepth, QueueCapacity int
	// Batches counts batches the component finished; LatencyBuckets[i]
	// how many of them were at most LatencyBuckets[i] old (the last entry:
	// older than every bound), LatencySum their total age. A batch's age is
	// the time since its source emitted it.
	Batches           int64
	LatencyBucketHits []int64
	LatencySum        time.Duration
	// Processing is the time a processor or sink spent per batch: this
	// hop alone, without the queue before it or the push after it (a
	// sink's retries and their waits count). EndToEnd, for a source, is
	// the time from emitting a batch to its acknowledgement: every sink
	// wrote all that derived from it.
	Processing, EndToEnd Histogram
	// Health is what the engine sees of the component: degraded while a
	// sink retries a failed write, unhealthy once its waits between
	// attempts reached max_backoff; Reason says why when not healthy.
	Health Health
	Reason string
	// Bounded is true for a source that ends by itself (flow.Bounded);
	// Finished once its Run returned by itself, not because the run was
	// stopped: it emitted everything it had.
	Bounded, Finished bool
}

// Stats is a snapshot of a run.
type Stats struct {
	// Started is when Run started (zero before), Elapsed the time since
	// (or the run's length once it ended).
	Started time.Time
	Elapsed time.Duration
	// Components are in topological order, the dead-letter sink last.
	Components []ComponentStats
	// Pending is the number of source batches not yet acknowledged
	// (including those of sources a Reload replaced or removed).
	Pending int
	// Ready is true once every component is open and running.
	Ready bool
	// Finished is true once Run returned.
	Finished bool
}

// Stats returns a snapshot of every component's counters. It is safe to
// call from any goroutine at any time. After a Reload it lists the
// components running then: added ones once they are wired in, removed
// ones until they finished draining; a changed component keeps its
// counters (they go on rising) and its queue is the new instance's.
func (e *Engine) Stats() Stats {
	s := Stats{Ready: e.ready.Load(), Finished: e.finished.Load()}
	if st := e.started.Load(); st != nil {
		s.Started = *st
		if end := e.ended.Load(); end != nil {
			s.Elapsed = end.Sub(*st)
		} else {
			s.Elapsed = time.Since(*st)
		}
	}
	for _, n := range e.retiredNodes() {
		if n.role == flow.RoleSource {
			s.Pending += n.pendingCount()
		}
	}
	for _, n := range e.list() {
		c := n.stats
		cs := ComponentStats{
			Name: n.name, Role: n.role, DeadLetter: n.deadLetter,
			In: c.in.Load(), Out: c.out.Load(), Errors: c.errors.Load(),
			Dropped: c.dropped.Load(), DeadLettered: c.deadLettered.Load(),
			Filtered: c.filtered.Load(), Retries: c.retries.Load(), Unrouted: c.unrouted.Load(),
			Batches: c.batches.Load(), LatencySum: time.Duration(c.latencySum.Load()),
			Finished: n.finishedAlone.Load(),
		}
		cs.Health, cs.Reason = n.healthNow()
		if b, ok := n.comp.(flow.Bounded); ok && n.role == flow.RoleSource {
			cs.Bounded = b.Bounded()
		}
		cs.Processing, cs.EndToEnd = c.proc.snapshot(), c.e2e.snapshot()
		cs.LatencyBucketHits = make([]int64, len(c.buckets))
		for i := range c.buckets {
			cs.LatencyBucketHits[i] = c.buckets[i].Load()
		}
		if n.in != nil {
			cs.QueueDepth = n.in.depth()
			cs.QueueCapacity = n.in.capacity
		}
		if n.role == flow.RoleSource {
			s.Pending += n.pendingCount()
		}
		s.Components = append(s.Components, cs)
	}
	return s
}
