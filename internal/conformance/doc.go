// Package conformance runs one external component alone and checks that it
// keeps the contract flowctl relies on: it starts and describes itself,
// answers every input exactly once, does not read unboundedly ahead of
// what it answered, drains and exits when told to stop, and starts again
// cleanly. `flowctl component test` prints its Report.
//
// The component is run the way a pipeline runs it: with the process driver
// (internal/drivers/process), the environment of the compatibility page,
// the embedded control plane for the gRPC protocols, and the very protocol
// clients of internal/external (Protocol.Launch / Protocol.Ready and the
// conns they return). Two probes go below those clients on purpose,
// because the clients by construction never break the rules a probe must
// break: the gRPC credit probe opens one raw stream and sends past the
// granted credit, and the stdio credit probe stops reading the component's
// stdout while the conn keeps writing.
//
// It imports internal/external, the process driver, the control plane and
// the generated protocol; it must not import the engine or the CLI.
package conformance
