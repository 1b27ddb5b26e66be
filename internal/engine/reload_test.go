package engine_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// probeSink counts its Opens and Closes and the events it was given.
type probeSink struct {
	opens, closes, written atomic.Int64
}

func (s *probeSink) Open(context.Context) error  { s.opens.Add(1); return nil }
func (s *probeSink) Close(context.Context) error { s.closes.Add(1); return nil }
func (s *probeSink) Write(_ context.Context, b []*flow.Event) error {
	s.written.Add(int64(len(b)))
	return nil
}

// reloadPipeline is the pipeline the reload tests run: a paced generator,
// a filter keeping the events where keep holds, a file sink and a probe.
func reloadPipeline(t *testing.T, reg *flow.Registry, genCfg, keep, extra string) *spec.Pipeline {
	t.Helper()
	src := `
name: reload
sources:
  - name: gen
    type: generate
    config: {` + genCfg + `, batch_size: 10, expr: '{"i": i}'}
processors:
  - {name: keep, type: filter, inputs: [gen], config: {expr: "` + keep + `"}}
sinks:
  - {name: out, type: file, inputs: [keep], config: {path: out.jsonl, format: envelope}}
  - {name: probe, type: probe, inputs: [keep]}
` + extra
	p, diags := spec.Parse("pipeline.yaml", []byte(src), spec.Options{Registry: reg})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	return p
}

func probeRegistry(probe *probeSink) *flow.Registry {
	reg := components.NewRegistry()
	reg.MustRegister(&flow.ComponentSpec{Role: flow.RoleSink, Name: "probe", Summary: "test sink",
		New: func(flow.BuildContext) (any, error) { return probe, nil }})
	return reg
}

func statOf(e *engine.Engine, name string) engine.ComponentStats {
	for _, c := range e.Stats().Components {
		if c.Name == name {
			return c
		}
	}
	return engine.ComponentStats{}
}

