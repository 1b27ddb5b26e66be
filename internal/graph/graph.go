package graph

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// Errors Build returns (wrapped, with the names involved). The spec package
// reports the same problems with positions; these exist so a hand-built
// Pipeline cannot yield a broken graph.
var (
	// ErrDuplicateName: two components (or a component and the dead-letter
	// sink) share a name.
	ErrDuplicateName = errors.New("duplicate component name")
	// ErrUnknownInput: an input names no component of the pipeline.
	ErrUnknownInput = errors.New("unknown input")
	// ErrCycle: the inputs form a cycle; the message prints its path.
	ErrCycle = errors.New("cycle")
	// ErrBadInput: an input that a role cannot have (a source with inputs,
	// an input from a sink, an input from the component itself).
	ErrBadInput = errors.New("invalid input")
)

// DefaultDeadLetterName is the node name of a dead-letter sink written
// without a name.
const DefaultDeadLetterName = "dead_letter"

// Edge carries events from one node to another.
type Edge struct {
	// From and To are node names.
	From, To string
	// Types are the event types To takes from From; empty means all. When a
	// component lists the same upstream twice, the entries are merged into
	// one edge (all types if either takes all), so an event is never
	// delivered twice over one pair of nodes.
	Types []string
}

// Accepts reports whether an event of type t travels along the edge.
func (e Edge) Accepts(t string) bool {
	return len(e.Types) == 0 || slices.Contains(e.Types, t)
}

// Node is one component in the graph.
type Node struct {
	// Name is the component's name, unique in the pipeline.
	Name string
	// Role is source, processor or sink (the dead-letter sink is a sink).
	Role flow.Role
	// Component is the validated component the node runs.
	Component *spec.Component
	// DeadLetter is true for the pipeline's dead-letter sink. It has no
	// Inputs: the engine hands it every failed event directly.
	DeadLetter bool
	// Index is the node's position in Graph.Nodes (topological order), so
	// the engine can keep per-node state in slices.
	Index int
	// Inputs are the edges into the node, in the order the file declares
	// them; Outputs are the edges out of it, in topological order of their
	// targets.
	Inputs  []Edge
	Outputs []Edge

	order int // position in the file (sources, processors, sinks)
}

// FanOut reports whether the node feeds more than one node: each event is
// shared by reference with every matching output.
func (n *Node) FanOut() bool { return len(n.Outputs) > 1 }

// FanIn reports whether the node reads from more than one node: its input
// queue merges them.
func (n *Node) FanIn() bool { return len(n.Inputs) > 1 }

// Graph is the DAG of a pipeline. It is immutable after Build and safe for
// concurrent readers.
type Graph struct {
	// Name is the pipeline's name.
	Name   string
	nodes  []*Node
	byName map[string]*Node
	dead   *Node
}

// Nodes returns every node in topological order: a node comes after all of
// its inputs; ties keep file order (sources, then processors, then sinks).
// The dead-letter sink, if any, is last. The slice must not be modified.
func (g *Graph) Nodes() []*Node { return g.nodes }

// Node returns the node called name, or nil.
func (g *Graph) Node(name string) *Node { return g.byName[name] }

// DeadLetter returns the dead-letter sink's node, or nil when the pipeline
// has none.
func (g *Graph) DeadLetter() *Node { return g.dead }

// Sources returns the source nodes in topological order.
func (g *Graph) Sources() []*Node {
	return g.filter(func(n *Node) bool { return n.Role == flow.RoleSource })
}

// Sinks returns the sink nodes in topological order, without the
// dead-letter sink.
func (g *Graph) Sinks() []*Node {
	return g.filter(func(n *Node) bool { return n.Role == flow.RoleSink && !n.DeadLetter })
}

func (g *Graph) filter(keep func(*Node) bool) []*Node {
	var out []*Node
	for _, n := range g.nodes {
		if keep(n) {
			out = append(out, n)
		}
	}
	return out
}

// Edges returns every edge, grouped by source node in topological order.
func (g *Graph) Edges() []Edge {
	var out []Edge
	for _, n := range g.nodes {
		out = append(out, n.Outputs...)
	}
	return out
}

// FeedsDeadLetter reports whether failed events of n go to the dead-letter
// sink under n's on_error policy. A policy left empty follows DESIGN.md's
// defaults, as the engine applies them: sinks retry then stop; sources and
// processors dead-letter when the pipeline has a dead-letter sink (and a
// retry without `then` falls back the same way).
func (g *Graph) FeedsDeadLetter(n *Node) bool {
	if g.dead == nil || n.DeadLetter || n.Component == nil {
		return false
	}
	oe := n.Component.OnError
	switch oe.Policy {
	case spec.OnErrorDeadLetter:
		return true
	case spec.OnErrorRetry:
		if oe.Then != "" && oe.Then != spec.OnErrorRetry {
			return oe.Then == spec.OnErrorDeadLetter
		}
		return n.Role != flow.RoleSink
	case "":
		return n.Role != flow.RoleSink
	}
	return false
}

