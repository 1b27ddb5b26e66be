// Package external runs user components outside the flowctl process and
// adapts them to the flow interfaces (Source, Processor, Sink), so the
// engine drives them like built-ins.
//
// Three layers:
//
//   - conns (conn.go): ProcessorConn, SinkConn and SourceConn carry batches
//     over one connection to one running incarnation of a component.
//   - protocols (Protocol): stdio and http here; gRPC and the earlier
//     flowctl.v1 services in grpc*.go and v1*.go. A protocol says what a
//     child needs (Launch) and connects to it once it runs (Ready).
//   - the supervisor (Supervisor) starts the process with the process
//     driver, connects the protocol, watches both, restarts under the
//     component's restart_policy, and redelivers the batches in flight
//     when an incarnation dies. The adapters (Processor, Sink, Source)
//     are what the engine sees.
//
// It imports flow, spec, controlplane and the process driver; it must not
// import the engine, the CLI or the built-in components.
package external
