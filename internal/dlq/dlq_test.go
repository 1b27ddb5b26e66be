package dlq

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

const pipelineYAML = `
name: p
sources:
  - {name: a, type: file, config: {path: a.jsonl}}
  - {name: b, type: file, config: {path: b.jsonl}}
processors:
  - {name: fa, type: filter, inputs: [a], config: {expr: "true"}}
  - {name: fb, type: filter, inputs: [b], config: {expr: "true"}}
  - {name: m, type: map, inputs: [fa], config: {set: {x: "1"}}}
sinks:
  - {name: out, type: file, inputs: [m, fb], config: {path: out.jsonl}}
  - {name: side, type: file, inputs: [fb], config: {path: side.jsonl, append: false}}
dead_letter: {type: file, config: {path: failed.jsonl}}
`

func load(t *testing.T, yaml string) *spec.Pipeline {
	t.Helper()
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	pl, diags, err := spec.Load(pf, spec.Options{Registry: components.NewRegistry()})
	if err != nil || diags.HasErrors() {
		t.Fatalf("load: %v %v", err, diags)
	}
	return pl
}

func inputs(c *spec.Component) []string {
	var out []string
	for _, in := range c.Inputs {
		out = append(out, in.From)
	}
	return out
}

// TestPipeline: the replay keeps the targets and what is downstream of
// them, drops the sources and what only feeds from elsewhere, feeds each
// target from its hidden source (a target downstream of another keeps its
// input from it), and makes file sinks append.
func TestPipeline(t *testing.T) {
	pl := load(t, pipelineYAML)
	path, err := File(pl)
	if err != nil || path != filepath.Join(filepath.Dir(pl.File), "failed.jsonl") {
		t.Fatalf("File = %q, %v", path, err)
	}
	rp, err := Pipeline(pl, []Part{{From: "fa", To: "fa", N: 2}, {From: "m", To: "m", N: 1}}, path, 123)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range rp.Components() {
		names = append(names, c.Name)
	}
	if want := []string{"dlq:fa", "dlq:m", "fa", "m", "out"}; !slices.Equal(names, want) {
		t.Fatalf("components %v, want %v", names, want)
	}
	byName := func(n string) *spec.Component { return rp.Component(n) }
	if got := inputs(byName("fa")); !slices.Equal(got, []string{"dlq:fa"}) {
		t.Fatalf("fa inputs %v", got)
	}
	if got := inputs(byName("m")); !slices.Equal(got, []string{"fa", "dlq:m"}) {
		t.Fatalf("m inputs %v", got)
	}
	if got := inputs(byName("out")); !slices.Equal(got, []string{"m"}) {
		t.Fatalf("out inputs %v (fb is not replayed)", got)
	}
	src := byName("dlq:fa")
	if src.Type != components.DeadLetterSourceType || src.Config["path"] != path || src.Config["component"] != "fa" || src.Config["until"] != 123 {
		t.Fatalf("hidden source %+v", src)
	}
	if byName("out").Config["mode"] != "append" || rp.DeadLetter.Config["mode"] != "append" {
		t.Fatalf("file sinks do not append: %v %v", byName("out").Config, rp.DeadLetter.Config)
	}
	if pl.Component("out").Config["mode"] != nil || len(pl.Component("m").Inputs) != 1 {
		t.Fatal("the original pipeline was changed")
	}

	// --to a sink; a source's own dead letters (lines it rejected) go
	// from its place to what it feeds.
	rp, err = Pipeline(pl, []Part{{From: "fb", To: "side", N: 1}}, path, -1)
	if err != nil {
		t.Fatal(err)
	}
	if names := len(rp.Components()); names != 2 || rp.Component("side") == nil || rp.Component("side").Config["append"] != nil {
		t.Fatalf("--to side: %d components, side %+v", names, rp.Component("side"))
	}
	rp, err = Pipeline(pl, []Part{{From: "b", To: "b", N: 1}}, path, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := inputs(rp.Component("fb")); !slices.Equal(got, []string{"dlq:b"}) || rp.Component("b") != nil {
		t.Fatalf("a source's dead letters: fb inputs %v, b %+v", got, rp.Component("b"))
	}
	if _, err := Pipeline(pl, []Part{{From: "fa", To: "nope"}}, path, -1); err == nil {
		t.Fatal("an unknown target was accepted")
	}
}

// TestReadAndMark: entries in file order, torn and foreign lines left
// out, replayed up to the committed offset of their component's source.
func TestReadAndMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failed.jsonl")
	ev := func(id string) *flow.Event { return &flow.Event{ID: id, Data: []byte(`{}`)} }
	var data []byte
	for _, c := range []string{"x", "y", "x"} {
		data = appendLine(t, data, flow.NewDeadLetter(c, errors.New("e"), 1, ev(c)))
	}
	data = append(data, "garbage\n{\"component\":\"x\""...) // foreign, then torn
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	es, skipped, err := Read(path, -1)
	if err != nil || len(es) != 3 || skipped != 1 || es[2].Line != 3 {
		t.Fatalf("Read: %d entries, %d skipped, %v", len(es), skipped, err)
	}
	cp := flow.Checkpoint{Sources: map[string]map[string][]byte{
		SourceName("x"): {path: []byte(`{"offset":` + itoa(es[0].End) + `}`)},
	}}
	MarkReplayed(es, cp, path)
	if !es[0].Replayed || es[1].Replayed || es[2].Replayed {
		t.Fatalf("replayed: %v %v %v", es[0].Replayed, es[1].Replayed, es[2].Replayed)
	}
	if es, _, _ := Read(path, es[1].End); len(es) != 2 {
		t.Fatalf("Read up to the second entry's end: %d entries", len(es))
	}
	if es, _, err := Read(filepath.Join(t.TempDir(), "none"), -1); err != nil || len(es) != 0 {
		t.Fatalf("a missing file: %v %v", es, err)
	}
}

func appendLine(t *testing.T, dst []byte, d flow.DeadLetter) []byte {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(dst, b...), '\n')
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
