package ui

import (
	"slices"
	"sort"

	"github.com/flowctl/flowctl/internal/graph"
)

// Box sizes and gaps of the layout, in SVG user units (pixels at 100%).
const (
	NodeWidth  = 190
	NodeHeight = 76
	colGap     = 96
	rowGap     = 36
	margin     = 24
)

// GraphJSON is what GraphPath serves: the graph with a position per node.
type GraphJSON struct {
	Pipeline string     `json:"pipeline"`
	Width    int        `json:"width"`
	Height   int        `json:"height"`
	Nodes    []NodeJSON `json:"nodes"`
	Edges    []EdgeJSON `json:"edges"`
}

// NodeJSON is one component: what it is and where its box goes (X, Y:
// top left corner).
type NodeJSON struct {
	Name       string `json:"name"`
	Role       string `json:"role"`
	Runs       string `json:"runs,omitempty"`
	DeadLetter bool   `json:"dead_letter,omitempty"`
	Rank       int    `json:"rank"`
	Row        int    `json:"row"`
	X          int    `json:"x"`
	Y          int    `json:"y"`
	W          int    `json:"w"`
	H          int    `json:"h"`
}

// EdgeJSON is an edge; DeadLetter marks the "on error" edges into the
// dead-letter sink (not declared inputs: failed events go along them).
type EdgeJSON struct {
	From       string   `json:"from"`
	To         string   `json:"to"`
	Types      []string `json:"types,omitempty"`
	DeadLetter bool     `json:"dead_letter,omitempty"`
}

// Layout places g's nodes: a node's column (rank) is the length of the
// longest path from a source to it, so every edge goes right; the
// dead-letter sink goes right of every node that feeds it, in the last
// column. Within a column nodes are ordered by the mean row of their
// inputs (fewer crossings), then topologically, and columns are centred
// on the tallest.
func Layout(g *graph.Graph) GraphJSON {
	out := GraphJSON{Pipeline: g.Name, Nodes: []NodeJSON{}, Edges: []EdgeJSON{}}
	nodes := g.Nodes()
	rank := map[string]int{}
	maxRank := 0
	for _, n := range nodes {
		if n.DeadLetter {
			continue
		}
		r := 0
		for _, in := range n.Inputs {
			r = max(r, rank[in.From]+1)
		}
		rank[n.Name] = r
		maxRank = max(maxRank, r)
	}
	if dl := g.DeadLetter(); dl != nil {
		r := maxRank
		for _, n := range nodes {
			if g.FeedsDeadLetter(n) {
				r = max(r, rank[n.Name]+1)
			}
		}
		rank[dl.Name] = r
		maxRank = r
	}
	cols := make([][]*graph.Node, maxRank+1)
	for _, n := range nodes { // topological order
		cols[rank[n.Name]] = append(cols[rank[n.Name]], n)
	}
	row := map[string]float64{}
	for _, col := range cols {
		bary := map[string]float64{}
		for i, n := range col {
			bary[n.Name] = float64(i)
			if len(n.Inputs) > 0 {
				sum := 0.0
				for _, in := range n.Inputs {
					sum += row[in.From]
				}
				bary[n.Name] = sum / float64(len(n.Inputs))
			}
		}
		sort.SliceStable(col, func(i, j int) bool {
			if col[i].DeadLetter != col[j].DeadLetter {
				return !col[i].DeadLetter // the dead-letter sink at the bottom
			}
			return bary[col[i].Name] < bary[col[j].Name]
		})
		for i, n := range col {
			row[n.Name] = float64(i)
		}
	}
	tallest := 0
	for _, col := range cols {
		tallest = max(tallest, len(col))
	}
	height := func(k int) int { return k*NodeHeight + max(k-1, 0)*rowGap }
	out.Width = 2*margin + len(cols)*NodeWidth + max(len(cols)-1, 0)*colGap
	out.Height = 2*margin + height(tallest)
	for r, col := range cols {
		top := margin + (height(tallest)-height(len(col)))/2
		for i, n := range col {
			out.Nodes = append(out.Nodes, NodeJSON{
				Name: n.Name, Role: string(n.Role), Runs: graph.RunsLabel(n), DeadLetter: n.DeadLetter,
				Rank: r, Row: i,
				X: margin + r*(NodeWidth+colGap), Y: top + i*(NodeHeight+rowGap),
				W: NodeWidth, H: NodeHeight,
			})
		}
	}
	for _, n := range nodes {
		for _, e := range n.Outputs {
			out.Edges = append(out.Edges, EdgeJSON{From: e.From, To: e.To, Types: slices.Clone(e.Types)})
		}
	}
	if dl := g.DeadLetter(); dl != nil {
		for _, n := range nodes {
			if g.FeedsDeadLetter(n) {
				out.Edges = append(out.Edges, EdgeJSON{From: n.Name, To: dl.Name, DeadLetter: true})
			}
		}
	}
	return out
}
