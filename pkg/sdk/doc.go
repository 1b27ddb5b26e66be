// Package sdk is the Go SDK for writing flowctl components: a processor, a
// source or a sink that runs as its own process (or container) and joins a
// pipeline over flowctl's native gRPC protocol (pkg/wire/streamv1).
//
// Implement one interface and call Serve:
//
//	type upper struct{}
//
//	func (upper) Process(ctx context.Context, e *sdk.Event) ([]*sdk.Event, error) {
//		e.Data = bytes.ToUpper(e.Data)
//		return []*sdk.Event{e}, nil
//	}
//
//	func main() {
//		if err := sdk.Serve(context.Background(), upper{}); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// and name the binary in the pipeline file (`command: [./upper]`). Serve
// does the rest:
//
//  1. reads the environment flowctl sets (ENABLE_FLOWCTL, FLOWCTL_ENDPOINT,
//     FLOWCTL_COMPONENT_ID, FLOWCTL_HEARTBEAT_INTERVAL, PORT, ...; see the
//     Env* constants);
//  2. listens on PORT and serves the stream service of the component's role;
//  3. registers the bound address with flowctl's control plane and
//     heartbeats;
//  4. answers every batch exactly once, grants flow-control credit (an
//     initial credit, then one batch per answer) and refuses a peer that
//     sends beyond it;
//  5. on SIGTERM or SIGINT (or when ctx ends) drains: takes no new batches,
//     answers those it has, deregisters and returns nil;
//  6. returns ErrFlowctlGone when its flowctl dies (control plane
//     unreachable for DefaultLostAfter heartbeat intervals, or the parent process
//     changed), so that main exits instead of lingering as an orphan.
//
// Delivery is at-least-once: after a crash or a broken stream flowctl sends
// the unanswered batches again with the same sequence number. BatchInfo
// tells a component whether the batch it is handling is such a redelivery,
// so a sink can make its writes idempotent.
//
// A processor that reads or sets a few top-level fields of a JSON payload
// can edit the raw bytes instead of decoding them into a map and encoding
// them back (several times cheaper; see Event.Field and Event.SetField):
//
//	amount, _ := e.Field("amount").Float()
//	if err := e.SetField("amount_usd", amount/100); err != nil {
//		return nil, sdk.Permanent(err) // not a JSON object
//	}
//
// The processor stream decodes each batch into one buffer: an event's Data
// is its own part of it (the event may change it in place or replace it),
// and its string attributes point into it, so an event (or an attribute)
// kept after Process returns keeps its batch's buffer alive.
//
// FLOWCTL_SDK_CPUPROFILE=file makes Serve write a CPU profile of the
// component to file until it returns (go tool pprof).
//
// Without ENABLE_FLOWCTL=true (for example when run by hand) Serve skips the
// control plane and only serves on PORT (default 127.0.0.1:0), logging the
// address it bound.
//
// The connection to the control plane is plaintext by default (the
// embedded control plane of `flowctl run` listens on loopback). That
// control plane refuses calls without the run's random token, which
// `flowctl run` gives each component as FLOWCTL_TOKEN; Serve sends it with
// every control-plane call, so nothing needs to be done. For a
// `flowctl server` with TLS, set FLOWCTL_TLS_CA (and FLOWCTL_TLS_CERT,
// FLOWCTL_TLS_KEY for mutual TLS; FLOWCTL_TLS_SERVER_NAME when the
// certificate names another host) and FLOWCTL_TOKEN for a bearer token, or
// use WithControlPlaneTLS and WithControlPlaneToken. A refused handshake or
// token makes Serve return at once with an error that names the variable to
// check.
//
// This package imports the generated protocol and its helpers (pkg/wire:
// wiretls is shared with the CLI so that both load certificates alike,
// wirecodec with the external-component adapter), pkg/backoff and gRPC.
// It must not import internal/ (internal/archtest checks it).
package sdk
