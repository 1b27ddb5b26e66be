package graph

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func comp(role flow.Role, name, typ string, inputs ...spec.Input) *spec.Component {
	return &spec.Component{Name: name, Role: role, Type: typ, Runner: spec.RunBuiltin, Inputs: inputs}
}

func src(name, typ string) *spec.Component { return comp(flow.RoleSource, name, typ) }
func proc(name, typ string, inputs ...spec.Input) *spec.Component {
	return comp(flow.RoleProcessor, name, typ, inputs...)
}
func sink(name, typ string, inputs ...spec.Input) *spec.Component {
	return comp(flow.RoleSink, name, typ, inputs...)
}
func in(from string, types ...string) spec.Input { return spec.Input{From: from, Types: types} }

// pipelines are the topologies every test below walks; each also has a
// Mermaid and a DOT golden file under testdata/.
var pipelines = map[string]*spec.Pipeline{
	"linear": {
		Name:       "linear",
		Sources:    []*spec.Component{src("events", "file")},
		Processors: []*spec.Component{proc("large", "filter", in("events")), proc("enrich", "map", in("large"))},
		Sinks:      []*spec.Component{sink("out", "file", in("enrich"))},
	},
	"fanout": {
		Name:       "fanout",
		Sources:    []*spec.Component{src("gen", "generate")},
		Processors: []*spec.Component{proc("a", "map", in("gen")), proc("b", "filter", in("gen"))},
		Sinks:      []*spec.Component{sink("out_a", "stdout", in("a")), sink("out_b", "file", in("b"))},
	},
	"fanin": {
		Name:    "fanin",
		Sources: []*spec.Component{src("left", "file"), src("right", "http")},
		Sinks:   []*spec.Component{sink("all", "file", in("left"), in("right"))},
	},
	"diamond": {
		Name:    "diamond",
		Sources: []*spec.Component{src("gen", "generate")},
		// Written out of order on purpose: join comes before its inputs.
		Processors: []*spec.Component{
			proc("join", "map", in("b"), in("a")),
			proc("a", "map", in("gen")),
			proc("b", "filter", in("gen")),
		},
		Sinks: []*spec.Component{sink("out", "stdout", in("join"))},
		DeadLetter: &spec.Component{
			Role: flow.RoleSink, Type: "file", Runner: spec.RunBuiltin,
		},
	},
	"routed": {
		Name:       "routed",
		Sources:    []*spec.Component{src("in", "http")},
		Processors: []*spec.Component{proc("r", "route", in("in"))},
		Sinks: []*spec.Component{
			sink("payments", "sqlite", in("r", "payment", "refund")),
			sink("other", "file", in("r", "signup"), in("r", "login", "signup")),
			sink("everything", "stdout", in("r")),
		},
	},
	"external": {
		Name: "images & \"quotes\"",
		Sources: []*spec.Component{{
			Name: "ledger", Role: flow.RoleSource, Type: "source", Image: "ghcr.io/acme/ledger:1.2", Runner: spec.RunContainer,
		}},
		Processors: []*spec.Component{{
			Name: "enrich", Role: flow.RoleProcessor, Command: []string{"python3", "enrich.py", "--mode", "a-rather-long-argument"},
			Runner: spec.RunProcess, Inputs: []spec.Input{in("ledger", "payment")},
			OnError: spec.OnError{Policy: spec.OnErrorRetry, Then: spec.OnErrorDeadLetter},
		}},
		Sinks: []*spec.Component{
			{Name: "db", Role: flow.RoleSink, Type: "sink", Image: "postgres:16", Runner: spec.RunContainer, Inputs: []spec.Input{in("enrich")}},
			{Name: "audit", Role: flow.RoleSink, Type: "file", Runner: spec.RunBuiltin, Inputs: []spec.Input{in("enrich")},
				OnError: spec.OnError{Policy: spec.OnErrorDeadLetter}},
		},
		DeadLetter: &spec.Component{Name: "failed", Role: flow.RoleSink, Type: "file", Runner: spec.RunBuiltin},
	},
}

