package engine_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// gatedSink blocks every Write until gate is closed.
type gatedSink struct {
	gate    chan struct{}
	written atomic.Int64
}

func (s *gatedSink) Write(ctx context.Context, b []*flow.Event) error {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.written.Add(int64(len(b)))
	return nil
}

// TestBackpressureBuiltinGenerator is the backpressure test with the real
// `generate` built-in and CEL payloads, loaded from a pipeline file: while
// the sink is blocked the generator's output counter must stop moving and
// the live heap stay bounded.
func TestBackpressureBuiltinGenerator(t *testing.T) {
	t.Parallel() // both backpressure tests block for 10 s; the heap bounds allow for each other
	blocked := 10 * time.Second
	if testing.Short() {
		blocked = 2 * time.Second
	}
	sink := &gatedSink{gate: make(chan struct{})}
	reg := components.NewRegistry()
	reg.MustRegister(&flow.ComponentSpec{Role: flow.RoleSink, Name: "gated", Summary: "test sink",
		New: func(flow.BuildContext) (any, error) { return sink, nil }})
	p, diags := spec.Parse("pipeline.yaml", []byte(`
name: pressure
sources:
  - name: gen
    type: generate
    config: {count: 10000000, expr: '{"id": i, "amount": (i * 7919) % 10000, "pad": "................................................................"}'}
processors:
  - {name: large, type: filter, inputs: [gen], config: {expr: "data.amount >= 0"}}
sinks:
  - {name: out, type: gated, inputs: [large]}
`), spec.Options{Registry: reg})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	e, err := engine.New(p, reg, engine.Options{Grace: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	emitted := func() int64 {
		for _, c := range e.Stats().Components {
			if c.Name == "gen" {
				return c.Out
			}
		}
		return -1
	}
	base := heap()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()

	time.Sleep(blocked / 5)
	early := emitted()
	time.Sleep(blocked - blocked/5)
	late := emitted()
	grown := int64(heap()) - int64(base)
	// Two queues of 1024 events, a batch in the sink, one in the filter,
	// one being pushed by the generator.
	const bound = 2*1024 + 3*flow.MaxBatch
	if late != early || late > bound {
		t.Errorf("generator advanced from %d to %d events while the sink was blocked (bound %d)", early, late, bound)
	}
	const heapBound = 16 << 20
	if grown > heapBound {
		t.Errorf("live heap grew by %d bytes while blocked (bound %d)", grown, heapBound)
	}
	t.Logf("blocked %s: generator at %d events, live heap %+d KiB", blocked, late, grown/1024)

	cancel()
	close(sink.gate)
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if w, em := sink.written.Load(), emitted(); w != em {
		t.Fatalf("drain wrote %d of %d emitted events", w, em)
	}
}

// TestSourceBoundedFinished: Stats says which sources end by themselves
// and whether they did, so that flowctl run can tell a stopped bounded
// pipeline (work not done) from a stopped stream.
func TestSourceBoundedFinished(t *testing.T) {
	reg := components.NewRegistry()
	load := func(src string) *spec.Pipeline {
		p, diags := spec.Parse("pipeline.yaml", []byte(src), spec.Options{Registry: reg})
		if diags.HasErrors() {
			t.Fatal(diags.Err())
		}
		return p
	}
	source := func(e *engine.Engine) engine.ComponentStats {
		for _, c := range e.Stats().Components {
			if c.Role == flow.RoleSource {
				return c
			}
		}
		t.Fatal("no source")
		return engine.ComponentStats{}
	}
	// A generator with a count runs to its end.
	e, err := engine.New(load(`name: b
sources: [{name: gen, type: generate, config: {count: 50, data: {n: 1}}}]
sinks: [{name: out, type: drop, inputs: [gen]}]
`), reg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := source(e); !s.Bounded || !s.Finished {
		t.Errorf("bounded generator that ran out: %+v", s)
	}
	// Stopped before its end: bounded, not finished.
	for _, tc := range []struct {
		name, count string
		bounded     bool
	}{{"bounded", "1000000", true}, {"unbounded", "0", false}} {
		e, err := engine.New(load(`name: s
sources: [{name: gen, type: generate, config: {count: `+tc.count+`, rate: 100, data: {n: 1}}}]
sinks: [{name: out, type: drop, inputs: [gen]}]
`), reg, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err = e.Run(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if s := source(e); s.Bounded != tc.bounded || s.Finished {
			t.Errorf("%s generator stopped early: bounded %v finished %v, want %v false", tc.name, s.Bounded, s.Finished, tc.bounded)
		}
	}
}
