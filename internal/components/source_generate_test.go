package components

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// genEmitter is a real flow.Emitter that keeps what it is given. onEmit,
// if set, runs after each batch with the number of events so far and may
// return an error for Emit to return.
type genEmitter struct {
	mu      sync.Mutex
	batches [][]*flow.Event
	onEmit  func(total int) error
}

func (e *genEmitter) Emit(ctx context.Context, batch []*flow.Event, done func(error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	e.batches = append(e.batches, batch)
	total := 0
	for _, b := range e.batches {
		total += len(b)
	}
	e.mu.Unlock()
	if done != nil {
		done(nil)
	}
	if e.onEmit != nil {
		return e.onEmit(total)
	}
	return nil
}

func (e *genEmitter) events() []*flow.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*flow.Event
	for _, b := range e.batches {
		out = append(out, b...)
	}
	return out
}

func (e *genEmitter) sizes() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for _, b := range e.batches {
		out = append(out, len(b))
	}
	return out
}

// genNew validates cfg and builds a generate source named "gen".
func genNew(t testing.TB, cfg flow.Config) flow.Source {
	t.Helper()
	s := procSpec(t, flow.RoleSource, "generate")
	if err := s.Validate(cfg); err != nil {
		t.Fatalf("Validate(%v): %v", cfg, err)
	}
	c, err := s.New(flow.BuildContext{Name: "gen", Pipeline: "test", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return c.(flow.Source)
}

func genRun(t testing.TB, cfg flow.Config) (*genEmitter, time.Duration) {
	t.Helper()
	em := &genEmitter{}
	start := time.Now()
	if err := genNew(t, cfg).Run(context.Background(), em); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return em, time.Since(start)
}

const genExpr = `{"id": i, "amount": (i * 7919) % 10000, "kind": i % 2 == 0 ? "trade" : "refund"}`

func TestGenerateValidate(t *testing.T) {
	procCheckValidate(t, flow.RoleSource, "generate", []procValidateCase{
		{"expr", flow.Config{"count": 10, "expr": genExpr}, nil},
		{"data", flow.Config{"rate": 5.0, "data": map[string]any{"kind": "ping", "n": 1, "tags": []any{"a", 2.5, nil, true}}}, nil},
		{"neither", flow.Config{"count": 10}, []string{`needs data or expr — give a fixed payload (data: {kind: ping}) or a CEL expression (expr: '{"id": i}')`}},
		{"both", flow.Config{"data": map[string]any{}, "expr": `{"id": i}`}, []string{"expr: cannot be combined with data — use data for a fixed payload, or expr to compute each payload from i"}},
		{"expr reads data", flow.Config{"expr": `{"id": data.id}`}, []string{"expr: undeclared reference to 'data' at column 8 — the only variable here is i, the index of the generated event (an int)"}},
		{"expr not a map", flow.Config{"expr": `i * 2`}, []string{`expr: expression must return map, got int — build an object, for example {"id": data.id, "total": data.amount * 2}`}},
		{"data not encodable", flow.Config{"data": map[string]any{"x": math.Inf(1)}}, []string{`data: key "x": cannot write +Inf as JSON: JSON has no NaN or infinity — write plain values: strings, numbers, booleans, lists and mappings`}},
		{"bad numbers", flow.Config{"expr": `{"id": i}`, "count": -1, "rate": -2.0, "batch_size": 257}, []string{
			"count: must be 0 (no end) or more, got -1",
			"rate: must be 0 (as fast as possible) or more, got -2",
			"batch_size: must be between 1 and 256, got 257",
		}},
		{"zero batch", flow.Config{"expr": `{"id": i}`, "batch_size": 0}, []string{"batch_size: must be between 1 and 256, got 0"}},
	})
}

func TestGenerateOutputTypes(t *testing.T) {
	s := procSpec(t, flow.RoleSource, "generate")
	for _, tt := range []struct {
		cfg  flow.Config
		want string
	}{
		{flow.Config{"expr": `{"id": i}`}, "gen"},
		{flow.Config{"expr": `{"id": i}`, "event_type": "trade"}, "trade"},
	} {
		got, ok := s.OutputTypes("gen", tt.cfg, nil)
		if !ok || !slices.Equal(got, []string{tt.want}) {
			t.Errorf("OutputTypes(%v) = %v, %v; want [%s]", tt.cfg, got, ok, tt.want)
		}
	}
}

func TestGenerateRun(t *testing.T) {
	tests := []struct {
		name  string
		cfg   flow.Config
		sizes []int
		typ   string
		check map[int]string // index → payload
	}{
		{"expr in full batches", flow.Config{"count": 600, "expr": genExpr}, []int{256, 256, 88}, "gen", map[int]string{
			0:   `{"amount":0,"id":0,"kind":"trade"}`,
			3:   `{"amount":3757,"id":3,"kind":"refund"}`,
			599: `{"amount":3481,"id":599,"kind":"refund"}`,
		}},
		{"fixed data", flow.Config{"count": 3, "data": map[string]any{"n": 1, "kind": "ping", "f": 2.0}, "event_type": "tick"}, []int{3}, "tick", map[int]string{
			0: `{"f":2.0,"kind":"ping","n":1}`,
			2: `{"f":2.0,"kind":"ping","n":1}`,
		}},
		{"batch size", flow.Config{"count": 25, "batch_size": 10, "expr": `{"i": i}`}, []int{10, 10, 5}, "gen", map[int]string{24: `{"i":24}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em, _ := genRun(t, tt.cfg)
			if got := em.sizes(); !slices.Equal(got, tt.sizes) {
				t.Errorf("batch sizes %v, want %v", got, tt.sizes)
			}
			evs := em.events()
			for i, ev := range evs {
				if want := fmt.Sprint("gen:", i); ev.ID != want {
					t.Fatalf("event %d: id %q, want %q", i, ev.ID, want)
				}
				if ev.Source != "gen" || ev.Type != tt.typ || ev.Time.IsZero() || ev.DataContentType != "application/json" {
					t.Fatalf("event %d: attributes %+v", i, ev)
				}
				if _, err := ev.Value(); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
			}
			for i, want := range tt.check {
				if got := string(evs[i].Data); got != want {
					t.Errorf("event %d: %s, want %s", i, got, want)
				}
			}
		})
	}
}

func TestGenerateDeterministic(t *testing.T) {
	cfg := flow.Config{"count": 300, "expr": genExpr}
	a, _ := genRun(t, cfg)
	b, _ := genRun(t, cfg)
	ea, eb := a.events(), b.events()
	if len(ea) != 300 || len(eb) != 300 {
		t.Fatalf("got %d and %d events", len(ea), len(eb))
	}
	for i := range ea {
		if ea[i].ID != eb[i].ID || string(ea[i].Data) != string(eb[i].Data) {
			t.Fatalf("event %d differs: %s %s / %s %s", i, ea[i].ID, ea[i].Data, eb[i].ID, eb[i].Data)
		}
	}
}

func TestGenerateRate(t *testing.T) {
	em, took := genRun(t, flow.Config{"count": 40, "rate": 200.0, "expr": `{"id": i}`})
	// 40 events at 200/s: the first at once, the last after 39/200 s.
	if took < 180*time.Millisecond || took > 800*time.Millisecond {
		t.Errorf("40 events at 200/s took %v", took)
	}
	// A batch is what is due now, never waiting to fill: the first event
	// is due at once and goes alone.
	if sizes := em.sizes(); len(sizes) < 2 || sizes[0] != 1 {
		t.Errorf("batch sizes %v: want the first event alone, then more batches", sizes)
	}
	if n := len(em.events()); n != 40 {
		t.Errorf("%d events, want 40", n)
	}
}

func TestGenerateStops(t *testing.T) {
	t.Run("unbounded until ctx is done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		em := &genEmitter{onEmit: func(total int) error {
			if total >= 5000 {
				cancel()
			}
			return nil
		}}
		if err := genNew(t, flow.Config{"data": map[string]any{"k": "v"}}).Run(ctx, em); err != nil {
			t.Fatalf("Run = %v, want nil on ctx done", err)
		}
		if n := len(em.events()); n < 5000 {
			t.Errorf("only %d events", n)
		}
	})
	t.Run("ctx done while pacing", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		em := &genEmitter{}
		start := time.Now()
		if err := genNew(t, flow.Config{"rate": 1.0, "data": map[string]any{}}).Run(ctx, em); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("Run returned %v after ctx was done", took)
		}
		if n := len(em.events()); n != 1 {
			t.Errorf("%d events in 50ms at 1/s, want 1", n)
		}
	})
	t.Run("emit error", func(t *testing.T) {
		em := &genEmitter{onEmit: func(int) error { return errors.New("pipeline broke") }}
		err := genNew(t, flow.Config{"count": 10, "data": map[string]any{}}).Run(context.Background(), em)
		if err == nil || err.Error() != `generate "gen": emit: pipeline broke` {
			t.Errorf("Run = %v", err)
		}
	})
	t.Run("expression error names the event", func(t *testing.T) {
		em := &genEmitter{}
		err := genNew(t, flow.Config{"count": 10, "expr": `{"x": 10 / (i - 5)}`, "batch_size": 4}).Run(context.Background(), em)
		want := `generate "gen": event 5: expression "{\"x\": 10 / (i - 5)}": division by zero`
		if err == nil || err.Error() != want {
			t.Errorf("Run = %v\nwant %s", err, want)
		}
		if n := len(em.events()); n != 4 {
			t.Errorf("%d events before the failing batch, want 4", n)
		}
	})
}

// BenchmarkGenerate measures building batches from a CEL expression.
func BenchmarkGenerate(b *testing.B) {
	src := genNew(b, flow.Config{"count": 0, "expr": genExpr}).(*generateSource)
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		if _, err := src.makeBatch(i, 256, time.Now()); err != nil {
			b.Fatal(err)
		}
		i += 256
	}
}