func names(nodes []*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

func edgeStrings(edges []Edge) []string {
	var out []string
	for _, e := range edges {
		s := e.From + "->" + e.To
		if len(e.Types) > 0 {
			s += "[" + strings.Join(e.Types, ",") + "]"
		}
		out = append(out, s)
	}
	return out
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name     string
		order    []string
		edges    []string
		fanOut   []string // nodes with more than one output
		fanIn    []string // nodes with more than one input
		sources  []string
		sinks    []string
		dead     string
		feedDead []string // nodes whose failures go to the dead-letter sink
	}{
		{
			name:    "linear",
			order:   []string{"events", "large", "enrich", "out"},
			edges:   []string{"events->large", "large->enrich", "enrich->out"},
			sources: []string{"events"}, sinks: []string{"out"},
		},
		{
			name:    "fanout",
			order:   []string{"gen", "a", "b", "out_a", "out_b"},
			edges:   []string{"gen->a", "gen->b", "a->out_a", "b->out_b"},
			fanOut:  []string{"gen"},
			sources: []string{"gen"}, sinks: []string{"out_a", "out_b"},
		},
		{
			name:    "fanin",
			order:   []string{"left", "right", "all"},
			edges:   []string{"left->all", "right->all"},
			fanIn:   []string{"all"},
			sources: []string{"left", "right"}, sinks: []string{"all"},
		},
		{
			name:     "diamond",
			order:    []string{"gen", "a", "b", "join", "out", "dead_letter"},
			edges:    []string{"gen->a", "gen->b", "a->join", "b->join", "join->out"},
			fanOut:   []string{"gen"},
			fanIn:    []string{"join"},
			sources:  []string{"gen"},
			sinks:    []string{"out"},
			dead:     "dead_letter",
			feedDead: []string{"gen", "a", "b", "join"},
		},
		{
			name:    "routed",
			order:   []string{"in", "r", "payments", "other", "everything"},
			edges:   []string{"in->r", "r->payments[payment,refund]", "r->other[signup,login]", "r->everything"},
			fanOut:  []string{"r"},
			sources: []string{"in"}, sinks: []string{"payments", "other", "everything"},
		},
		{
			name:     "external",
			order:    []string{"ledger", "enrich", "db", "audit", "failed"},
			edges:    []string{"ledger->enrich[payment]", "enrich->db", "enrich->audit"},
			fanOut:   []string{"enrich"},
			sources:  []string{"ledger"},
			sinks:    []string{"db", "audit"},
			dead:     "failed",
			feedDead: []string{"ledger", "enrich", "audit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Build(pipelines[tt.name])
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if got := names(g.Nodes()); !slices.Equal(got, tt.order) {
				t.Errorf("Nodes() = %v, want %v", got, tt.order)
			}
			if got := edgeStrings(g.Edges()); !slices.Equal(got, tt.edges) {
				t.Errorf("Edges() = %v, want %v", got, tt.edges)
			}
			var fanOut, fanIn, feed []string
			for i, n := range g.Nodes() {
				if n.Index != i {
					t.Errorf("%s: Index = %d, want %d", n.Name, n.Index, i)
				}
				if g.Node(n.Name) != n {
					t.Errorf("Node(%q) does not return the node", n.Name)
				}
				// Every edge is listed on both of its ends, and inputs
				// come earlier in the order.
				for _, e := range n.Inputs {
					from := g.Node(e.From)
					if from.Index >= n.Index {
						t.Errorf("input %s of %s is not before it", e.From, n.Name)
					}
					if !slices.ContainsFunc(from.Outputs, func(o Edge) bool { return o.To == n.Name }) {
						t.Errorf("edge %s->%s missing from %s's outputs", e.From, n.Name, e.From)
					}
				}
				if n.FanOut() {
					fanOut = append(fanOut, n.Name)
				}
				if n.FanIn() {
					fanIn = append(fanIn, n.Name)
				}
				if g.FeedsDeadLetter(n) {
					feed = append(feed, n.Name)
				}
			}
			if !slices.Equal(fanOut, tt.fanOut) {
				t.Errorf("fan-out nodes = %v, want %v", fanOut, tt.fanOut)
			}
			if !slices.Equal(fanIn, tt.fanIn) {
				t.Errorf("fan-in nodes = %v, want %v", fanIn, tt.fanIn)
			}
			if !slices.Equal(feed, tt.feedDead) {
				t.Errorf("nodes feeding the dead-letter sink = %v, want %v", feed, tt.feedDead)
			}
			if got := names(g.Sources()); !slices.Equal(got, tt.sources) {
				t.Errorf("Sources() = %v, want %v", got, tt.sources)
			}
			if got := names(g.Sinks()); !slices.Equal(got, tt.sinks) {
				t.Errorf("Sinks() = %v, want %v", got, tt.sinks)
			}
			dl := g.DeadLetter()
			switch {
			case tt.dead == "" && dl != nil:
				t.Errorf("DeadLetter() = %q, want none", dl.Name)
			case tt.dead != "" && (dl == nil || dl.Name != tt.dead || !dl.DeadLetter || len(dl.Inputs) > 0):
				t.Errorf("DeadLetter() = %+v, want a node %q without inputs", dl, tt.dead)
			}
		})
	}
}

