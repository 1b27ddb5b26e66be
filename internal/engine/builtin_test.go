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
