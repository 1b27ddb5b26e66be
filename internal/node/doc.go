// Package node runs one component of a pipeline as a long-running
// service (`flowctl node`), joined to the nodes of the other components by
// flowctl's native stream protocol (flowctl.stream.v1 SinkService.Write).
//
// A node is the normal engine running a derived pipeline:
//
//	upstream nodes ──Write──► inbound (a Source) ──► the component ──► sender (a Sink per downstream) ──Write──► downstream nodes
//
// A batch received is acknowledged upstream only when everything derived
// from it is done here and acknowledged downstream, so delivery is
// at-least-once across nodes, and credits carry backpressure end to end.
// A node whose work is finished sends End downstream (SinkRequest.end).
//
// It imports the engine, external, spec, state, metrics and tlsutil; the
// CLI imports it. It must not import the CLI or the server.
package node
