package graph

import (
	"fmt"
	"strings"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// Both renderers walk Nodes() and each node's Outputs, which Build orders
// deterministically, so the same file always renders to the same bytes
// (the output is golden-tested and diffable in a review).
//
// Shapes: a source is a stadium (Mermaid) / cds (DOT), a processor a box,
// a sink a cylinder; the dead-letter sink is a dashed cylinder, reached by
// dashed "on error" edges from the nodes whose failures go there. Edges
// that select event types are labelled with them.

// deadLetterLabel labels the dashed edges into the dead-letter sink: they
// are not declared inputs, the engine sends failed events along them.
const deadLetterLabel = "on error"

// Mermaid renders g as a Mermaid flowchart (left to right).
func Mermaid(g *Graph) string {
	var b strings.Builder
	if g.Name != "" {
		fmt.Fprintf(&b, "---\ntitle: %q\n---\n", g.Name)
	}
	b.WriteString("flowchart LR\n")
	id := func(n *Node) string { return fmt.Sprintf("n%d", n.Index) }
	for _, n := range g.nodes {
		label := mermaidEscape(n.Name)
		if what := runsLabel(n); what != "" {
			label += "<br/>" + mermaidEscape(what)
		}
		left, right := "[", "]"
		switch {
		case n.Role == flow.RoleSource:
			left, right = "([", "])"
		case n.Role == flow.RoleSink:
			left, right = "[(", ")]"
		}
		fmt.Fprintf(&b, "    %s%s\"%s\"%s\n", id(n), left, label, right)
	}
	for _, n := range g.nodes {
		for _, e := range n.Outputs {
			arrow := "-->"
			if len(e.Types) > 0 {
				arrow += "|\"" + mermaidEscape(strings.Join(e.Types, ", ")) + "\"|"
			}
			fmt.Fprintf(&b, "    %s %s %s\n", id(n), arrow, id(g.byName[e.To]))
		}
	}
	if g.dead != nil {
		for _, n := range g.nodes {
			if g.FeedsDeadLetter(n) {
				fmt.Fprintf(&b, "    %s -.->|\"%s\"| %s\n", id(n), deadLetterLabel, id(g.dead))
			}
		}
		b.WriteString("    classDef deadletter stroke-dasharray: 5 5\n")
		fmt.Fprintf(&b, "    class %s deadletter\n", id(g.dead))
	}
	return b.String()
}

// DOT renders g as a Graphviz digraph (left to right).
func DOT(g *Graph) string {
	var b strings.Builder
	name := g.Name
	if name == "" {
		name = "pipeline"
	}
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(name))
	b.WriteString("    rankdir=LR;\n")
	b.WriteString("    node [fontname=\"Helvetica\", fontsize=11];\n")
	b.WriteString("    edge [fontname=\"Helvetica\", fontsize=10];\n\n")
	for _, n := range g.nodes {
		label := n.Name
		if what := runsLabel(n); what != "" {
			label += "\n" + what
		}
		attrs := "shape=box, style=rounded"
		switch {
		case n.DeadLetter:
			attrs = "shape=cylinder, style=dashed"
		case n.Role == flow.RoleSource:
			attrs = "shape=cds"
		case n.Role == flow.RoleSink:
			attrs = "shape=cylinder"
		}
		fmt.Fprintf(&b, "    %s [label=%s, %s];\n", dotQuote(n.Name), dotQuote(label), attrs)
	}
	if len(g.nodes) > 0 {
		b.WriteString("\n")
	}
	for _, n := range g.nodes {
		for _, e := range n.Outputs {
			fmt.Fprintf(&b, "    %s -> %s", dotQuote(e.From), dotQuote(e.To))
			if len(e.Types) > 0 {
				fmt.Fprintf(&b, " [label=%s]", dotQuote(strings.Join(e.Types, ", ")))
			}
			b.WriteString(";\n")
		}
	}
	if g.dead != nil {
		for _, n := range g.nodes {
			if g.FeedsDeadLetter(n) {
				fmt.Fprintf(&b, "    %s -> %s [style=dashed, label=%s];\n", dotQuote(n.Name), dotQuote(g.dead.Name), dotQuote(deadLetterLabel))
			}
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// RunsLabel says what runs n (the built-in's type, the image, the
// command, shortened), as the rendered graphs show it under the name.
func RunsLabel(n *Node) string { return runsLabel(n) }

// runsLabel says what runs a node: the built-in's type, the image, or the
// command (shortened), so the picture shows more than names.
func runsLabel(n *Node) string {
	c := n.Component
	if c == nil {
		return ""
	}
	switch {
	case c.Runner == spec.RunRemote:
		return "url " + c.URL
	case c.Runner == spec.RunContainer || (c.Runner == "" && c.Image != ""):
		return "image " + c.Image
	case c.Ref != "":
		return "component " + c.Ref
	case c.Runner == spec.RunProcess || (c.Runner == "" && c.Type == "" && len(c.Command) > 0):
		cmd := strings.Join(c.Command, " ")
		if r := []rune(cmd); len(r) > 32 {
			cmd = string(r[:31]) + "…"
		}
		return "command " + cmd
	}
	return c.Type
}

// mermaidEscape makes s safe inside a quoted Mermaid label: quotes and
// angle brackets become entity codes (Mermaid reads labels as HTML), and so
// does '#', which would otherwise start an entity.
func mermaidEscape(s string) string {
	return strings.NewReplacer(
		"#", "#35;",
		"\"", "#quot;",
		"<", "#lt;",
		">", "#gt;",
		"\n", " ",
	).Replace(s)
}

// dotQuote returns s as a DOT quoted string; "\n" inside stays a DOT line
// break.
func dotQuote(s string) string {
	return "\"" + strings.NewReplacer("\\", "\\\\", "\"", "\\\"", "\n", "\\n").Replace(s) + "\""
}