// waitFor polls cond every 10 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadChangedFilter reloads a running generate → filter → file
// pipeline with a new filter condition: the events before the reload went
// through the old condition, the ones after through the new, none was lost
// or written twice, the source's counter kept rising and the unchanged
// sinks were not reopened.
func TestReloadChangedFilter(t *testing.T) {
	const count = 3000
	dir := t.TempDir()
	probe := &probeSink{}
	reg := probeRegistry(probe)
	gen := "count: " + strconv.Itoa(count) + ", rate: 3000"
	oldKeep, newKeep := "data.i % 2 == 0", "data.i % 3 == 0"
	e, err := engine.New(reloadPipeline(t, reg, gen, oldKeep, ""), reg, engine.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- e.Run(context.Background()) }()
	waitFor(t, 5*time.Second, "a third of the events", func() bool { return statOf(e, "gen").Out >= count/3 })
	before := statOf(e, "gen").Out
	sinkBefore := statOf(e, "out").Out

	if err := e.Reload(context.Background(), reloadPipeline(t, reg, gen, newKeep, "")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if after := statOf(e, "gen").Out; after < before {
		t.Fatalf("source counter went back from %d to %d", before, after)
	}
	if got := statOf(e, "out").Out; got < sinkBefore {
		t.Fatalf("sink counter went back from %d to %d", sinkBefore, got)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not end")
	}
	if got := statOf(e, "gen").Out; got != count {
		t.Fatalf("source emitted %d events in all, want %d (its counter must not reset)", got, count)
	}
	if o, c := probe.opens.Load(), probe.closes.Load(); o != 1 || c != 1 {
		t.Fatalf("unchanged probe sink opened %d and closed %d times, want 1 and 1", o, c)
	}

	f, err := os.Open(filepath.Join(dir, "out.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seen []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var env struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		i, err := strconv.Atoi(strings.TrimPrefix(env.ID, "gen:"))
		if err != nil {
			t.Fatalf("id %q: %v", env.ID, err)
		}
		seen = append(seen, i)
	}
	// The file holds, in order, the even ids below some cut and the
	// multiples of 3 from it on; the cut lies after the reload began.
	cut := -1
	for k := 0; k <= count && cut < 0; k++ {
		var want []int
		for i := range count {
			if (i < k && i%2 == 0) || (i >= k && i%3 == 0) {
				want = append(want, i)
			}
		}
		if equalInts(seen, want) {
			cut = k
		}
	}
	if cut < 0 {
		t.Fatalf("the file's %d ids are not the old filter's up to a point and the new one's after it: %v", len(seen), seen)
	}
	if cut < int(sinkBefore) || cut >= count {
		t.Fatalf("switch-over at id %d, want it after the %d events written before the reload and before %d", cut, sinkBefore, count)
	}
	if int64(len(seen)) != probe.written.Load() {
		t.Fatalf("file holds %d events, the probe sink got %d", len(seen), probe.written.Load())
	}
	t.Logf("%d events, switch-over at id %d, %d written", count, cut, len(seen))
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReloadNeedsRestart: changes Reload does not apply in place (the
// dead-letter sink, the pipeline's name) are refused with
// ErrReloadNeedsRestart and leave the run as it was; the ones it applies
// (a source's config, an added sink, parallelism, inputs) leave the
// unchanged sink alone.
func TestReloadNeedsRestart(t *testing.T) {
	dir := t.TempDir()
	probe := &probeSink{}
	reg := probeRegistry(probe)
	const gen, keep = "count: 0, rate: 2000", "data.i % 2 == 0"
	e, err := engine.New(reloadPipeline(t, reg, gen, keep, ""), reg, engine.Options{Dir: dir, Grace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	waitFor(t, 5*time.Second, "the run to start", func() bool { return e.Stats().Ready })

	cases := []struct {
		name    string
		p       *spec.Pipeline
		restart bool
	}{
		{"dead-letter sink added", reloadPipeline(t, reg, gen, keep, "dead_letter: {name: dl, type: drop}\n"), true},
		{"pipeline renamed", func() *spec.Pipeline {
			p := reloadPipeline(t, reg, gen, keep, "")
			p.Name = "other"
			return p
		}(), true},
		{"source config", reloadPipeline(t, reg, "count: 0, rate: 1000", keep, ""), false},
		{"added sink", reloadPipeline(t, reg, gen, keep, "  - {name: more, type: drop, inputs: [gen]}\n"), false},
		{"parallelism", func() *spec.Pipeline {
			p := reloadPipeline(t, reg, gen, keep, "")
			p.Processors[0].Parallelism = 4
			return p
		}(), false},
		{"inputs", func() *spec.Pipeline {
			p := reloadPipeline(t, reg, gen, keep, "")
			p.Sinks[1].Inputs = []spec.Input{{From: "gen"}}
			return p
		}(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := e.Reload(ctx, tc.p)
			if !tc.restart {
				if err != nil {
					t.Fatalf("Reload = %v, want it applied", err)
				}
				return
			}
			if !errors.Is(err, engine.ErrReloadNeedsRestart) {
				t.Fatalf("Reload = %v, want ErrReloadNeedsRestart", err)
			}
			t.Log(err)
		})
	}
	// Back to the first file; then the same file again is a no-op.
	if err := e.Reload(ctx, reloadPipeline(t, reg, gen, keep, "")); err != nil {
		t.Fatalf("Reload back: %v", err)
	}
	if err := e.Reload(ctx, reloadPipeline(t, reg, gen, keep, "")); err != nil {
		t.Fatalf("no-op Reload: %v", err)
	}
	out := statOf(e, "gen").Out
	waitFor(t, 5*time.Second, "the source to keep going", func() bool { return statOf(e, "gen").Out > out+50 })
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if o := probe.opens.Load(); o != 1 {
		t.Fatalf("probe opened %d times, want 1", o)
	}
}

// memInstance is one instance of the "mem" test sink: what it was given,
// and its Open/Close calls.
type memInstance struct {
	label                  string
	opens, closes, written atomic.Int64
}

func (m *memInstance) Open(context.Context) error  { m.opens.Add(1); return nil }
func (m *memInstance) Close(context.Context) error { m.closes.Add(1); return nil }
func (m *memInstance) Write(_ context.Context, b []*flow.Event) error {
	m.written.Add(int64(len(b)))
	return nil
}

// TestReloadChangedSink: a sink whose config changed is closed once its
// held batches are written and a new instance, opened, takes over; every
// event reaches one of the two, and the source is not restarted.
func TestReloadChangedSink(t *testing.T) {
	const count = 2000
	var mu sync.Mutex
	var instances []*memInstance
	reg := components.NewRegistry()
	reg.MustRegister(&flow.ComponentSpec{Role: flow.RoleSink, Name: "mem", Summary: "test sink",
		Fields: []flow.Field{{Name: "label", Type: flow.TypeString}},
		New: func(bc flow.BuildContext) (any, error) {
			m := &memInstance{label: fmt.Sprint(bc.Config["label"])}
			mu.Lock()
			instances = append(instances, m)
			mu.Unlock()
			return m, nil
		}})
	parse := func(label string) *spec.Pipeline {
		p, diags := spec.Parse("pipeline.yaml", []byte(`
name: sinkreload
sources:
  - {name: gen, type: generate, config: {count: `+strconv.Itoa(count)+`, rate: 4000, batch_size: 10, data: {k: 1}}}
sinks:
  - {name: out, type: mem, inputs: [gen], config: {label: `+label+`}}
`), spec.Options{Registry: reg})
		if diags.HasErrors() {
			t.Fatal(diags.Err())
		}
		return p
	}
	e, err := engine.New(parse("one"), reg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- e.Run(context.Background()) }()
	waitFor(t, 5*time.Second, "a quarter of the events", func() bool { return statOf(e, "gen").Out >= count/4 })
	if err := e.Reload(context.Background(), parse("two")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The first build is New's; Reload builds the second.
	if len(instances) != 2 || instances[0].label != "one" || instances[1].label != "two" {
		t.Fatalf("instances = %d, want the first and the reloaded one", len(instances))
	}
	a, b := instances[0], instances[1]
	if a.opens.Load() != 1 || a.closes.Load() != 1 || b.opens.Load() != 1 || b.closes.Load() != 1 {
		t.Fatalf("opens/closes: old %d/%d, new %d/%d; want 1/1 each", a.opens.Load(), a.closes.Load(), b.opens.Load(), b.closes.Load())
	}
	if a.written.Load() == 0 || b.written.Load() == 0 || a.written.Load()+b.written.Load() != count {
		t.Fatalf("old sink wrote %d, new %d; want both some and %d in all", a.written.Load(), b.written.Load(), count)
	}
	if got := statOf(e, "gen").Out; got != count {
		t.Fatalf("source emitted %d, want %d", got, count)
	}
}

// TestReloadRestarting: the same pipeline applied again with a component
// named to restart drains and reopens that one only; every event is
// written once.
func TestReloadRestarting(t *testing.T) {
	const count = 2000
	probe := &probeSink{}
	reg := probeRegistry(probe)
	gen := "count: " + strconv.Itoa(count) + ", rate: 4000"
	p := reloadPipeline(t, reg, gen, "true", "")
	e, err := engine.New(p, reg, engine.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- e.Run(context.Background()) }()
	waitFor(t, 10*time.Second, "a quarter of the events", func() bool { return probe.written.Load() >= count/4 })
	if err := e.ReloadRestarting(context.Background(), reloadPipeline(t, reg, gen, "true", ""), []string{"probe", "nosuch"}); err != nil {
		t.Fatalf("ReloadRestarting: %v", err)
	}
	if o, c := probe.opens.Load(), probe.closes.Load(); o != 2 || c != 1 {
		t.Fatalf("the restarted probe opened %d and closed %d times, want 2 and 1", o, c)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not end")
	}
	if got := probe.written.Load(); got != count {
		t.Fatalf("probe got %d events, want %d: none lost or repeated across its restart", got, count)
	}
	if got := statOf(e, "out").Out; got != count {
		t.Fatalf("the file sink (not restarted) wrote %d, want %d", got, count)
	}
}

// TestReloadKeepsSinkOutput: a reload goes on with the same sources,
// which send nothing again. A file sink the reload points at another
// file, or adds, must keep what that file holds (mode: truncate applies to
// a first run only, as for a sink new to a resumed run: resumeFrom) and
// write after it.
func TestReloadKeepsSinkOutput(t *testing.T) {
	const count = 2000
	sink := func(name, path string) string {
		return `  - {name: ` + name + `, type: file, inputs: [gen], config: {path: "` + filepath.ToSlash(path) + `"}}` + "\n"
	}
	for _, tc := range []struct {
		name string
		// after returns the sinks the reload brings, given the first
		// sink's file a and the file b that already holds a line.
		after func(a, b string) string
		// check tests the lines a and b hold at the end (b's first, kept
		// line not counted).
		check func(t *testing.T, inA, inB int)
	}{
		{"path changed", func(a, b string) string { return sink("out", b) }, func(t *testing.T, inA, inB int) {
			if inA+inB != count {
				t.Fatalf("%d events in a.jsonl and %d in b.jsonl, want %d in all", inA, inB, count)
			}
		}},
		{"sink added", func(a, b string) string { return sink("out", a) + sink("more", b) }, func(t *testing.T, inA, inB int) {
			if inA != count || inB == 0 {
				t.Fatalf("%d events in a.jsonl (want %d), %d in b.jsonl (want some)", inA, count, inB)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
			if err := os.WriteFile(b, []byte("{\"kept\":true}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			reg := components.NewRegistry()
			parse := func(sinks string) *spec.Pipeline {
				p, diags := spec.Parse("pipeline.yaml", []byte(`
name: sinkkeep
sources:
  - {name: gen, type: generate, config: {count: `+strconv.Itoa(count)+`, rate: 1000, batch_size: 10, data: {k: 1}}}
sinks:
`+sinks), spec.Options{Registry: reg})
				if diags.HasErrors() {
					t.Fatal(diags.Err())
				}
				return p
			}
			e, err := engine.New(parse(sink("out", a)), reg, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- e.Run(context.Background()) }()
			waitFor(t, 5*time.Second, "a quarter of the events", func() bool { return statOf(e, "gen").Out >= count/4 })
			if err := e.Reload(context.Background(), parse(tc.after(a, b))); err != nil {
				t.Fatalf("Reload: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("Run: %v", err)
			}
			got, _ := os.ReadFile(b)
			if !strings.HasPrefix(string(got), "{\"kept\":true}\n") {
				t.Fatalf("b.jsonl lost what it held before the reload; it starts %q", got[:min(len(got), 40)])
			}
			la, _ := os.ReadFile(a)
			tc.check(t, strings.Count(string(la), "\n"), strings.Count(string(got), "\n")-1)
		})
	}
}
