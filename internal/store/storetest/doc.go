// Package storetest is the conformance suite every store.Store backend
// passes: a backend's tests call Run with a function that opens a fresh,
// empty store, and every case runs against it — revisions bumped only by a
// new hash, optimistic-concurrency conflicts, deletes and tombstones,
// status updates, registrations, run history, parallel writers, a closed
// store and a canceled context.
//
// It imports the store domain and the testing package only; no backend.
package storetest