func TestEdgeAccepts(t *testing.T) {
	tests := []struct {
		edge Edge
		typ  string
		want bool
	}{
		{Edge{From: "a", To: "b"}, "anything", true},
		{Edge{From: "a", To: "b", Types: []string{"payment", "refund"}}, "refund", true},
		{Edge{From: "a", To: "b", Types: []string{"payment"}}, "signup", false},
		{Edge{From: "a", To: "b", Types: []string{"payment"}}, "", false},
	}
	for _, tt := range tests {
		if got := tt.edge.Accepts(tt.typ); got != tt.want {
			t.Errorf("%v.Accepts(%q) = %v, want %v", tt.edge, tt.typ, got, tt.want)
		}
	}
}

// TestBuildMergesRepeatedInputs: two entries for one upstream become one
// edge, taking every type when either entry does.
func TestBuildMergesRepeatedInputs(t *testing.T) {
	p := &spec.Pipeline{
		Sources: []*spec.Component{src("s", "generate")},
		Sinks:   []*spec.Component{sink("k", "stdout", in("s", "a"), in("s"), in("s", "b"))},
	}
	g, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := edgeStrings(g.Edges()); !slices.Equal(got, []string{"s->k"}) {
		t.Errorf("Edges() = %v, want [s->k]", got)
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		p    *spec.Pipeline
		is   error
		msg  string
	}{
		{
			name: "unknown input",
			p: &spec.Pipeline{
				Sources: []*spec.Component{src("s", "generate")},
				Sinks:   []*spec.Component{sink("k", "stdout", in("nope"))},
			},
			is:  ErrUnknownInput,
			msg: `unknown input: sink "k" reads from "nope", which is not a component of the pipeline`,
		},
		{
			name: "cycle",
			p: &spec.Pipeline{
				Sources: []*spec.Component{src("s", "generate")},
				Processors: []*spec.Component{
					proc("a", "map", in("s"), in("c")),
					proc("b", "map", in("a")),
					proc("c", "map", in("b")),
				},
				Sinks: []*spec.Component{sink("k", "stdout", in("c"))},
			},
			is:  ErrCycle,
			msg: "cycle: a → b → c → a",
		},
		{
			name: "self loop",
			p: &spec.Pipeline{
				Sources:    []*spec.Component{src("s", "generate")},
				Processors: []*spec.Component{proc("a", "map", in("s"), in("a"))},
			},
			is:  ErrCycle,
			msg: `cycle: processor "a" reads from itself`,
		},
		{
			name: "duplicate",
			p: &spec.Pipeline{
				Sources: []*spec.Component{src("x", "generate")},
				Sinks:   []*spec.Component{sink("x", "stdout", in("x"))},
			},
			is:  ErrDuplicateName,
			msg: `duplicate component name: "x"`,
		},
		{
			name: "dead letter named like a component",
			p: &spec.Pipeline{
				Sources:    []*spec.Component{src("s", "generate")},
				Sinks:      []*spec.Component{sink("dead_letter", "stdout", in("s"))},
				DeadLetter: &spec.Component{Role: flow.RoleSink, Type: "file"},
			},
			is:  ErrDuplicateName,
			msg: `duplicate component name: "dead_letter" is both a component and the dead-letter sink`,
		},
		{
			name: "source with inputs",
			p: &spec.Pipeline{
				Sources: []*spec.Component{src("s", "generate"), comp(flow.RoleSource, "t", "file", in("s"))},
			},
			is:  ErrBadInput,
			msg: `invalid input: source "t" has inputs; sources only produce events`,
		},
		{
			name: "input from a sink",
			p: &spec.Pipeline{
				Sources: []*spec.Component{src("s", "generate")},
				Sinks:   []*spec.Component{sink("k", "stdout", in("s")), sink("k2", "stdout", in("k"))},
			},
			is:  ErrBadInput,
			msg: `invalid input: sink "k2" reads from sink "k"; sinks have no outputs`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Build(tt.p)
			if err == nil {
				t.Fatalf("Build succeeded with %d nodes, want an error", len(g.Nodes()))
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			if err.Error() != tt.msg {
				t.Errorf("error = %q\nwant    %q", err, tt.msg)
			}
		})
	}
}

