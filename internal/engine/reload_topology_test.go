package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/drivers/process"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// ledger records, across every instance of the test components, which
// events a source saw acknowledged and which events each sink wrote.
type ledger struct {
	mu      sync.Mutex
	acked   map[string][]bool              // prefix → acked, by index
	written map[string]map[string][]uint16 // sink name → prefix → writes, by index
	data    map[string]map[string]int      // sink name → payload → count (keep_data)
	sources map[string][]*counterSource    // source name → instances, in build order
	sinks   map[string][]*ledgerSink       // sink name → instances, in build order
}

func newLedger() *ledger {
	return &ledger{acked: map[string][]bool{}, written: map[string]map[string][]uint16{},
		data: map[string]map[string]int{}, sources: map[string][]*counterSource{}, sinks: map[string][]*ledgerSink{}}
}

// split parses an id "prefix:index".
func split(id string) (string, int) {
	i := strings.LastIndexByte(id, ':')
	n, err := strconv.Atoi(id[i+1:])
	if err != nil {
		panic(id)
	}
	return id[:i], n
}

func grow[T any](s []T, n int) []T {
	if n < len(s) {
		return s
	}
	return append(s, make([]T, n+1-len(s)+len(s)/2)...)
}

func (l *ledger) ack(prefix string, from, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := grow(l.acked[prefix], from+n)
	for i := from; i < from+n; i++ {
		if a[i] {
			panic(fmt.Sprintf("%s:%d acknowledged twice", prefix, i))
		}
		a[i] = true
	}
	l.acked[prefix] = a
}

func (l *ledger) write(sink string, keepData bool, evs []*flow.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written[sink] == nil {
		l.written[sink] = map[string][]uint16{}
		l.data[sink] = map[string]int{}
	}
	for _, ev := range evs {
		prefix, i := split(ev.ID)
		w := grow(l.written[sink][prefix], i)
		w[i]++
		l.written[sink][prefix] = w
		if keepData {
			l.data[sink][string(ev.Data)]++
		}
	}
}

// count returns how many events sink wrote with an id of prefix.
func (l *ledger) count(sink, prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.written[sink][prefix] {
		n += int(c)
	}
	return n
}

func (l *ledger) dataCount(sink, payload string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.data[sink][payload]
}

func (l *ledger) sinkInstances(name string) []*ledgerSink {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sinks[name])
}

func (l *ledger) sourceInstances(name string) []*counterSource {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sources[name])
}

// check verifies, once the run ended, that every event a source saw
// acknowledged was written to sink exactly once, unless pass says the
// filter may have kept it back, and that sink wrote nothing else. It
// returns the number of acknowledged events.
func (l *ledger) check(t *testing.T, sink string, pass func(i int) bool) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	total, filtered := 0, 0
	for prefix, acked := range l.acked {
		w := l.written[sink][prefix]
		for i, ok := range acked {
			var c uint16
			if i < len(w) {
				c = w[i]
			}
			switch {
			case !ok && c > 0:
				t.Fatalf("%s:%d written to %s but never acknowledged", prefix, i, sink)
			case !ok:
			case c > 1:
				t.Fatalf("%s:%d written %d times to %s", prefix, i, c, sink)
			case c == 0 && pass(i):
				t.Fatalf("%s:%d acknowledged but not written to %s", prefix, i, sink)
			case c == 0:
				total++
				filtered++
			default:
				total++
			}
		}
		for i := len(acked); i < len(w); i++ {
			if w[i] > 0 {
				t.Fatalf("%s:%d written to %s but never acknowledged", prefix, i, sink)
			}
		}
	}
	t.Logf("%d events acknowledged, %d of them kept back by the filter", total, filtered)
	return total
}

// counterSource emits events "<prefix>:<i>" with payload {"i": i} in
// batches of batch, pausing delay between batches (none: as fast as the
// pipeline takes them), until its context ends.
type counterSource struct {
	l      *ledger
	prefix string
	batch  int
	delay  time.Duration
	opens  atomic.Int64
	closes atomic.Int64
}

func (c *counterSource) Open(context.Context) error  { c.opens.Add(1); return nil }
func (c *counterSource) Close(context.Context) error { c.closes.Add(1); return nil }

