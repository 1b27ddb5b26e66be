// Package report is the side of `flowctl run` that reports to the
// `flowctl server` supervising it (flag --report-to): it registers every
// component of the pipeline in the server's registry
// (flowctl.stream.v1.ControlPlaneService) under the id "PIPELINE/COMPONENT",
// with a TTL, and heartbeats each one with its counters as heartbeat
// metrics. Health cannot be faked: a child that hangs stops heartbeating,
// and the registry marks its components UNHEALTHY once the TTL passes,
// although the process lives.
//
// It imports the spec, the control plane's health types and the generated
// wire code; it must not import the engine (the server imports this
// package, and engine stats are turned into Counters by the CLI), the
// server, the CLI or storage (internal/archtest checks it).
package report