// TestRender compares Mermaid and DOT output with testdata/<case>.mmd and
// .dot; run with -update to rewrite them after a deliberate change.
func TestRender(t *testing.T) {
	for name, p := range pipelines {
		t.Run(name, func(t *testing.T) {
			g, err := Build(p)
			if err != nil {
				t.Fatal(err)
			}
			for ext, render := range map[string]func(*Graph) string{".mmd": Mermaid, ".dot": DOT} {
				got := render(g)
				if again := render(g); again != got {
					t.Fatalf("%s output is not stable between two calls", ext)
				}
				golden(t, filepath.Join("testdata", name+ext), got)
			}
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestBuildRandomDAGs builds many random acyclic pipelines (fixed seeds)
// and checks the invariants the engine relies on: every node once, inputs
// before the node, each edge on both ends, and Build deterministic.
func TestBuildRandomDAGs(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		p := &spec.Pipeline{Name: fmt.Sprintf("random-%d", seed)}
		var upstream []string
		for i := range 1 + r.IntN(3) {
			name := fmt.Sprintf("s%d", i)
			p.Sources = append(p.Sources, src(name, "generate"))
			upstream = append(upstream, name)
		}
		var procs []*spec.Component
		for i := range r.IntN(8) {
			name := fmt.Sprintf("p%d", i)
			procs = append(procs, proc(name, "map", randomInputs(r, upstream)...))
			upstream = append(upstream, name)
		}
		// File order need not be data order: shuffle the processors.
		r.Shuffle(len(procs), func(i, j int) { procs[i], procs[j] = procs[j], procs[i] })
		p.Processors = procs
		for i := range 1 + r.IntN(3) {
			p.Sinks = append(p.Sinks, sink(fmt.Sprintf("k%d", i), "stdout", randomInputs(r, upstream)...))
		}
		g, err := Build(p)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		again, _ := Build(p)
		if !slices.Equal(names(g.Nodes()), names(again.Nodes())) || Mermaid(g) != Mermaid(again) {
			t.Fatalf("seed %d: two builds differ", seed)
		}
		if len(g.Nodes()) != len(p.Components()) {
			t.Fatalf("seed %d: %d nodes for %d components", seed, len(g.Nodes()), len(p.Components()))
		}
		edges := 0
		for _, n := range g.Nodes() {
			for _, e := range n.Inputs {
				edges++
				if g.Node(e.From).Index >= n.Index {
					t.Fatalf("seed %d: %s comes before its input %s", seed, n.Name, e.From)
				}
				if !slices.ContainsFunc(g.Node(e.From).Outputs, func(o Edge) bool { return o.To == n.Name }) {
					t.Fatalf("seed %d: edge %s->%s missing from the outputs", seed, e.From, n.Name)
				}
			}
		}
		if edges != len(g.Edges()) {
			t.Fatalf("seed %d: %d input edges but %d edges", seed, edges, len(g.Edges()))
		}
	}
}

// randomInputs picks 1–3 distinct upstream names, some with a type
// selection.
func randomInputs(r *rand.Rand, upstream []string) []spec.Input {
	var out []spec.Input
	for _, i := range r.Perm(len(upstream))[:1+r.IntN(min(3, len(upstream)))] {
		in := spec.Input{From: upstream[i]}
		if r.IntN(3) == 0 {
			in.Types = []string{"a", "b"}[:1+r.IntN(2)]
		}
		out = append(out, in)
	}
	return out
}