func (c *counterSource) Run(ctx context.Context, out flow.Emitter) error {
	for i := 0; ; i += c.batch {
		b := flow.NewBatch()
		for k := i; k < i+c.batch; k++ {
			b = append(b, &flow.Event{ID: c.prefix + ":" + strconv.Itoa(k), Type: "counter",
				Data: []byte(`{"i":` + strconv.Itoa(k) + `}`)})
		}
		from, n := i, c.batch
		if err := out.Emit(ctx, b, func(err error) {
			if err == nil {
				c.l.ack(c.prefix, from, n)
			}
		}); err != nil {
			return nil
		}
		if c.delay > 0 {
			select {
			case <-time.After(c.delay):
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// ledgerSink writes to the ledger under its component's name.
type ledgerSink struct {
	l        *ledger
	name     string
	label    string
	keepData bool
	failOpen bool
	opens    atomic.Int64
	closes   atomic.Int64
	written  atomic.Int64
}

func (s *ledgerSink) Open(context.Context) error {
	if s.failOpen {
		return errors.New("cannot open: refused on purpose")
	}
	s.opens.Add(1)
	return nil
}

func (s *ledgerSink) Close(context.Context) error { s.closes.Add(1); return nil }

func (s *ledgerSink) Write(_ context.Context, b []*flow.Event) error {
	s.l.write(s.name, s.keepData, b)
	s.written.Add(int64(len(b)))
	return nil
}

// ledgerRegistry is the built-ins plus source "counter", sink "ledger"
// and sink "broken" (its Open fails), all recording into l.
func ledgerRegistry(l *ledger) *flow.Registry {
	reg := components.NewRegistry()
	str := func(bc flow.BuildContext, k string) string {
		if v, ok := bc.Config[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	reg.MustRegister(&flow.ComponentSpec{Role: flow.RoleSource, Name: "counter", Summary: "test source",
		Fields: []flow.Field{{Name: "prefix", Type: flow.TypeString}, {Name: "delay", Type: flow.TypeString}},
		New: func(bc flow.BuildContext) (any, error) {
			c := &counterSource{l: l, prefix: str(bc, "prefix"), batch: 16}
			if d := str(bc, "delay"); d != "" {
				var err error
				if c.delay, err = time.ParseDuration(d); err != nil {
					return nil, err
				}
			}
			l.mu.Lock()
			l.sources[bc.Name] = append(l.sources[bc.Name], c)
			l.mu.Unlock()
			return c, nil
		}})
	for _, name := range []string{"ledger", "broken"} {
		reg.MustRegister(&flow.ComponentSpec{Role: flow.RoleSink, Name: name, Summary: "test sink",
			Fields: []flow.Field{{Name: "label", Type: flow.TypeString}, {Name: "keep_data", Type: flow.TypeBool}},
			New: func(bc flow.BuildContext) (any, error) {
				s := &ledgerSink{l: l, name: bc.Name, label: str(bc, "label"), keepData: str(bc, "keep_data") == "true",
					failOpen: name == "broken"}
				l.mu.Lock()
				l.sinks[bc.Name] = append(l.sinks[bc.Name], s)
				l.mu.Unlock()
				return s, nil
			}})
	}
	return reg
}

func parse(t *testing.T, reg *flow.Registry, src string) *spec.Pipeline {
	t.Helper()
	p, diags := spec.Parse("pipeline.yaml", []byte(src), spec.Options{Registry: reg})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	return p
}

// runEngine starts e; stop cancels the run and returns Run's error.
func runEngine(t *testing.T, e *engine.Engine) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	waitFor(t, 5*time.Second, "the run to start", func() bool { return e.Stats().Ready })
	return func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("the run did not end within 15 s after it was cancelled")
			return nil
		}
	}
}

func names(e *engine.Engine) []string {
	var out []string
	for _, c := range e.Stats().Components {
		out = append(out, c.Name)
	}
	return out
}

// keepFilter lets through the events whose index is not a multiple of 5.
const keepFilter = `data.i % 5 != 0`

func passes(i int) bool { return i%5 != 0 }

// topology builds the test pipeline from a source line and further
// components.
func topology(source string, rest ...string) string {
	return "name: topo\nsources:\n  - " + source + "\n" + strings.Join(rest, "\n") + "\n"
}

// TestReloadTopology changes a running counter → filter → sink pipeline
// step by step: a sink added (fan-out) and removed, a processor inserted
// and removed, the source's config changed, a processor's parallelism
// changed, a processor renamed. After each step the run goes on; at the
// end every event the source saw acknowledged was written exactly once
// (or kept back by the filter), and the unchanged sink kept its instance.
func TestReloadTopology(t *testing.T) {
	l := newLedger()
	reg := ledgerRegistry(l)
	src := func(prefix string) string {
		return `{name: c, type: counter, config: {prefix: ` + prefix + `, delay: 1ms}}`
	}
	const out = `  - {name: out, type: ledger, inputs: [keep]}`
	base := topology(src("a"), "processors:", `  - {name: keep, type: filter, inputs: [c], config: {expr: "`+keepFilter+`"}}`, "sinks:", out)
	steps := []struct {
		name string
		file string
		// started and stopped are the components Stats must list, and not
		// list, once the reload returned.
		listed, gone []string
		// then waits until the step shows in what the sinks receive.
		then func(t *testing.T, e *engine.Engine)
	}{
		{
			name: "add a fan-out sink",
			file: topology(src("a"), "processors:", `  - {name: keep, type: filter, inputs: [c], config: {expr: "`+keepFilter+`"}}`,
				"sinks:", out, `  - {name: extra, type: ledger, inputs: [keep]}`),
			listed: []string{"c", "keep", "out", "extra"},
			then: func(t *testing.T, e *engine.Engine) {
				from := l.count("out", "a")
				waitFor(t, 5*time.Second, "both sinks to receive events", func() bool {
					return l.count("extra", "a") > 100 && l.count("out", "a") > from+100
				})
			},
		},
		{
			name: "remove the fan-out sink", file: base,
			listed: []string{"c", "keep", "out"}, gone: []string{"extra"},
			then: func(t *testing.T, e *engine.Engine) {
				x := l.sinkInstances("extra")[0]
				if x.opens.Load() != 1 || x.closes.Load() != 1 {
					t.Fatalf("removed sink opened %d, closed %d times; want 1 and 1", x.opens.Load(), x.closes.Load())
				}
			},
		},
		{
			name: "insert a processor",
			file: topology(src("a"), "processors:", `  - {name: keep, type: filter, inputs: [c], config: {expr: "`+keepFilter+`"}}`,
				`  - {name: mid, type: filter, inputs: [keep], config: {expr: "true"}}`,
				"sinks:", `  - {name: out, type: ledger, inputs: [mid]}`),
			listed: []string{"c", "keep", "mid", "out"},
			then: func(t *testing.T, e *engine.Engine) {
				from := statOf(e, "mid").Out
				waitFor(t, 5*time.Second, "events through the inserted processor", func() bool { return statOf(e, "mid").Out > from+100 })
			},
		},
		{
			name: "remove the processor in the middle", file: base,
			listed: []string{"c", "keep", "out"}, gone: []string{"mid"},
		},
		{
			name:   "change the source's config",
			file:   topology(src("b"), "processors:", `  - {name: keep, type: filter, inputs: [c], config: {expr: "`+keepFilter+`"}}`, "sinks:", out),
			listed: []string{"c", "keep", "out"},
			then: func(t *testing.T, e *engine.Engine) {
				waitFor(t, 5*time.Second, "the new source's events", func() bool { return l.count("out", "b") > 100 })
				srcs := l.sourceInstances("c")
				if len(srcs) != 2 || srcs[0].closes.Load() != 1 || srcs[1].opens.Load() != 1 {
					t.Fatalf("source instances %d; want the old one closed and the new one open", len(srcs))
				}
			},
		},
		{
			name:   "change a processor's parallelism",
			file:   topology(src("b"), "processors:", `  - {name: keep, type: filter, parallelism: 3, inputs: [c], config: {expr: "`+keepFilter+`"}}`, "sinks:", out),
			listed: []string{"c", "keep", "out"},
		},
		{
			name: "rename a processor",
			file: topology(src("b"), "processors:", `  - {name: keep2, type: filter, inputs: [c], config: {expr: "`+keepFilter+`"}}`,
				"sinks:", `  - {name: out, type: ledger, inputs: [keep2]}`),
			listed: []string{"c", "keep2", "out"}, gone: []string{"keep"},
			then: func(t *testing.T, e *engine.Engine) {
				from := statOf(e, "keep2").Out
				waitFor(t, 5*time.Second, "events through the renamed processor", func() bool { return statOf(e, "keep2").Out > from+100 })
			},
		},
	}

	e, err := engine.New(parse(t, reg, base), reg, engine.Options{Grace: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := runEngine(t, e)
	waitFor(t, 5*time.Second, "the first events", func() bool { return l.count("out", "a") > 100 })
	sink := l.sinkInstances("out")[0]
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := statOf(e, "out").In
			if err := e.Reload(context.Background(), parse(t, reg, st.file)); err != nil {
				t.Fatalf("Reload: %v", err)
			}
			got := names(e)
			for _, n := range st.listed {
				if !slices.Contains(got, n) {
					t.Errorf("Stats lists %v, want %q in it", got, n)
				}
			}
			for _, n := range st.gone {
				if slices.Contains(got, n) {
					t.Errorf("Stats lists %v, want no %q", got, n)
				}
			}
			if st.then != nil {
				st.then(t, e)
			}
			// The unchanged sink keeps its instance and its counters rise.
			waitFor(t, 5*time.Second, "the sink to go on", func() bool { return statOf(e, "out").In > before+100 })
			if all := l.sinkInstances("out"); len(all) != 1 || sink.opens.Load() != 1 || sink.closes.Load() != 0 {
				t.Fatalf("sink out: %d instances, opened %d, closed %d times; want the first one, open", len(all), sink.opens.Load(), sink.closes.Load())
			}
		})
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	acked := l.check(t, "out", passes)
	if w := sink.written.Load(); w != int64(l.count("out", "a")+l.count("out", "b")) || w == 0 {
		t.Fatalf("sink wrote %d events", w)
	}
	if acked == 0 {
		t.Fatal("nothing acknowledged")
	}
	if st := e.Stats(); st.Pending != 0 {
		t.Fatalf("%d batches pending after the run", st.Pending)
	}
}

// TestReloadKeepsUnchanged: a reload that changes one processor leaves
// the source and the sink alone — same instances, never reopened — and
// their counters keep rising; the changed processor's counters go on
// from where they were.
func TestReloadKeepsUnchanged(t *testing.T) {
	l := newLedger()
	reg := ledgerRegistry(l)
	file := func(expr string) string {
		return topology(`{name: c, type: counter, config: {prefix: a, delay: 1ms}}`,
			"processors:", `  - {name: keep, type: filter, inputs: [c], config: {expr: "`+expr+`"}}`,
			"sinks:", `  - {name: out, type: ledger, inputs: [keep]}`)
	}
	e, err := engine.New(parse(t, reg, file("true")), reg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := runEngine(t, e)
	waitFor(t, 5*time.Second, "the first events", func() bool { return statOf(e, "keep").In > 100 })
	src, sink := l.sourceInstances("c")[0], l.sinkInstances("out")[0]
	for i, expr := range []string{keepFilter, "true", keepFilter} {
		before := e.Stats()
		if err := e.Reload(context.Background(), parse(t, reg, file(expr))); err != nil {
			t.Fatalf("Reload %d: %v", i, err)
		}
		for _, name := range []string{"c", "keep", "out"} {
			b := statOf(e, name)
			var old engine.ComponentStats
			for _, c := range before.Components {
				if c.Name == name {
					old = c
				}
			}
			if b.In < old.In || b.Out < old.Out {
				t.Fatalf("reload %d: %s counters went back: in %d → %d, out %d → %d", i, name, old.In, b.In, old.Out, b.Out)
			}
		}
		from := statOf(e, "out").In
		waitFor(t, 5*time.Second, "the sink to go on", func() bool { return statOf(e, "out").In > from+100 })
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := l.sourceInstances("c"); len(s) != 1 || s[0] != src || src.opens.Load() != 1 || src.closes.Load() != 1 {
		t.Fatalf("source: %d instances, opened %d, closed %d; want one, opened and closed once", len(s), src.opens.Load(), src.closes.Load())
	}
	if s := l.sinkInstances("out"); len(s) != 1 || s[0] != sink || sink.opens.Load() != 1 || sink.closes.Load() != 1 {
		t.Fatalf("sink: %d instances, opened %d, closed %d; want one, opened and closed once", len(s), sink.opens.Load(), sink.closes.Load())
	}
	l.check(t, "out", func(int) bool { return false })
}

// TestReloadGenerateConfig changes the data of a running built-in
// generate source: the new payload reaches the sink, the old one stops.
func TestReloadGenerateConfig(t *testing.T) {
	l := newLedger()
	reg := ledgerRegistry(l)
	file := func(v int) string {
		return topology(`{name: gen, type: generate, config: {rate: 2000, batch_size: 10, data: {v: `+strconv.Itoa(v)+`}}}`,
			"sinks:", `  - {name: out, type: ledger, inputs: [gen], config: {keep_data: true}}`)
	}
	e, err := engine.New(parse(t, reg, file(1)), reg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := runEngine(t, e)
	waitFor(t, 5*time.Second, "the first payload", func() bool { return l.dataCount("out", `{"v":1}`) > 50 })
	if err := e.Reload(context.Background(), parse(t, reg, file(2))); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	old := l.dataCount("out", `{"v":1}`)
	waitFor(t, 5*time.Second, "the new payload", func() bool { return l.dataCount("out", `{"v":2}`) > 50 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := l.dataCount("out", `{"v":1}`); n != old {
		t.Fatalf("the old payload was written %d times after the reload returned", n-old)
	}
	if n := statOf(e, "gen").Out; n != int64(l.count("out", "gen")) {
		t.Fatalf("source emitted %d, sink wrote %d", n, l.count("out", "gen"))
	}
}

// TestReloadOpenFails: a new component whose Open fails is reported by
// name; an added one is left out, a changed one's old instance goes on;
// the run goes on delivering everything.
func TestReloadOpenFails(t *testing.T) {
	l := newLedger()
	reg := ledgerRegistry(l)
	const head = `{name: c, type: counter, config: {prefix: a, delay: 1ms}}`
	base := topology(head, "sinks:", `  - {name: out, type: ledger, inputs: [c]}`)
	e, err := engine.New(parse(t, reg, base), reg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := runEngine(t, e)
	waitFor(t, 5*time.Second, "the first events", func() bool { return l.count("out", "a") > 100 })
	for _, tc := range []struct{ name, file, want string }{
		{"added", topology(head, "sinks:", `  - {name: out, type: ledger, inputs: [c]}`, `  - {name: bad, type: broken, inputs: [c]}`), `"bad"`},
		{"changed", topology(head, "sinks:", `  - {name: out, type: broken, inputs: [c]}`), `"out"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.Reload(context.Background(), parse(t, reg, tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, engine.ErrReloadNeedsRestart) {
				t.Fatalf("Reload = %v, want an error naming %s", err, tc.want)
			}
			t.Log(err)
			if got := names(e); !slices.Equal(got, []string{"c", "out"}) {
				t.Fatalf("Stats lists %v, want [c out]", got)
			}
			from := l.count("out", "a")
			waitFor(t, 5*time.Second, "the run to go on", func() bool { return l.count("out", "a") > from+100 })
		})
	}
	// The old sink was closed for the change and opened again.
	if s := l.sinkInstances("out")[0]; s.opens.Load() != 2 || s.closes.Load() != 1 {
		t.Fatalf("old sink opened %d, closed %d times; want 2 and 1", s.opens.Load(), s.closes.Load())
	}
	// The same file again applies the change it could not apply before.
	if err := e.Reload(context.Background(), parse(t, reg, base)); err != nil {
		t.Fatalf("Reload back: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	l.check(t, "out", func(int) bool { return true })
}

// TestReloadChurn reloads back and forth 20 times between two topologies
// while an unpaced source runs, then cancels: no deadlock, nothing lost
// or written twice, no goroutine left behind.
func TestReloadChurn(t *testing.T) {
	l := newLedger()
	reg := ledgerRegistry(l)
	const head = `{name: c, type: counter, config: {prefix: a}}`
	a := topology(head, "processors:", `  - {name: keep, type: filter, inputs: [c], config: {expr: "`+keepFilter+`"}}`,
		"sinks:", `  - {name: out, type: ledger, inputs: [keep]}`)
	b := topology(head, "processors:", `  - {name: keep, type: filter, parallelism: 2, buffer: 64, inputs: [c], config: {expr: "`+keepFilter+`"}}`,
		`  - {name: mid, type: filter, inputs: [keep], config: {expr: "true"}}`,
		"sinks:", `  - {name: out, type: ledger, inputs: [mid]}`, `  - {name: extra, type: ledger, inputs: [keep, c]}`)
	pa, pb := parse(t, reg, a), parse(t, reg, b)
	goroutines := runtime.NumGoroutine()
	e, err := engine.New(pa, reg, engine.Options{Grace: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := runEngine(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 20 {
		p := pb
		if i%2 == 1 {
			p = pa
		}
		from := statOf(e, "out").In
		if err := e.Reload(ctx, p); err != nil {
			t.Fatalf("Reload %d: %v", i, err)
		}
		waitFor(t, 5*time.Second, "the sink to go on", func() bool { return statOf(e, "out").In > from+1000 })
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	l.check(t, "out", passes)
	waitFor(t, 5*time.Second, "the run's goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines+1 })
}

// TestCheckReload lists what a reload does, and what needs a restart.
func TestCheckReload(t *testing.T) {
	reg := components.NewRegistry()
	const base = `
name: plan
sources:
  - {name: gen, type: generate, config: {data: {k: 1}}}
processors:
  - {name: keep, type: filter, inputs: [gen], config: {expr: "true"}}
  - {name: same, type: filter, inputs: [keep], config: {expr: "true"}}
sinks:
  - {name: out, type: drop, inputs: [same]}
  - {name: old, type: drop, inputs: [keep]}
dead_letter: {name: dl, type: drop}
`
	old := parse(t, reg, base)
	cases := []struct {
		name    string
		edit    func(string) string
		want    engine.Plan
		restart bool
	}{
		{"identical", func(s string) string { return s },
			engine.Plan{Unchanged: []string{"gen", "keep", "same", "out", "old", "dl"}}, false},
		{"add, remove, change, rewire", func(s string) string {
			s = strings.Replace(s, `{name: old, type: drop, inputs: [keep]}`, `{name: new, type: drop, inputs: [gen]}`, 1)
			s = strings.Replace(s, `{name: out, type: drop, inputs: [same]}`, `{name: out, type: drop, inputs: [same, gen]}`, 1)
			return strings.Replace(s, `{name: keep, type: filter, inputs: [gen], config: {expr: "true"}}`,
				`{name: keep, type: filter, parallelism: 2, inputs: [gen], config: {expr: "true"}}`, 1)
		}, engine.Plan{Start: []string{"new"}, Stop: []string{"old"}, Change: []string{"keep"},
			Unchanged: []string{"gen", "same", "out", "dl"}}, false},
		{"role changed", func(s string) string {
			s = strings.Replace(s, "  - {name: old, type: drop, inputs: [keep]}\n", "", 1)
			return strings.Replace(s, "processors:\n", "processors:\n  - {name: old, type: filter, inputs: [gen], config: {expr: \"true\"}}\n", 1)
		}, engine.Plan{Start: []string{"old"}, Stop: []string{"old"}, Unchanged: []string{"gen", "keep", "same", "out", "dl"}}, false},
		{"dead letter changed", func(s string) string {
			return strings.Replace(s, `dead_letter: {name: dl, type: drop}`, `dead_letter: {name: dl, type: stdout}`, 1)
		}, engine.Plan{}, true},
		{"dead letter removed", func(s string) string {
			return strings.Replace(s, `dead_letter: {name: dl, type: drop}`, ``, 1)
		}, engine.Plan{}, true},
		{"renamed pipeline", func(s string) string { return strings.Replace(s, "name: plan", "name: other", 1) },
			engine.Plan{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := engine.CheckReload(old, parse(t, reg, tc.edit(base)))
			if tc.restart {
				if !errors.Is(err, engine.ErrReloadNeedsRestart) {
					t.Fatalf("CheckReload = %v, want ErrReloadNeedsRestart", err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("plan = %+v\nwant   %+v", got, tc.want)
			}
		})
	}
}

// TestReloadRenamedHTTPSource renames an http source that listens on a
// fixed port: the new one opens after the old one closed, so it can take
// the port over, and what is posted to it arrives.
func TestReloadRenamedHTTPSource(t *testing.T) {
	l := newLedger()
	reg := ledgerRegistry(l)
	port, err := process.FreePort("127.0.0.1") // not an ephemeral one
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	file := func(name string) string {
		return topology(`{name: `+name+`, type: http, config: {address: "`+addr+`"}}`,
			"sinks:", `  - {name: out, type: ledger, inputs: [`+name+`], config: {keep_data: true}}`)
	}
	e, err := engine.New(parse(t, reg, file("web")), reg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := runEngine(t, e)
	post := func(body string) int {
		t.Helper()
		resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(`{"v":1}`); code != http.StatusAccepted {
		t.Fatalf("post to the first source: %d", code)
	}
	if err := e.Reload(context.Background(), parse(t, reg, file("ingest"))); err != nil {
		t.Fatalf("Reload renaming the source: %v", err)
	}
	if got := names(e); !slices.Contains(got, "ingest") || slices.Contains(got, "web") {
		t.Fatalf("components after the reload: %v", got)
	}
	if code := post(`{"v":2}`); code != http.StatusAccepted {
		t.Fatalf("post to the renamed source: %d", code)
	}
	waitFor(t, 5*time.Second, "both events", func() bool {
		return l.dataCount("out", `{"v":1}`) == 1 && l.dataCount("out", `{"v":2}`) == 1
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
