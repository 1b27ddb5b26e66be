package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/flowctl/flowctl/internal/backoff"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// DeadLetterType is the type of the events the dead-letter sink receives.
const DeadLetterType = flow.DeadLetterType

const (
	policyRetry      = spec.OnErrorRetry
	policyDeadLetter = spec.OnErrorDeadLetter
	policyDrop       = spec.OnErrorDrop
	policyStop       = spec.OnErrorStop
)

// policy is a component's on_error with DESIGN.md's defaults applied.
type policy struct {
	first string // retry | dead_letter | drop | stop
	then  string // after the last retry: dead_letter | drop | stop
	// maxAttempts bounds the attempts of a retry; 0 retries for ever (a
	// sink's default: it waits for its endpoint, and backpressure holds
	// the sources).
	maxAttempts int
	backoff     backoff.Policy
}

// resolvePolicy applies the defaults: sinks retry then stop; processors
// dead-letter when the pipeline has a dead-letter sink, else drop. A
// dead_letter without a dead-letter sink (or in the dead-letter sink
// itself) becomes drop: the event is counted and logged, never looped.
// MaxAttempts 0 means no limit (the spec gives sinks 0 and processors 3
// when the file says nothing).
func resolvePolicy(oe spec.OnError, role flow.Role, isDead, hasDead bool) policy {
	fallback := policyDrop
	if role == flow.RoleSink {
		fallback = policyStop
	} else if hasDead {
		fallback = policyDeadLetter
	}
	p := policy{first: oe.Policy, then: oe.Then, maxAttempts: max(oe.MaxAttempts, 0),
		backoff: backoff.Policy{Base: oe.Backoff, Max: oe.MaxBackoff, Jitter: backoff.DefaultJitter}}
	if p.first == "" {
		if role == flow.RoleSink {
			p.first = policyRetry
		} else {
			p.first = fallback
		}
	}
	if p.then == "" || p.then == policyRetry {
		p.then = fallback
	}
	if p.backoff.Base <= 0 {
		p.backoff.Base = spec.DefaultBackoff
	}
	if p.backoff.Max <= 0 {
		p.backoff.Max = spec.DefaultMaxBackoff
	}
	if !hasDead || isDead {
		if p.first == policyDeadLetter {
			p.first = policyDrop
		}
		if p.then == policyDeadLetter {
			p.then = policyDrop
		}
	}
	return p
}

// mayRetry reports whether the policy tries again after the attempt-th
// failed attempt.
func (p policy) mayRetry(attempt int) bool {
	return p.first == policyRetry && (p.maxAttempts == 0 || attempt < p.maxAttempts)
}

// retryWait is the wait after the attempt-th failed attempt: what the
// failure asked for (an HTTP Retry-After), else the jittered backoff.
func (p policy) retryWait(attempt int, err error) time.Duration {
	if d, ok := flow.RetryAfter(err); ok {
		return d
	}
	return p.backoff.Delay(attempt)
}

// final is what happens to an event once no more attempts are made.
func (p policy) final() string {
	if p.first == policyRetry {
		return p.then
	}
	return p.first
}

// tally gathers one batch's counts so the shared counters are touched once
// per batch, not per event.
type tally struct {
	out, errors, dropped, deadLettered, filtered, retries int
}

func (t *tally) flush(c *counters) {
	add := func(a interface{ Add(int64) int64 }, v int) {
		if v != 0 {
			a.Add(int64(v))
		}
	}
	if t.out != 0 && c != nil {
		// Sinks count what they wrote here; processors count their output
		// when they send it.
		c.out.Add(int64(t.out))
	}
	add(&c.errors, t.errors)
	add(&c.dropped, t.dropped)
	add(&c.deadLettered, t.deadLettered)
	add(&c.filtered, t.filtered)
	add(&c.retries, t.retries)
}

// failure is an event a component gave up on.
type failure struct {
	ev       *flow.Event
	err      error
	attempts int
}

// processEvent runs the processor on one event under the on_error policy,
// appending its output to out. ok is false when the event failed for good
// (it was then dropped, queued in failed for the dead-letter sink, or the
// run was stopped).
func (n *node) processEvent(ctx context.Context, ev *flow.Event, out []*flow.Event, t *tally, failed *[]failure) ([]*flow.Event, bool) {
	start := len(out)
	for attempt := 1; ; attempt++ {
		res, err := n.proc.Process(ctx, ev, out)
		if err == nil {
			return res, true
		}
		out = res[:start]
		t.errors++
		if errors.Is(err, flow.ErrStopRun) {
			n.e.fail(fmt.Errorf("%s %q: %w", n.role, n.name, err))
			return out, false
		}
		if n.e.stopped() {
			return out, false
		}
		if n.policy.mayRetry(attempt) && !errors.Is(err, flow.ErrPermanent) {
			n.logError("process failed, retrying", err, ev, attempt)
			t.retries++
			if !n.sleep(n.policy.retryWait(attempt, err)) {
				return out, false
			}
			continue
		}
		n.settleOne(failure{ev: ev, err: err, attempts: attempt}, t, failed)
		return out, false
	}
}

