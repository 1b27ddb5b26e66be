// Package flowctlv1 is the generated Go for the protobuf package flowctl.v1
// (proto/flowctl/v1/flowctl.proto): the earlier flowctl's wire contract,
// which flowctl serves and drives so that components written for it keep
// working. Delivery through it is at-most-once (it has no acknowledgements).
// Do not edit the .pb.go files; run scripts/genproto.sh.
package flowctlv1
