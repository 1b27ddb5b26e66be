// Package components holds flowctl's built-in sources, processors and
// sinks: one file per component, named by role (source_file.go,
// processor_filter.go, sink_http.go), each a config spec plus a
// constructor. It imports package flow (and helpers such as expr), never
// spec, graph or engine.
package components
