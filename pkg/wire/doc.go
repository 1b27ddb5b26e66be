// Package wire holds flowctl's wire protocols as generated Go, one
// sub-package per protobuf package:
//
//   - streamv1 (flowctl.stream.v1): the native protocol. Batches with
//     sequence numbers, acknowledgements and flow-control credits between
//     flowctl and an external component, plus the native control-plane
//     registry. At-least-once.
//   - flowctlv1 (flowctl.v1): the earlier flowctl's contract, kept
//     wire-compatible so that its components keep working. At-most-once.
//
// The .proto sources are in proto/ at the repository root; the documentation
// of every message and field lives there and in the generated types. The
// generated code is committed; scripts/genproto.sh regenerates it. This
// package has no code: it holds the test that keeps the generated code in
// step with the sources and the flowctl.v1 wire contract.
package wire
