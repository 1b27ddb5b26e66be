package engine

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

var (
	src, proc, sink = flow.RoleSource, flow.RoleProcessor, flow.RoleSink
)

// events makes n events of alternating types a and b.
func events(name string, n int) []*flow.Event {
	out := make([]*flow.Event, n)
	for i := range out {
		typ := "a"
		if i%2 == 1 {
			typ = "b"
		}
		out[i] = ev(name, i, typ, `{"i":`+itoa(i)+`}`)
	}
	return out
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func ids(evs []*flow.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestTopologies(t *testing.T) {
	type sinks map[string][]string // sink → expected ids (any order)
	tests := []struct {
		name  string
		build func() (*spec.Pipeline, []*sliceSource, map[string]*memSink)
		want  func(s1, s2 []*flow.Event) sinks
	}{
		{
			name: "linear",
			build: func() (*spec.Pipeline, []*sliceSource, map[string]*memSink) {
				a := &sliceSource{events: events("s1", 7), size: 3}
				out := &memSink{}
				return pipeline(comp(src, "s1", a), comp(proc, "p", passThrough, "s1"), comp(sink, "out", out, "p")),
					[]*sliceSource{a}, map[string]*memSink{"out": out}
			},
			want: func(s1, _ []*flow.Event) sinks { return sinks{"out": ids(s1)} },
		},
		{
			name: "fan-out",
			build: func() (*spec.Pipeline, []*sliceSource, map[string]*memSink) {
				a := &sliceSource{events: events("s1", 9), size: 4}
				x, y := &memSink{}, &memSink{}
				return pipeline(comp(src, "s1", a), comp(sink, "x", x, "s1"), comp(sink, "y", y, "s1")),
					[]*sliceSource{a}, map[string]*memSink{"x": x, "y": y}
			},
			want: func(s1, _ []*flow.Event) sinks { return sinks{"x": ids(s1), "y": ids(s1)} },
		},
		{
			name: "fan-in",
			build: func() (*spec.Pipeline, []*sliceSource, map[string]*memSink) {
				a := &sliceSource{events: events("s1", 5), size: 2}
				b := &sliceSource{events: events("s2", 6), size: 4}
				out := &memSink{}
				return pipeline(comp(src, "s1", a), comp(src, "s2", b), comp(sink, "out", out, "s1", "s2")),
					[]*sliceSource{a, b}, map[string]*memSink{"out": out}
			},
			want: func(s1, s2 []*flow.Event) sinks { return sinks{"out": append(ids(s1), ids(s2)...)} },
		},
		{
			name: "diamond",
			build: func() (*spec.Pipeline, []*sliceSource, map[string]*memSink) {
				a := &sliceSource{events: events("s1", 10), size: 3}
				out := &memSink{}
				return pipeline(comp(src, "s1", a),
						comp(proc, "left", passThrough, "s1"), comp(proc, "right", passThrough, "s1"),
						comp(sink, "out", out, "left", "right")),
					[]*sliceSource{a}, map[string]*memSink{"out": out}
			},
			want: func(s1, _ []*flow.Event) sinks { return sinks{"out": append(ids(s1), ids(s1)...)} },
		},
		{
			name: "type-routed",
			build: func() (*spec.Pipeline, []*sliceSource, map[string]*memSink) {
				a := &sliceSource{events: events("s1", 11), size: 4}
				onlyA, onlyB, both := &memSink{}, &memSink{}, &memSink{}
				return pipeline(comp(src, "s1", a),
						comp(proc, "p", passThrough, "s1"),
						comp(sink, "a", onlyA, "p:a"), comp(sink, "b", onlyB, "p:b"), comp(sink, "ab", both, "p:a,b")),
					[]*sliceSource{a}, map[string]*memSink{"a": onlyA, "b": onlyB, "ab": both}
			},
			want: func(s1, _ []*flow.Event) sinks {
				var a, b []string
				for _, e := range s1 {
					if e.Type == "a" {
						a = append(a, e.ID)
					} else {
						b = append(b, e.ID)
					}
				}
				return sinks{"a": a, "b": b, "ab": ids(s1)}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, srcs, outs := tc.build()
			if _, err := run(t, p, Options{}); err != nil {
				t.Fatalf("Run: %v", err)
			}
			var s2 []*flow.Event
			if len(srcs) > 1 {
				s2 = srcs[1].events
			}
			for name, want := range tc.want(srcs[0].events, s2) {
				if got := sorted(outs[name].ids()); !slices.Equal(got, sorted(want)) {
					t.Errorf("sink %s got %v, want %v", name, got, sorted(want))
				}
			}
			for _, s := range srcs {
				acks := s.acks()
				want := (len(s.events) + s.size - 1) / s.size
				if len(acks) != want {
					t.Errorf("source got %d acks, want %d", len(acks), want)
				}
				for _, err := range acks {
					if err != nil {
						t.Errorf("ack error: %v", err)
					}
				}
			}
		})
	}
}

// TestLinearOrder checks that a single-worker path keeps the source's
// order, and that parallel ordered workers do too.
func TestParallelism(t *testing.T) {
	for _, tc := range []struct {
		name     string
		parallel int
		ordered  bool
	}{{"one worker", 1, true}, {"four ordered", 4, true}, {"four unordered", 4, false}} {
		t.Run(tc.name, func(t *testing.T) {
			in := events("s", 2000)
			a := &sliceSource{events: in, size: 7}
			jitter := procFunc(func(_ context.Context, e *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
				if rand.IntN(50) == 0 {
					time.Sleep(50 * time.Microsecond)
				}
				return append(out, e.WithType("x")), nil
			})
			p := comp(proc, "p", jitter, "s")
			p.Parallelism, p.Ordered = tc.parallel, tc.ordered
			out := &memSink{}
			if _, err := run(t, pipeline(comp(src, "s", a), p, comp(sink, "out", out, "p")), Options{}); err != nil {
				t.Fatal(err)
			}
			got := out.ids()
			if tc.ordered && !slices.Equal(got, ids(in)) {
				t.Fatalf("order not kept: first ids %v", got[:min(10, len(got))])
			}
			if !slices.Equal(sorted(got), sorted(ids(in))) {
				t.Fatalf("got %d events, want %d", len(got), len(in))
			}
		})
	}
}

func TestExternalRefused(t *testing.T) {
	c := comp(proc, "enrich", nil, "s")
	c.Runner, c.Type, c.Command = spec.RunProcess, "", []string{"python3", "enrich.py"}
	p := pipeline(comp(src, "s", &sliceSource{}), c, comp(sink, "out", &memSink{}, "enrich"))
	_, err := New(p, testRegistry(t), Options{})
	if !errors.Is(err, ErrExternal) || !strings.Contains(err.Error(), `component "enrich" runs a command/image`) {
		t.Fatalf("got %v", err)
	}
}

// TestAckFanOutStalledSink: the source hears a batch is done only after
// both sinks of a fan-out wrote it, or after the stalled branch filtered
// it, or after the dead-letter sink wrote what the branch failed on.
func TestAckFanOutStalledSink(t *testing.T) {
	for _, mode := range []string{"written", "filtered", "dead-lettered"} {
		t.Run(mode, func(t *testing.T) {
			acked := make(chan error, 1)
			source := &oneBatch{ev: ev("s", 0, "a", `{}`), done: func(err error) { acked <- err }}
			fast := &memSink{}
			gate := make(chan struct{})
			slow, dead := &memSink{gate: gate}, &memSink{}
			branch := passThrough
			switch mode {
			case "filtered":
				branch = procFunc(func(_ context.Context, _ *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
					time.Sleep(200 * time.Millisecond) // the fast sink writes first
					return out, nil
				})
			case "dead-lettered":
				branch = procFunc(func(_ context.Context, _ *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
					return out, errors.New("cannot")
				})
				slow, dead = &memSink{}, &memSink{gate: gate}
			}
			p := pipeline(comp(src, "s", source), comp(sink, "fast", fast, "s"),
				comp(proc, "branch", branch, "s"), comp(sink, "slow", slow, "branch"))
			p.DeadLetter = comp(sink, "failed", dead)
			e, err := New(p, testRegistry(t), Options{})
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- e.Run(context.Background()) }()
			waitFor(t, func() bool { return fast.count.Load() == 1 })
			if mode == "filtered" {
				if err := <-acked; err != nil {
					t.Fatalf("ack: %v", err)
				}
				close(gate)
			} else {
				select {
				case <-acked:
					t.Fatal("done fired while the stalled sink had not written its part of the batch")
				case <-time.After(300 * time.Millisecond):
				}
				close(gate)
				if err := <-acked; err != nil {
					t.Fatalf("ack: %v", err)
				}
				if slow.count.Load()+dead.count.Load() != 1 {
					t.Fatal("done fired before the stalled sink wrote")
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// oneBatch emits one event and waits for its ack before returning.
type oneBatch struct {
	ev   *flow.Event
	done func(error)
}

func (s *oneBatch) Run(ctx context.Context, out flow.Emitter) error {
	return out.Emit(ctx, []*flow.Event{s.ev}, s.done)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestUnrouted: events of a type no input selects end at the emitter and
// are counted there.
func TestUnrouted(t *testing.T) {
	a := &sliceSource{events: events("s", 10), size: 4}
	onlyA := &memSink{}
	e, err := run(t, pipeline(comp(src, "s", a), comp(sink, "a", onlyA, "s:a")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(onlyA.ids()); got != 5 {
		t.Fatalf("sink got %d", got)
	}
	if st := statsOf(e, "s"); st.Unrouted != 5 || st.Out != 10 {
		t.Fatalf("source stats %+v", st)
	}
	if acks := a.acks(); len(acks) != 3 || slices.ContainsFunc(acks, func(e error) bool { return e != nil }) {
		t.Fatalf("acks %v", acks)
	}
}

// TestSplitChunks: a processor that emits several events per input makes
// more than flow.MaxBatch events from one batch; they leave in chunks of
// at most MaxBatch, all counted against the one source batch.
func TestSplitChunks(t *testing.T) {
	in := events("s", 400)
	a := &sliceSource{events: in, size: 200}
	triple := procFunc(func(_ context.Context, e *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
		for i := range 3 {
			out = append(out, &flow.Event{ID: e.ID + "/" + itoa(i), Type: e.Type, Data: e.Data})
		}
		return out, nil
	})
	var largest atomic.Int64
	out := &memSink{fail: func(_ int, b []*flow.Event) error {
		if int64(len(b)) > largest.Load() {
			largest.Store(int64(len(b)))
		}
		return nil
	}}
	e, err := run(t, pipeline(comp(src, "s", a), comp(proc, "split", triple, "s"), comp(sink, "out", out, "split")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(out.ids()); got != 1200 {
		t.Fatalf("sink got %d events", got)
	}
	if largest.Load() > flow.MaxBatch {
		t.Fatalf("a batch of %d events", largest.Load())
	}
	if st := statsOf(e, "out"); st.Batches < 6 {
		t.Fatalf("sink saw %d batches, want at least 6", st.Batches)
	}
	if acks := a.acks(); len(acks) != 2 || acks[0] != nil || acks[1] != nil {
		t.Fatalf("acks %v", acks)
	}
}

// TestSharedParse: an event fanned out to parallel workers of two
// processors is parsed once; every reader sees the same view (run with
// -race).
func TestSharedParse(t *testing.T) {
	in := events("s", 3000)
	a := &sliceSource{events: in, size: 100}
	var parses sync.Map // event id → the map its readers saw
	var mismatch atomic.Int64
	read := procFunc(func(_ context.Context, e *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
		v, err := e.Value()
		if err != nil {
			return out, err
		}
		m := v.(map[string]any)
		if prev, loaded := parses.LoadOrStore(e.ID, m); loaded && reflect.ValueOf(prev).Pointer() != reflect.ValueOf(m).Pointer() {
			mismatch.Add(1)
		}
		return append(out, e), nil
	})
	left, right := comp(proc, "left", read, "s"), comp(proc, "right", read, "s")
	left.Parallelism, right.Parallelism = 3, 3
	out := &countSink{}
	if _, err := run(t, pipeline(comp(src, "s", a), left, right, comp(sink, "out", out, "left", "right")), Options{}); err != nil {
		t.Fatal(err)
	}
	if out.n.Load() != 6000 || mismatch.Load() != 0 {
		t.Fatalf("wrote %d, %d events parsed more than once", out.n.Load(), mismatch.Load())
	}
}

// TestExternalBuilder: with Options.External, a component run by a
// command is built by it and runs like a built-in.
func TestExternalBuilder(t *testing.T) {
	c := comp(proc, "enrich", nil, "s")
	c.Runner, c.Type, c.Command = spec.RunProcess, "", []string{"python3", "enrich.py"}
	out := &memSink{}
	p := pipeline(comp(src, "s", &sliceSource{events: events("s", 5), size: 2}), c, comp(sink, "out", out, "enrich"))
	var built []string
	e, err := New(p, testRegistry(t), Options{External: func(c *spec.Component, bc flow.BuildContext) (any, error) {
		built = append(built, c.Name+":"+bc.Pipeline)
		return passThrough, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(built, []string{"enrich:test"}) || len(out.ids()) != 5 {
		t.Fatalf("built %v, wrote %d", built, len(out.ids()))
	}
}

// TestHopHistograms: each processor and sink counts its own time per
// batch, and each source the time from emitting a batch to its
// acknowledgement; a slow processor shows in its own histogram, not in
// the fast sink's.
func TestHopHistograms(t *testing.T) {
	a := &sliceSource{events: events("s", 400), size: 100}
	slow := procFunc(func(_ context.Context, e *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
		if e.ID == "s:0" || e.ID == "s:100" || e.ID == "s:200" || e.ID == "s:300" {
			time.Sleep(3 * time.Millisecond)
		}
		return append(out, e), nil
	})
	out := &memSink{}
	e, err := run(t, pipeline(comp(src, "s", a), comp(proc, "slow", slow, "s"), comp(sink, "out", out, "slow")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, k, s := statsOf(e, "slow"), statsOf(e, "out"), statsOf(e, "s")
	if p.Processing.Count != 4 || k.Processing.Count != 4 || s.EndToEnd.Count != 4 {
		t.Fatalf("counts: processor %d, sink %d, source end-to-end %d; want 4 each", p.Processing.Count, k.Processing.Count, s.EndToEnd.Count)
	}
	if p.Processing.Sum < 12*time.Millisecond {
		t.Errorf("the slow processor's time %v, want at least 12ms", p.Processing.Sum)
	}
	if s.EndToEnd.Sum < p.Processing.Sum {
		t.Errorf("end to end %v is less than one hop's %v", s.EndToEnd.Sum, p.Processing.Sum)
	}
	var hits int64
	for _, h := range p.Processing.BucketHits {
		hits += h
	}
	if hits != 4 || len(p.Processing.BucketHits) != len(LatencyBuckets)+1 {
		t.Errorf("buckets %v", p.Processing.BucketHits)
	}
	if s.Processing.Count != 0 || k.EndToEnd.Count != 0 {
		t.Errorf("a source has no processing time (%d), a sink no end-to-end (%d)", s.Processing.Count, k.EndToEnd.Count)
	}
}
