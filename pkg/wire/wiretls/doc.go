// Package wiretls is how a client dials flowctl's gRPC services: a TLS
// 1.2+ configuration from PEM files (mutual TLS with a client
// certificate), the bearer token sent with every call, and the rule that
// plaintext (and a token over it) is for loopback addresses only.
//
// It also holds the server side of the token: TokenServerOptions, which
// the control plane and a component served by the SDK install.
//
// It is public because the SDK (pkg/sdk) dials flowctl and checks the
// stream token with it, and pkg/ must not import internal/; flowctl's own
// code reaches it through internal/tlsutil. It imports only the standard
// library and gRPC.
package wiretls
