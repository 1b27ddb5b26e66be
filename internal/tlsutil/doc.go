// Package tlsutil makes and loads the certificates that secure flowctl's
// control plane, and turns them into *tls.Config values and gRPC options.
//
// It covers three things:
//
//   - Init writes a local CA plus a server and a client certificate
//     (`flowctl certs init`).
//   - ServerConfig / ClientConfig load PEM files into TLS 1.2+ configurations;
//     a server given a client CA demands and verifies client certificates
//     (mutual TLS). ServerCredentials / DialOption wrap them for gRPC and fall
//     back to plaintext for a nil config; CheckPlaintext refuses plaintext on a
//     non-loopback address unless the user said --insecure, and CheckListen
//     adds the server's rule: TCP needs a token or client certificates.
//   - An optional bearer token: TokenServerOptions installs interceptors that
//     compare `authorization: Bearer <token>` in constant time, and
//     TokenCredentials attaches it to every client call.
//
// It imports only the standard library and gRPC; nothing in flowctl's domain.
package tlsutil
