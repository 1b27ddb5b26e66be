package engine

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/tracing"
)

// extProc stands for an external processor: a flow.BatchProcessor that
// passes its events through and keeps their traceparents.
type extProc struct {
	mu  sync.Mutex
	tps []string
}

func (p *extProc) Process(_ context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	return append(out, in), nil
}

func (p *extProc) ProcessBatch(_ context.Context, in []*flow.Event) ([][]*flow.Event, map[int]error, error) {
	outs := make([][]*flow.Event, len(in))
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, ev := range in {
		p.tps = append(p.tps, ev.Metadata[tracing.MetadataKey])
		outs[i] = []*flow.Event{ev}
	}
	return outs, nil, nil
}

func tracedRun(t *testing.T, sampler sdktrace.Sampler) (*tracetest.InMemoryExporter, *sliceSource, *extProc, *memSink) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	var events []*flow.Event
	for i := range 6 {
		events = append(events, ev("s", i, "t", `{}`))
	}
	source := &sliceSource{events: events, size: 3}
	ext := &extProc{}
	out := &memSink{}
	extComp := &spec.Component{Name: "ext", Role: flow.RoleProcessor, Command: []string{"ext"}, Ordered: true,
		Inputs: []spec.Input{{From: "p"}}}
	pl := pipeline(comp(src, "s", source), comp(proc, "p", passThrough, "s"), extComp, comp(sink, "out", out, "ext"))
	opts := Options{Tracer: tp.Tracer("test"), External: func(*spec.Component, flow.BuildContext) (any, error) { return ext, nil }}
	if _, err := run(t, pl, opts); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, e := range events {
		if _, ok := e.Metadata[tracing.MetadataKey]; ok {
			t.Fatalf("event %s emitted by the source was modified: %v", e.ID, e.Metadata)
		}
	}
	return exp, source, ext, out
}

// TestTraceSpans: a trace per source batch, its root span "batch s" and a
// child per hop; the external processor's events carry its hop's
// traceparent, the source's events are untouched.
func TestTraceSpans(t *testing.T) {
	exp, _, ext, out := tracedRun(t, sdktrace.AlwaysSample())
	spans := exp.GetSpans()
	roots := map[trace.TraceID]tracetest.SpanStub{}
	for _, s := range spans {
		if s.Name == "batch s" {
			if s.Parent.IsValid() {
				t.Errorf("root span has a parent")
			}
			roots[s.SpanContext.TraceID()] = s
		}
	}
	if len(roots) != 2 {
		t.Fatalf("got %d traces, want 2 (one per source batch); spans: %d", len(roots), len(spans))
	}
	hops := map[trace.TraceID]map[string]tracetest.SpanStub{}
	for _, s := range spans {
		if s.Name == "batch s" {
			continue
		}
		root, ok := roots[s.SpanContext.TraceID()]
		if !ok {
			t.Fatalf("span %q in a trace without root", s.Name)
		}
		if s.Parent.SpanID() != root.SpanContext.SpanID() {
			t.Errorf("span %q: parent %s, want the root %s", s.Name, s.Parent.SpanID(), root.SpanContext.SpanID())
		}
		if hops[s.SpanContext.TraceID()] == nil {
			hops[s.SpanContext.TraceID()] = map[string]tracetest.SpanStub{}
		}
		hops[s.SpanContext.TraceID()][s.Name] = s
	}
	want := map[string]bool{}
	for id, h := range hops {
		if len(h) != 3 {
			t.Errorf("trace %s: spans %v, want process p, process ext, write out", id, keys(h))
		}
		for _, name := range []string{"process p", "process ext", "write out"} {
			if _, ok := h[name]; !ok {
				t.Errorf("trace %s lacks span %q", id, name)
			}
		}
		want[tracing.Format(h["process ext"].SpanContext)] = true
	}
	ext.mu.Lock()
	defer ext.mu.Unlock()
	if len(ext.tps) != 6 {
		t.Fatalf("external processor saw %d events", len(ext.tps))
	}
	for _, tp := range ext.tps {
		if !want[tp] {
			t.Errorf("external processor got traceparent %q, want one of its hop spans %v", tp, want)
		}
	}
	if n := len(out.ids()); n != 6 {
		t.Errorf("sink wrote %d", n)
	}
}

// TestTraceNotSampled: a batch the sampler drops gets no span and its
// events cross to an external component unchanged.
func TestTraceNotSampled(t *testing.T) {
	exp, _, ext, _ := tracedRun(t, sdktrace.NeverSample())
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported", n)
	}
	for _, tp := range ext.tps {
		if tp != "" {
			t.Errorf("traceparent %q on an unsampled batch", tp)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTraceDeadLetter: a processor's failed events reach the dead-letter
// sink within the batch's trace; the processor's span has error status.
func TestTraceDeadLetter(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	source := &sliceSource{events: events("s", 4), size: 4}
	p := comp(proc, "p", failOdd(-1), "s")
	p.OnError = spec.OnError{Policy: "dead_letter"}
	out, dl := &memSink{}, &memSink{}
	pl := pipeline(comp(src, "s", source), p, comp(sink, "out", out, "p"))
	pl.DeadLetter = comp(sink, "failed", dl)
	if _, err := run(t, pl, Options{Tracer: tp.Tracer("test")}); err != nil {
		t.Fatal(err)
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		byName[s.Name] = s
	}
	root, ok := byName["batch s"]
	if !ok || len(byName) != 4 {
		t.Fatalf("spans %v, want batch s, process p, write out, write failed", keys(byName))
	}
	for _, name := range []string{"process p", "write out", "write failed"} {
		s := byName[name]
		if s.Parent.SpanID() != root.SpanContext.SpanID() || s.SpanContext.TraceID() != root.SpanContext.TraceID() {
			t.Errorf("%s is not a child of the root", name)
		}
	}
	if byName["process p"].Status.Code != codes.Error {
		t.Errorf("process p status %v, want Error", byName["process p"].Status)
	}
}