// processWhole runs a flow.BatchProcessor over events, applying on_error
// per failed event: a retry sends the failed events again as a smaller
// batch (so their outputs come after the others'), and an error for the
// whole call fails every event of it.
func (n *node) processWhole(ctx context.Context, events []*flow.Event, out []*flow.Event, t *tally, failed *[]failure) []*flow.Event {
	pending := events
	for attempt := 1; len(pending) > 0; attempt++ {
		outs, failures, err := n.batchProc.ProcessBatch(ctx, pending)
		if err == nil && len(outs) != len(pending) {
			err = fmt.Errorf("processor returned results for %d events of a batch of %d", len(outs), len(pending))
		}
		var bad []*flow.Event
		var errs []error
		for i, ev := range pending {
			var evErr error
			if err != nil {
				evErr = err
			} else {
				evErr = failures[i]
			}
			if evErr != nil {
				bad = append(bad, ev)
				errs = append(errs, evErr)
				continue
			}
			if len(outs[i]) == 0 {
				t.filtered++
			}
			out = append(out, outs[i]...)
		}
		if len(bad) == 0 {
			break
		}
		t.errors += len(bad)
		if errors.Is(err, flow.ErrStopRun) {
			n.e.fail(fmt.Errorf("%s %q: %w", n.role, n.name, err))
			break
		}
		if n.e.stopped() {
			break
		}
		if n.policy.mayRetry(attempt) {
			var final []failure
			bad, errs = settlePermanent(bad, errs, attempt, &final)
			for _, f := range final {
				n.settleOne(f, t, failed)
			}
			if len(bad) == 0 {
				break
			}
			n.logError("process failed, retrying", errs[0], bad[0], attempt)
			t.retries += len(bad)
			if !n.sleep(n.policy.retryWait(attempt, errs[0])) {
				break
			}
			pending = bad
			continue
		}
		for i, ev := range bad {
			n.settleOne(failure{ev: ev, err: errs[i], attempts: attempt}, t, failed)
		}
		break
	}
	return out
}

// settlePermanent moves the events whose error is flow.ErrPermanent from
// bad/errs to final (they are not retried) and returns the rest.
func settlePermanent(bad []*flow.Event, errs []error, attempt int, final *[]failure) ([]*flow.Event, []error) {
	k := 0
	for i, ev := range bad {
		if errors.Is(errs[i], flow.ErrPermanent) {
			*final = append(*final, failure{ev: ev, err: errs[i], attempts: attempt})
			continue
		}
		bad[k], errs[k] = ev, errs[i]
		k++
	}
	return bad[:k], errs[:k]
}

// settle applies the final policy to events a sink failed to write.
func (n *node) settle(a *ack, failed []failure, t *tally) {
	var dead []failure
	for _, f := range failed {
		n.settleOne(f, t, &dead)
	}
	if len(dead) > 0 {
		n.e.dead.in.push(n.deadLetterBatch(a, dead), nil, n.e.hard)
	}
}

// settleOne drops f, queues it for the dead-letter sink, or stops the run.
func (n *node) settleOne(f failure, t *tally, dead *[]failure) {
	switch n.policy.final() {
	case policyDeadLetter:
		t.deadLettered++
		*dead = append(*dead, f)
		n.logError("event sent to the dead-letter sink", f.err, f.ev, f.attempts)
	case policyStop:
		n.e.fail(fmt.Errorf("%s %q failed on event %q after %d attempt(s) (on_error: stop): %w", n.role, n.name, f.ev.ID, f.attempts, f.err))
	default:
		t.dropped++
		n.logError("event dropped", f.err, f.ev, f.attempts)
	}
}

// deadLetterEvent wraps a failed event for the dead-letter sink: a new
// event whose data is a flow.DeadLetter saying where and why it failed,
// with the original inline, so that `flowctl dlq replay` can rebuild it.
func (n *node) deadLetterEvent(f failure) *flow.Event {
	data, err := json.Marshal(flow.NewDeadLetter(n.name, f.err, f.attempts, f.ev))
	if err != nil { // cannot happen: every field marshals
		data = []byte(fmt.Sprintf(`{"component":%q,"error":%q}`, n.name, err.Error()))
	}
	return &flow.Event{
		ID: f.ev.ID, Source: n.name, Type: DeadLetterType, Time: time.Now().UTC(),
		DataContentType: "application/json", Data: data, Metadata: f.ev.Metadata,
	}
}

// deadLetterBatch makes the batch of failed events, derived from a.
func (n *node) deadLetterBatch(a *ack, failed []failure) *batch {
	b := newBatch(a)
	for _, f := range failed {
		b.events = append(b.events, n.deadLetterEvent(f))
	}
	return b
}
