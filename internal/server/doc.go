// Package server is `flowctl server`: the long-running control plane of
// one machine. It serves the flowctl.control.v1 API (pipelines, runs, logs,
// status) and the component registry (flowctl.stream.v1 and flowctl.v1
// control-plane services) on one gRPC listener, keeps applied pipelines,
// registrations and run history in a store.Store, and supervises one
// `flowctl run` child per applied pipeline with a level-triggered
// reconciler. The reconciler starts children through a drivers.Driver
// (Options.Driver, the process driver by default), so its logic is tested
// with an in-memory fake driver as well as with real processes:
//
//	Apply/Delete ──► store (desired) ──► work queue (pipeline name)
//	                                       │
//	child exits, retry timers, resync ─────┤
//	                                       ▼
//	                 reconcile: desired vs observed child ──► start / stop /
//	                 restart child, record runs, write status
//
// Heartbeats and health live in memory (the registry); pipelines,
// registrations and runs are durable. Child output goes to the log store: a
// ring per pipeline in memory plus an append-only file under the data
// directory.
//
// It imports spec, components, controlplane, store, report, drivers (and
// the process driver as the default) and the generated wire code; never
// the engine. Nothing imports it but the CLI.
package server
