// Package natstest runs a real NATS server with JetStream for tests:
// nats-server's own Go module, in the test process, listening on
// 127.0.0.1 at a random port with its JetStream store in a temporary
// directory.
//
// The server is linked only into tests: flowctl itself speaks to NATS
// through the nats.go client and never imports this package (a test in
// internal/archtest checks that nats-server is not in the flowctl binary).
// An end-to-end test that kills flowctl with SIGKILL keeps the server in
// the test process, so the server lives on while flowctl dies.
//
// It imports nats-server, nats.go and the standard library, nothing of
// flowctl, and only tests import it.
package natstest
