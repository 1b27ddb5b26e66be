// Package pipetest runs pipeline tests: YAML files next to a pipeline
// (NAME_test.yaml) that give input events for its sources and the events
// each sink, and the dead-letter sink, must be handed. `flowctl test`
// (internal/cli/test.go) finds the files, runs them with Run and prints
// the results with the reporters here (go test style text, JUnit XML).
//
// A case runs the real pipeline in the engine with the real processors,
// external ones included (started as `flowctl run` starts them), except
// that the sources the case names are replaced by an in-memory source
// emitting its events; the file, http and sqlite sinks run for real,
// redirected to a temporary directory or a capture server on loopback
// (realsink.go), and the other sinks are in-memory captures. See
// docs/testing.md.
//
// It imports spec, graph, engine, components, external, expr and flow;
// nothing but the CLI imports it.
package pipetest
