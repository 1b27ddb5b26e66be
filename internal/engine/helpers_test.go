package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// The engine tests use small implementations of the flow interfaces,
// handed to the engine through a registry whose single type "impl" returns
// the instance found in the component's config.

func testRegistry(t testing.TB) *flow.Registry {
	t.Helper()
	r := flow.NewRegistry()
	for _, role := range []flow.Role{flow.RoleSource, flow.RoleProcessor, flow.RoleSink} {
		r.MustRegister(&flow.ComponentSpec{Role: role, Name: "impl", New: func(bc flow.BuildContext) (any, error) {
			return bc.Config["impl"], nil
		}})
	}
	return r
}

// comp builds a component; inputs are "name" or "name:type1,type2".
func comp(role flow.Role, name string, impl any, inputs ...string) *spec.Component {
	c := &spec.Component{Name: name, Role: role, Runner: spec.RunBuiltin, Type: "impl",
		Config: flow.Config{"impl": impl}, Ordered: true}
	for _, in := range inputs {
		from, types, _ := cut(in)
		c.Inputs = append(c.Inputs, spec.Input{From: from, Types: types})
	}
	return c
}

func cut(in string) (string, []string, bool) {
	for i := range in {
		if in[i] == ':' {
			var types []string
			start := i + 1
			for j := start; j <= len(in); j++ {
				if j == len(in) || in[j] == ',' {
					types = append(types, in[start:j])
					start = j + 1
				}
			}
			return in[:i], types, true
		}
	}
	return in, nil, false
}

func pipeline(comps ...*spec.Component) *spec.Pipeline {
	p := &spec.Pipeline{Name: "test"}
	for _, c := range comps {
		switch c.Role {
		case flow.RoleSource:
			p.Sources = append(p.Sources, c)
		case flow.RoleProcessor:
			p.Processors = append(p.Processors, c)
		case flow.RoleSink:
			p.Sinks = append(p.Sinks, c)
		}
	}
	return p
}

func run(t *testing.T, p *spec.Pipeline, opts Options) (*Engine, error) {
	t.Helper()
	e, err := New(p, testRegistry(t), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return e, e.Run(ctx)
}

func ev(src string, i int, typ, data string) *flow.Event {
	return &flow.Event{ID: src + ":" + strconv.Itoa(i), Source: src, Type: typ, Data: []byte(data)}
}

// sliceSource emits its events in batches of size and records acks.
type sliceSource struct {
	events []*flow.Event
	size   int

	mu      sync.Mutex
	acked   []error
	emitted atomic.Int64
}

func (s *sliceSource) Run(ctx context.Context, out flow.Emitter) error {
	size := s.size
	if size == 0 {
		size = 2
	}
	for i := 0; i < len(s.events); i += size {
		b := append([]*flow.Event(nil), s.events[i:min(i+size, len(s.events))]...)
		if err := out.Emit(ctx, b, func(err error) {
			s.mu.Lock()
			s.acked = append(s.acked, err)
			s.mu.Unlock()
		}); err != nil {
			return err
		}
		s.emitted.Add(int64(len(b)))
	}
	return nil
}

func (s *sliceSource) acks() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.acked...)
}

// genSource emits count events in batches of 256 as fast as it may,
// counting what it handed over.
type genSource struct {
	count    int
	emitted  atomic.Int64
	acked    atomic.Int64
	events   []*flow.Event // reused payloads: one per slot of a batch
	typeName string
}

func newGen(count int) *genSource {
	g := &genSource{count: count}
	for i := range flow.MaxBatch {
		g.events = append(g.events, &flow.Event{ID: fmt.Sprint(i), Type: "gen", Data: []byte(`{"n":1}`)})
	}
	return g
}

func (g *genSource) Run(ctx context.Context, out flow.Emitter) error {
	done := func(err error) {
		if err == nil {
			g.acked.Add(1)
		}
	}
	for sent := 0; sent < g.count; {
		n := min(flow.MaxBatch, g.count-sent)
		b := append(flow.NewBatch(), g.events[:n]...)
		if err := out.Emit(ctx, b, done); err != nil {
			return err
		}
		sent += n
		g.emitted.Add(int64(n))
	}
	return nil
}

// procFunc adapts a function to flow.Processor.
type procFunc func(ctx context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error)

func (f procFunc) Process(ctx context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	return f(ctx, in, out)
}

var passThrough = procFunc(func(_ context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	return append(out, in), nil
})

// memSink keeps what it wrote. gate, if not nil, must yield before each
// Write; fail, if not nil, may fail a write.
type memSink struct {
	gate chan struct{}
	fail func(attempt int, batch []*flow.Event) error

	mu       sync.Mutex
	attempts int
	written  []*flow.Event
	count    atomic.Int64
}

func (s *memSink) Write(ctx context.Context, batch []*flow.Event) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.fail != nil {
		if err := s.fail(s.attempts, batch); err != nil {
			var be *flow.BatchError
			if ok := asBatchError(err, &be); ok {
				for i, e := range batch {
					if _, bad := be.Failed[i]; !bad {
						s.written = append(s.written, e)
					}
				}
			}
			return err
		}
	}
	s.written = append(s.written, batch...)
	s.count.Add(int64(len(batch)))
	return nil
}

func asBatchError(err error, be **flow.BatchError) bool {
	b, ok := err.(*flow.BatchError)
	*be = b
	return ok
}

func (s *memSink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.written))
	for i, e := range s.written {
		out[i] = e.ID
	}
	return out
}

// countSink counts and forgets.
type countSink struct{ n atomic.Int64 }

func (s *countSink) Write(_ context.Context, batch []*flow.Event) error {
	s.n.Add(int64(len(batch)))
	return nil
}
