// Package graph turns a validated pipeline (spec.Pipeline) into the
// directed acyclic graph the engine runs: one Node per component, one Edge
// per declared input (with its event-type selection), nodes in a stable
// topological order, and the pipeline's dead-letter sink as a node of its
// own that no edge feeds — the engine hands it failed events directly.
//
// It also renders the graph as Mermaid and Graphviz DOT text for
// `flowctl graph`, so a user can see the wiring they declared.
//
// The spec package already reports a bad file with file:line:col; Build
// checks the same structural rules again (unknown input, cycle, duplicate
// name) so a Pipeline built by hand can never produce a broken graph.
//
// graph imports spec and flow only; it must not import the engine, the
// components or anything that runs them.
package graph
