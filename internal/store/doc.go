// Package store holds the durable records of the control plane — applied
// pipelines with their status, component registrations and run history —
// and the Store interface every storage backend implements.
//
// Backends live in subpackages (bolt, memory) and import this package; this
// package imports no backend and nothing from the server, the CLI or gRPC.
// Every backend passes the one conformance suite in storetest.
package store
