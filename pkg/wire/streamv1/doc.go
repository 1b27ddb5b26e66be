// Package streamv1 is the generated Go for the protobuf package
// flowctl.stream.v1 (proto/flowctl/stream/v1): flowctl's native protocol
// between flowctl and an external component — batches with sequence numbers,
// acknowledgements and credits (stream.proto) — and the native control-plane
// registry (controlplane.proto). Most Go components use pkg/sdk instead of
// this package. Do not edit the .pb.go files; run scripts/genproto.sh.
package streamv1
