// Package controlplane is flowctl's registry of running external components
// and the gRPC services on top of it.
//
// A component started by flowctl registers the endpoint it serves on, sends
// heartbeats within its TTL and deregisters when it stops; flowctl waits for
// the registration (WaitRegistered), looks the endpoint up and opens the
// component's streams. A component whose last heartbeat is older than its TTL
// is reported UNHEALTHY even while its process lives.
//
// Registry is the in-memory store (concurrency-safe, with an injectable
// Clock). Server serves two gRPC services over one Registry on one listener:
// the native flowctl.stream.v1.ControlPlaneService and the earlier
// flowctl.v1.ControlPlaneService, so components of either kind can register.
// `flowctl run` embeds a Server on 127.0.0.1:0 behind a Guard (a per-run
// token for native components, the ids it is starting for flowctl.v1
// ones); `flowctl server` puts a durable store behind the same services.
//
// It imports internal/flow (domain types), internal/tlsutil (the token
// check) and pkg/wire (generated protocol); it must not import the engine,
// the components or the CLI.
package controlplane
