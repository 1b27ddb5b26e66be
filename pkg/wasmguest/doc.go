// Package wasmguest is the guest side of flowctl's Wasm processor ABI
// (docs/wasm.md): a Go program built with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared registers one function with Handle in an init
// function, and the package exports the ABI's flowctl_alloc and
// flowctl_process to the host.
//
// It imports only the standard library (encoding/json, slices, unsafe), so a
// module stays small; it must never import flowctl's internal packages.
// On other platforms the exports are not built, and Batch lets a test run
// the handler over the same wire format without Wasm.
package wasmguest
