package engine

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// freshGen emits count new events (never reused), so that an engine that
// buffered without bound would show it in the heap.
type freshGen struct {
	count   int
	emitted atomic.Int64
	acked   atomic.Int64
	failed  atomic.Int64
}

func (g *freshGen) Run(ctx context.Context, out flow.Emitter) error {
	done := func(err error) {
		if err == nil {
			g.acked.Add(1)
		} else {
			g.failed.Add(1)
		}
	}
	for sent := 0; sent < g.count; {
		n := min(flow.MaxBatch, g.count-sent)
		b := flow.NewBatch()
		for i := range n {
			id := sent + i
			b = append(b, &flow.Event{ID: strconv.Itoa(id), Type: "gen", Data: []byte(`{"id":` + strconv.Itoa(id) + `,"pad":"................................................................"}`)})
		}
		if err := out.Emit(ctx, b, done); err != nil {
			return err
		}
		sent += n
		g.emitted.Add(int64(n))
	}
	return nil
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBackpressure: a sink blocked for 10 s under a 10-million-event
// generator. The source must stop advancing once the queues are full and
// the live heap must stay small; once the sink moves again and the run is
// cancelled, everything emitted is written.
func TestBackpressure(t *testing.T) {
	t.Parallel() // both backpressure tests block for 10 s; the heap bounds allow for each other
	blocked := 10 * time.Second
	if testing.Short() {
		blocked = 2 * time.Second
	}
	gen := &freshGen{count: 10_000_000}
	gate := make(chan struct{})
	out := &memSinkCount{gate: gate}
	p := comp(proc, "p", passThrough, "s")
	pl := pipeline(comp(src, "s", gen), p, comp(sink, "out", out, "p"))
	e, err := New(pl, testRegistry(t), Options{Grace: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	base := liveHeap()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()

	time.Sleep(blocked / 5)
	early := gen.emitted.Load()
	time.Sleep(blocked - blocked/5)
	late := gen.emitted.Load()
	heap := liveHeap()

	// In flight at most: one batch in the sink's Write, the sink's queue
	// (1024 events), one batch held by the processor waiting to push, its
	// queue (1024), one batch the source is pushing.
	const bound = 1024*2 + 3*flow.MaxBatch
	if late != early || late > bound {
		t.Errorf("source advanced from %d to %d events while the sink was blocked (bound %d)", early, late, bound)
	}
	const heapBound = 16 << 20
	if heap > base+heapBound {
		t.Errorf("live heap grew by %d bytes while blocked (bound %d)", heap-base, heapBound)
	}
	t.Logf("blocked %s: source at %d events, live heap +%d KiB", blocked, late, (int64(heap)-int64(base))/1024)

	cancel()
	close(gate)
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if w, em := out.n.Load(), gen.emitted.Load(); w != em {
		t.Errorf("drain wrote %d of %d emitted events", w, em)
	}
	// The batch the source was pushing when the run was cancelled was not
	// handed over: its done callback fails, and it is not counted.
	if gen.failed.Load() > 1 || gen.acked.Load()*flow.MaxBatch != gen.emitted.Load() {
		t.Errorf("acks: %d ok, %d failed for %d events", gen.acked.Load(), gen.failed.Load(), gen.emitted.Load())
	}
}

// memSinkCount counts, after waiting for its gate (closed = open).
type memSinkCount struct {
	gate chan struct{}
	n    atomic.Int64
}

func (s *memSinkCount) Write(ctx context.Context, b []*flow.Event) error {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.n.Add(int64(len(b)))
	return nil
}

// TestDrain: cancelling a busy run stops the source and writes everything
// it handed over, then acknowledges every batch.
func TestDrain(t *testing.T) {
	gen := &freshGen{count: 1 << 40}
	out := &countSink{}
	p := comp(proc, "p", passThrough, "s")
	p.Parallelism = 2
	pl := pipeline(comp(src, "s", gen), p, comp(sink, "out", out, "p"))
	e, err := New(pl, testRegistry(t), Options{Grace: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	waitFor(t, func() bool { return out.n.Load() > 50_000 })
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if w, em := out.n.Load(), gen.emitted.Load(); w != em {
		t.Fatalf("wrote %d of %d emitted events", w, em)
	}
	if gen.failed.Load() > 1 || gen.acked.Load()*flow.MaxBatch != gen.emitted.Load() {
		t.Fatalf("acks: %d ok, %d failed for %d events", gen.acked.Load(), gen.failed.Load(), gen.emitted.Load())
	}
}

// TestGraceExpires: a sink that never moves cannot drain; Run gives up
// after the grace period and the pending batches' done callbacks fail.
func TestGraceExpires(t *testing.T) {
	for _, tc := range []struct {
		name  string
		abort bool
		want  error
	}{{"grace", false, ErrGraceExpired}, {"abort", true, ErrAborted}} {
		t.Run(tc.name, func(t *testing.T) {
			gen := &freshGen{count: 1 << 40}
			out := &memSinkCount{gate: make(chan struct{})}
			pl := pipeline(comp(src, "s", gen), comp(sink, "out", out, "s"))
			e, err := New(pl, testRegistry(t), Options{Grace: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- e.Run(ctx) }()
			waitFor(t, func() bool { return gen.emitted.Load() > 1000 })
			start := time.Now()
			if tc.abort {
				e.Abort()
			} else {
				cancel()
			}
			err = <-errc
			if !errors.Is(err, tc.want) {
				t.Fatalf("Run: %v, want %v", err, tc.want)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("stop took %s", took)
			}
			if gen.failed.Load() == 0 || gen.acked.Load() != 0 {
				t.Errorf("acks: %d ok, %d failed", gen.acked.Load(), gen.failed.Load())
			}
		})
	}
}

// BenchmarkPassThrough measures the hot path of a 3-node pass-through
// pipeline (source → processor → sink, two edges). One op is one batch of
// 256 events; allocs/op is per batch over both edges, and allocs/batch/edge
// is reported separately.
func BenchmarkPassThrough(b *testing.B) {
	gen := newGen(b.N * flow.MaxBatch)
	out := &countSink{}
	pl := pipeline(comp(src, "s", gen), comp(proc, "p", passThrough, "s"), comp(sink, "out", out, "p"))
	e, err := New(pl, testRegistry(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	if err := e.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	if out.n.Load() != int64(b.N*flow.MaxBatch) {
		b.Fatalf("wrote %d", out.n.Load())
	}
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N)/2, "allocs/batch/edge")
	b.ReportMetric(float64(b.N*flow.MaxBatch)/b.Elapsed().Seconds(), "events/s")
}