// Build makes the graph of p. p should be valid (spec.Load without
// errors); Build still refuses duplicate names, unknown inputs, inputs on a
// source or from a sink, and cycles.
func Build(p *spec.Pipeline) (*Graph, error) {
	g := &Graph{Name: p.Name, byName: map[string]*Node{}}
	var errs []error
	var nodes []*Node
	for i, c := range p.Components() {
		n := &Node{Name: c.Name, Role: c.Role, Component: c, order: i}
		if _, dup := g.byName[n.Name]; dup {
			errs = append(errs, fmt.Errorf("%w: %q", ErrDuplicateName, n.Name))
			continue
		}
		g.byName[n.Name] = n
		nodes = append(nodes, n)
	}

	for _, n := range nodes {
		for _, in := range n.Component.Inputs {
			if err := g.addInput(n, in); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	sorted, err := topoSort(nodes)
	if err != nil {
		return nil, err
	}
	if p.DeadLetter != nil {
		name := p.DeadLetter.Name
		if name == "" {
			name = DefaultDeadLetterName
		}
		if _, dup := g.byName[name]; dup {
			return nil, fmt.Errorf("%w: %q is both a component and the dead-letter sink", ErrDuplicateName, name)
		}
		g.dead = &Node{Name: name, Role: flow.RoleSink, Component: p.DeadLetter, DeadLetter: true}
		g.byName[name] = g.dead
		sorted = append(sorted, g.dead)
	}
	for i, n := range sorted {
		n.Index = i
	}
	// Outputs follow the targets' topological order so that every walk of
	// the graph is deterministic.
	for _, n := range sorted {
		for _, e := range n.Inputs {
			from := g.byName[e.From]
			from.Outputs = append(from.Outputs, e)
		}
	}
	g.nodes = sorted
	return g, nil
}

// addInput adds the edge in → n, merging it into an existing edge from the
// same upstream.
func (g *Graph) addInput(n *Node, in spec.Input) error {
	from, ok := g.byName[in.From]
	switch {
	case !ok:
		return fmt.Errorf("%w: %s %q reads from %q, which is not a component of the pipeline", ErrUnknownInput, n.Role, n.Name, in.From)
	case n.Role == flow.RoleSource:
		return fmt.Errorf("%w: source %q has inputs; sources only produce events", ErrBadInput, n.Name)
	case from.Role == flow.RoleSink:
		return fmt.Errorf("%w: %s %q reads from sink %q; sinks have no outputs", ErrBadInput, n.Role, n.Name, in.From)
	case from == n:
		return fmt.Errorf("%w: %s %q reads from itself", ErrCycle, n.Role, n.Name)
	}
	types := dedupe(in.Types)
	for i := range n.Inputs {
		e := &n.Inputs[i]
		if e.From != in.From {
			continue
		}
		if len(e.Types) == 0 || len(types) == 0 {
			e.Types = nil
		} else {
			e.Types = dedupe(append(e.Types, types...))
		}
		return nil
	}
	n.Inputs = append(n.Inputs, Edge{From: in.From, To: n.Name, Types: types})
	return nil
}

// dedupe drops repeated and empty types, keeping the first occurrence's
// order; it returns a new slice (nil when nothing is left).
func dedupe(types []string) []string {
	var out []string
	for _, t := range types {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// topoSort orders nodes with Kahn's algorithm, always taking the ready
// node that comes first in the file, so the order is stable.
func topoSort(nodes []*Node) ([]*Node, error) {
	indeg := make(map[*Node]int, len(nodes))
	succ := make(map[string][]*Node, len(nodes))
	for _, n := range nodes {
		indeg[n] = len(n.Inputs)
		for _, e := range n.Inputs {
			succ[e.From] = append(succ[e.From], n)
		}
	}
	var ready, out []*Node
	for _, n := range nodes {
		if indeg[n] == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		best := 0
		for i, n := range ready {
			if n.order < ready[best].order {
				best = i
			}
		}
		n := ready[best]
		ready = slices.Delete(ready, best, best+1)
		out = append(out, n)
		for _, s := range succ[n.Name] {
			indeg[s]--
			if indeg[s] == 0 {
				ready = append(ready, s)
			}
		}
	}
	if len(out) == len(nodes) {
		return out, nil
	}
	var left []*Node
	for _, n := range nodes {
		if indeg[n] > 0 {
			left = append(left, n)
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrCycle, strings.Join(findCycle(left), " → "))
}

// findCycle returns one cycle among nodes that Kahn's algorithm could not
// order, as names with the first repeated at the end (a → b → a). Every
// such node has an unordered input, so walking inputs backwards from any
// of them must revisit a node.
func findCycle(left []*Node) []string {
	in := make(map[string]*Node, len(left))
	for _, n := range left {
		in[n.Name] = n
	}
	seen := map[string]int{}
	var path []string
	n := left[0]
	for {
		if i, ok := seen[n.Name]; ok {
			cycle := slices.Clone(path[i:])
			slices.Reverse(cycle)
			// Start at the node written first, so the message is stable.
			first := 0
			for j, name := range cycle {
				if in[name].order < in[cycle[first]].order {
					first = j
				}
			}
			cycle = slices.Concat(cycle[first:], cycle[:first])
			return append(cycle, cycle[0])
		}
		seen[n.Name] = len(path)
		path = append(path, n.Name)
		var next *Node
		for _, e := range n.Inputs {
			if m, ok := in[e.From]; ok {
				next = m
				break
			}
		}
		if next == nil { // cannot happen: see the doc comment
			return path
		}
		n = next
	}
}
