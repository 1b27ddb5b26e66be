// Package wiretls is how a client dials flowctl's gRPC services: a TLS
// 1.2+ configuration from PEM files (mutual TLS with a client
// certificate), the bearer token sent with every call, and the rule that
// plaintext (and a token over it) is for loopback addresses only.
//
// It is public because the SDK (pkg/sdk) dials flowctl with it and pkg/
// must not import internal/; flowctl's own clients reach it through
// internal/tlsutil, which also holds the server side. It imports only the
// standard library and gRPC.
package wiretls
