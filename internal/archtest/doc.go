// Package archtest holds no code, only a test: it reads the import graph
// with `go list -deps` and fails on an arrow that DESIGN.md forbids
// (pkg/ importing internal/, the spec importing what runs it, the server
// importing the engine, a driver knowing about pipelines...). The rules
// are in imports_test.go, each with the reason it exists.
package archtest
