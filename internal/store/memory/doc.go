// Package memory is a store.Store kept in memory, for tests and for
// `flowctl run`, where nothing has to outlive the process. It has the same
// semantics as the bolt store and passes the same conformance suite
// (storetest).
//
// It imports the store domain only.
package memory
