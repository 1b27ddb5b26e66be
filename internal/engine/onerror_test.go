package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// failOdd fails events whose id ends in an odd digit, for its first
// `heal` attempts (heal < 0: always).
func failOdd(heal int) flow.Processor {
	attempts := map[string]int{}
	return procFunc(func(_ context.Context, e *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
		last := e.ID[len(e.ID)-1]
		if (last-'0')%2 == 1 {
			attempts[e.ID]++
			if heal < 0 || attempts[e.ID] <= heal {
				return out, fmt.Errorf("odd event %s", e.ID)
			}
		}
		return append(out, e), nil
	})
}

// failOddPermanently fails events whose id ends in an odd digit with
// flow.ErrPermanent.
var failOddPermanently = procFunc(func(_ context.Context, e *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	if (e.ID[len(e.ID)-1]-'0')%2 == 1 {
		return out, fmt.Errorf("odd event %s: %w", e.ID, flow.ErrPermanent)
	}
	return append(out, e), nil
})

// parseAmount fails on a payload that is not JSON, like a malformed input
// line reaching a processor that reads fields.
var parseAmount = procFunc(func(_ context.Context, e *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	if _, err := e.Value(); err != nil {
		return out, err
	}
	return append(out, e), nil
})

func TestProcessorOnError(t *testing.T) {
	fast := spec.OnError{Backoff: time.Millisecond}
	tests := []struct {
		name      string
		proc      flow.Processor
		onError   spec.OnError
		dead      bool
		wantOut   int
		wantDead  int
		attempts  int // attempts recorded in the dead letters
		stats     ComponentStats
		wantError string
	}{
		{name: "retry heals", proc: failOdd(2), onError: with(fast, "retry", "", 3), wantOut: 10,
			stats: ComponentStats{Errors: 10, Retries: 10}},
		{name: "retry then dead_letter", proc: failOdd(-1), onError: with(fast, "retry", "dead_letter", 3), dead: true,
			wantOut: 5, wantDead: 5, attempts: 3, stats: ComponentStats{Errors: 15, Retries: 10, DeadLettered: 5}},
		{name: "permanent not retried", proc: failOddPermanently, onError: with(fast, "retry", "dead_letter", 3), dead: true,
			wantOut: 5, wantDead: 5, attempts: 1, stats: ComponentStats{Errors: 5, DeadLettered: 5}},
		{name: "retry then drop", proc: failOdd(-1), onError: with(fast, "retry", "drop", 2), wantOut: 5,
			stats: ComponentStats{Errors: 10, Retries: 5, Dropped: 5}},
		{name: "dead_letter", proc: failOdd(-1), onError: with(fast, "dead_letter", "", 0), dead: true,
			wantOut: 5, wantDead: 5, attempts: 1, stats: ComponentStats{Errors: 5, DeadLettered: 5}},
		{name: "default with dead-letter sink", proc: failOdd(-1), dead: true,
			wantOut: 5, wantDead: 5, attempts: 1, stats: ComponentStats{Errors: 5, DeadLettered: 5}},
		{name: "default without dead-letter sink", proc: failOdd(-1), wantOut: 5,
			stats: ComponentStats{Errors: 5, Dropped: 5}},
		{name: "drop", proc: failOdd(-1), onError: with(fast, "drop", "", 0), dead: true, wantOut: 5,
			stats: ComponentStats{Errors: 5, Dropped: 5}},
		{name: "stop", proc: failOdd(-1), onError: with(fast, "stop", "", 0),
			wantError: `processor "p" failed on event "s:1" after 1 attempt(s) (on_error: stop): odd event s:1`},
		{name: "retry then stop", proc: failOdd(-1), onError: with(fast, "retry", "stop", 2),
			wantError: `processor "p" failed on event "s:1" after 2 attempt(s)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := events("s", 10)
			source := &sliceSource{events: in, size: 4}
			p := comp(proc, "p", tc.proc, "s")
			p.OnError = tc.onError
			out, dl := &memSink{}, &memSink{}
			pl := pipeline(comp(src, "s", source), p, comp(sink, "out", out, "p"))
			if tc.dead {
				pl.DeadLetter = comp(sink, "failed", dl)
			}
			e, err := run(t, pl, Options{})
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("got error %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(out.ids()); got != tc.wantOut {
				t.Errorf("out got %d events, want %d", got, tc.wantOut)
			}
			if got := len(dl.ids()); got != tc.wantDead {
				t.Errorf("dead letters: got %d, want %d", got, tc.wantDead)
			}
			for _, d := range dl.written {
				checkDeadLetter(t, d, "p", tc.attempts)
			}
			st := statsOf(e, "p")
			got := ComponentStats{Errors: st.Errors, Retries: st.Retries, Dropped: st.Dropped, DeadLettered: st.DeadLettered}
			if got.Errors != tc.stats.Errors || got.Retries != tc.stats.Retries || got.Dropped != tc.stats.Dropped || got.DeadLettered != tc.stats.DeadLettered {
				t.Errorf("stats: got %+v, want %+v", got, tc.stats)
			}
			if acks := source.acks(); len(acks) != 3 || slices.ContainsFunc(acks, func(e error) bool { return e != nil }) {
				t.Errorf("acks: %v", acks)
			}
		})
	}
}

func statsOf(e *Engine, name string) ComponentStats {
	for _, c := range e.Stats().Components {
		if c.Name == name {
			return c
		}
	}
	return ComponentStats{}
}

func checkDeadLetter(t *testing.T, d *flow.Event, component string, attempts int) map[string]any {
	t.Helper()
	if d.Type != DeadLetterType {
		t.Errorf("dead letter type %q", d.Type)
	}
	var rec struct {
		Component string         `json:"component"`
		Error     string         `json:"error"`
		Attempts  int            `json:"attempts"`
		Event     map[string]any `json:"event"`
	}
	if err := json.Unmarshal(d.Data, &rec); err != nil {
		t.Fatalf("dead letter data %s: %v", d.Data, err)
	}
	if rec.Component != component || rec.Attempts != attempts || rec.Error == "" || rec.Event["id"] != d.ID {
		t.Errorf("dead letter %s: want component %s, %d attempts", d.Data, component, attempts)
	}
	return rec.Event
}

// TestMalformedLine: a payload that is not JSON fails in the processor that
// parses it and reaches the dead-letter sink as a string; the run goes on.
func TestMalformedLine(t *testing.T) {
	in := []*flow.Event{ev("s", 0, "a", `{"amount":1}`), ev("s", 1, "a", `{"amount":`), ev("s", 2, "a", `{"amount":3}`)}
	out, dl := &memSink{}, &memSink{}
	pl := pipeline(comp(src, "s", &sliceSource{events: in, size: 3}), comp(proc, "parse", parseAmount, "s"), comp(sink, "out", out, "parse"))
	pl.DeadLetter = comp(sink, "failed", dl)
	if _, err := run(t, pl, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := out.ids(); !slices.Equal(got, []string{"s:0", "s:2"}) {
		t.Fatalf("out %v", got)
	}
	if len(dl.written) != 1 {
		t.Fatalf("dead letters %d", len(dl.written))
	}
	orig := checkDeadLetter(t, dl.written[0], "parse", 1)
	if orig["data"] != `{"amount":` {
		t.Errorf("malformed data kept as %v", orig["data"])
	}
}

func TestSinkOnError(t *testing.T) {
	fast := spec.OnError{Backoff: time.Millisecond}
	failIdx := func(untilAttempt int, idx ...int) func(int, []*flow.Event) error {
		return func(attempt int, b []*flow.Event) error {
			if untilAttempt >= 0 && attempt > untilAttempt {
				return nil
			}
			be := &flow.BatchError{Failed: map[int]error{}}
			for _, i := range idx {
				if i < len(b) {
					be.Failed[i] = errors.New("rejected")
				}
			}
			if len(be.Failed) == 0 {
				return nil
			}
			return be
		}
	}
	whole := func(untilAttempt int) func(int, []*flow.Event) error {
		return func(attempt int, _ []*flow.Event) error {
			if untilAttempt >= 0 && attempt > untilAttempt {
				return nil
			}
			return errors.New("disk full")
		}
	}
	permanent := func(attempt int, b []*flow.Event) error {
		return fmt.Errorf("status 400: %w", flow.ErrPermanent)
	}
	mixed := func(attempt int, b []*flow.Event) error {
		be := &flow.BatchError{Failed: map[int]error{}}
		if attempt == 1 {
			be.Failed[0] = fmt.Errorf("bad event: %w", flow.ErrPermanent)
			be.Failed[1] = errors.New("timeout")
		}
		if len(be.Failed) == 0 {
			return nil
		}
		return be
	}
	tests := []struct {
		name      string
		fail      func(int, []*flow.Event) error
		onError   spec.OnError
		wantOut   int
		wantDead  int
		wantError string
		stats     ComponentStats
		attempts  int // in the dead letters [max(1, onError.MaxAttempts)]
	}{
		{name: "permanent not retried", fail: permanent, onError: with(fast, "retry", "dead_letter", 3),
			wantDead: 4, stats: ComponentStats{Errors: 4, DeadLettered: 4}, attempts: 1},
		{name: "permanent settled, transient retried", fail: mixed, onError: with(fast, "retry", "dead_letter", 3),
			wantOut: 3, wantDead: 1, stats: ComponentStats{Errors: 2, Retries: 1, DeadLettered: 1, Out: 3}, attempts: 1},
		{name: "default retry heals", fail: whole(2), onError: fast, wantOut: 4, stats: ComponentStats{Errors: 8, Retries: 8, Out: 4}},
		{name: "default retries past 3 attempts", fail: whole(5), onError: fast, wantOut: 4, stats: ComponentStats{Errors: 20, Retries: 20, Out: 4}},
		{name: "retry then stop", fail: whole(-1), onError: with(fast, "retry", "stop", 3), wantError: `sink "out" failed on event "s:0" after 3 attempt(s) (on_error: stop): disk full`},
		{name: "batch error index dead-lettered", fail: failIdx(-1, 1), onError: spec.OnError{Policy: "dead_letter"},
			wantOut: 3, wantDead: 1, stats: ComponentStats{Errors: 1, DeadLettered: 1, Out: 3}},
		{name: "batch error retried only failed", fail: failIdx(1, 0, 1), onError: with(fast, "retry", "stop", 3),
			wantOut: 4, stats: ComponentStats{Errors: 2, Retries: 2, Out: 4}},
		{name: "retry then dead_letter", fail: whole(-1), onError: with(fast, "retry", "dead_letter", 2),
			wantDead: 4, stats: ComponentStats{Errors: 8, Retries: 4, DeadLettered: 4}},
		{name: "drop", fail: failIdx(-1, 0), onError: spec.OnError{Policy: "drop"}, wantOut: 3,
			stats: ComponentStats{Errors: 1, Dropped: 1, Out: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			source := &sliceSource{events: events("s", 4), size: 4}
			out, dl := &memSink{fail: tc.fail}, &memSink{}
			s := comp(sink, "out", out, "s")
			s.OnError = tc.onError
			pl := pipeline(comp(src, "s", source), s)
			pl.DeadLetter = comp(sink, "failed", dl)
			e, err := run(t, pl, Options{})
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("got error %v, want %q", err, tc.wantError)
				}
				if acks := source.acks(); len(acks) != 1 || acks[0] == nil {
					t.Errorf("a failed run must fail the pending ack, got %v", acks)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(out.ids()); got != tc.wantOut {
				t.Errorf("written %d, want %d", got, tc.wantOut)
			}
			if got := len(dl.written); got != tc.wantDead {
				t.Errorf("dead letters %d, want %d", got, tc.wantDead)
			}
			for _, d := range dl.written {
				attempts := tc.attempts
				if attempts == 0 {
					attempts = max(1, tc.onError.MaxAttempts)
				}
				checkDeadLetter(t, d, "out", attempts)
			}
			st := statsOf(e, "out")
			got := ComponentStats{Errors: st.Errors, Retries: st.Retries, Dropped: st.Dropped, DeadLettered: st.DeadLettered, Out: st.Out}
			if got.Errors != tc.stats.Errors || got.Retries != tc.stats.Retries || got.Dropped != tc.stats.Dropped ||
				got.DeadLettered != tc.stats.DeadLettered || got.Out != tc.stats.Out {
				t.Errorf("stats: got %+v, want %+v", got, tc.stats)
			}
			if acks := source.acks(); len(acks) != 1 || acks[0] != nil {
				t.Errorf("acks: %v", acks)
			}
		})
	}
}

func with(o spec.OnError, policy, then string, attempts int) spec.OnError {
	o.Policy, o.Then, o.MaxAttempts = policy, then, attempts
	return o
}

func TestBackoff(t *testing.T) {
	p := resolvePolicy(spec.OnError{Policy: "retry", Backoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}, flow.RoleSink, false, false)
	ceilings := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	for a, c := range ceilings {
		for range 50 {
			// Jittered between half and all of the ceiling, never above
			// max_backoff.
			if d := p.retryWait(a+1, errors.New("x")); d < c/2 || d > c {
				t.Fatalf("wait after attempt %d: %v, want in [%v, %v]", a+1, d, c/2, c)
			}
		}
	}
	// A failure that says when to come back is waited for as it asks.
	ra := &flow.RetryAfterError{Err: errors.New("status 503"), After: 2 * time.Second}
	if d := p.retryWait(1, fmt.Errorf("sink: %w", ra)); d != 2*time.Second {
		t.Fatalf("Retry-After wait %v, want 2s", d)
	}
	if p.final() != policyStop {
		t.Fatalf("sink default after retries: %s", p.final())
	}
	if p.maxAttempts != 0 || !p.mayRetry(1_000_000) {
		t.Fatalf("a sink without max_attempts retries for ever: %+v", p)
	}
	if q := resolvePolicy(spec.OnError{Policy: "retry", MaxAttempts: 3}, flow.RoleSink, false, false); !q.mayRetry(2) || q.mayRetry(3) {
		t.Fatal("max_attempts 3 allows exactly two retries")
	}
}

// batchProc is a flow.BatchProcessor that fails events with an odd id
// digit until their attempt number passes heal (heal < 0: always), and
// fails the whole call when whole is set.
type batchProc struct {
	heal     int
	whole    bool
	attempts map[string]int
	calls    int
}

func (p *batchProc) Process(context.Context, *flow.Event, []*flow.Event) ([]*flow.Event, error) {
	return nil, errors.New("the engine must call ProcessBatch")
}

func (p *batchProc) ProcessBatch(_ context.Context, in []*flow.Event) ([][]*flow.Event, map[int]error, error) {
	p.calls++
	if p.whole {
		return nil, nil, errors.New("component gone")
	}
	outs := make([][]*flow.Event, len(in))
	failures := map[int]error{}
	for i, e := range in {
		last := e.ID[len(e.ID)-1]
		if (last-'0')%2 == 1 {
			p.attempts[e.ID]++
			if p.heal < 0 || p.attempts[e.ID] <= p.heal {
				failures[i] = fmt.Errorf("odd event %s", e.ID)
				continue
			}
		}
		if last == '0' {
			continue // filtered
		}
		outs[i] = []*flow.Event{e}
	}
	return outs, failures, nil
}

func TestBatchProcessorOnError(t *testing.T) {
	fast := spec.OnError{Backoff: time.Millisecond}
	tests := []struct {
		name     string
		proc     *batchProc
		onError  spec.OnError
		wantOut  int
		wantDead int
		stats    ComponentStats
	}{
		{name: "retry heals", proc: &batchProc{heal: 1}, onError: with(fast, "retry", "", 3), wantOut: 9,
			stats: ComponentStats{Errors: 5, Retries: 5, Filtered: 1}},
		{name: "retry then dead_letter", proc: &batchProc{heal: -1}, onError: with(fast, "retry", "dead_letter", 2),
			wantOut: 4, wantDead: 5, stats: ComponentStats{Errors: 10, Retries: 5, DeadLettered: 5, Filtered: 1}},
		{name: "whole call fails", proc: &batchProc{whole: true}, onError: with(fast, "drop", "", 0),
			stats: ComponentStats{Errors: 10, Dropped: 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.proc.attempts = map[string]int{}
			source := &sliceSource{events: events("s", 10), size: 10}
			p := comp(proc, "p", tc.proc, "s")
			p.OnError = tc.onError
			out, dl := &memSink{}, &memSink{}
			pl := pipeline(comp(src, "s", source), p, comp(sink, "out", out, "p"))
			pl.DeadLetter = comp(sink, "failed", dl)
			e, err := run(t, pl, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(out.ids()); got != tc.wantOut {
				t.Errorf("out %d, want %d", got, tc.wantOut)
			}
			if got := len(dl.ids()); got != tc.wantDead {
				t.Errorf("dead letters %d, want %d", got, tc.wantDead)
			}
			st := statsOf(e, "p")
			got := ComponentStats{Errors: st.Errors, Retries: st.Retries, Dropped: st.Dropped, DeadLettered: st.DeadLettered, Filtered: st.Filtered}
			if !reflect.DeepEqual(got, tc.stats) {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
			if acks := source.acks(); len(acks) != 1 || acks[0] != nil {
				t.Errorf("acks %v", acks)
			}
		})
	}
}

// rejectingSource emits its good events and rejects its bad ones through
// the emitter's flow.Rejecter, recording both acknowledgements.
type rejectingSource struct {
	good, bad []*flow.Event
	mu        sync.Mutex
	acks      []error
}

func (s *rejectingSource) ack(err error) {
	s.mu.Lock()
	s.acks = append(s.acks, err)
	s.mu.Unlock()
}

func (s *rejectingSource) Run(ctx context.Context, out flow.Emitter) error {
	rej, ok := out.(flow.Rejecter)
	if !ok {
		return errors.New("the engine's emitter is not a flow.Rejecter")
	}
	errs := make([]error, len(s.bad))
	for i, e := range s.bad {
		errs[i] = fmt.Errorf("malformed %s", e.ID)
	}
	if err := rej.Reject(ctx, s.bad, errs, s.ack); err != nil {
		return err
	}
	return out.Emit(ctx, s.good, s.ack)
}

func TestSourceReject(t *testing.T) {
	for _, tc := range []struct {
		name      string
		onError   spec.OnError
		dead      bool
		stats     ComponentStats
		wantError string
	}{
		{name: "dead-lettered with a dead-letter sink", dead: true, stats: ComponentStats{Errors: 2, DeadLettered: 2}},
		{name: "dropped without one", stats: ComponentStats{Errors: 2, Dropped: 2}},
		{name: "on_error drop", dead: true, onError: spec.OnError{Policy: "drop"}, stats: ComponentStats{Errors: 2, Dropped: 2}},
		{name: "on_error stop", onError: spec.OnError{Policy: "stop"},
			wantError: `source "s" failed on event "s:1" after 1 attempt(s) (on_error: stop): malformed s:1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			source := &rejectingSource{
				good: []*flow.Event{ev("s", 0, "a", `{"n":0}`), ev("s", 2, "a", `{"n":2}`)},
				bad:  []*flow.Event{ev("s", 1, "a", `{"n":1e999}`), ev("s", 3, "a", "{\"s\":\"\xff\"}")},
			}
			sc := comp(src, "s", source)
			sc.OnError = tc.onError
			out, dl := &memSink{}, &memSink{}
			pl := pipeline(sc, comp(sink, "out", out, "s"))
			if tc.dead {
				pl.DeadLetter = comp(sink, "failed", dl)
			}
			e, err := run(t, pl, Options{})
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("got error %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := out.ids(); !slices.Equal(got, []string{"s:0", "s:2"}) {
				t.Errorf("out %v", got)
			}
			st := statsOf(e, "s")
			if st.Errors != tc.stats.Errors || st.Dropped != tc.stats.Dropped || st.DeadLettered != tc.stats.DeadLettered || st.Out != 2 {
				t.Errorf("source stats %+v, want %+v and 2 out", st, tc.stats)
			}
			if tc.dead && tc.stats.DeadLettered > 0 {
				if len(dl.written) != 2 {
					t.Fatalf("dead letters %d, want 2", len(dl.written))
				}
				orig := checkDeadLetter(t, dl.written[0], "s", 1)
				// 1e999 is not strict JSON: kept as a string.
				if orig["data"] != `{"n":1e999}` {
					t.Errorf("dead letter data %#v, want the line as a string", orig["data"])
				}
				var rec struct{ Error string }
				_ = json.Unmarshal(dl.written[0].Data, &rec)
				if rec.Error != "malformed s:1" {
					t.Errorf("dead letter error %q", rec.Error)
				}
				second := checkDeadLetter(t, dl.written[1], "s", 1)
				if second["data"] != nil || second["data_base64"] != "eyJzIjoi/yJ9" {
					t.Errorf("invalid UTF-8 kept as %#v / %#v, want data_base64", second["data"], second["data_base64"])
				}
			}
			source.mu.Lock()
			acks := source.acks
			source.mu.Unlock()
			if len(acks) != 2 || acks[0] != nil || acks[1] != nil {
				t.Errorf("acks %v, want two nil", acks)
			}
		})
	}
}
