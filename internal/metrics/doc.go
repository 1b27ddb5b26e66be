// Package metrics exposes a running engine's statistics in the Prometheus
// text format and serves the health endpoints of `flowctl run --http`.
//
// It reads engine.Stats snapshots at scrape time (a custom collector), so
// the engine's hot path never touches Prometheus types. It imports the
// engine; nothing in the pipeline imports it.
package metrics
