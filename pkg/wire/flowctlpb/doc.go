// Package flowctlpb is the generated Go for the protobuf package flowctl
// (proto/flowctl/flowctl.proto): the earlier flowctl's older control-plane
// service ControlPlane, which flowctl serves next to flowctl.v1's, and the
// data services of that ecosystem. A component that moves its own data
// (`protocol: none`) imports it to register and heartbeat.
// Do not edit the .pb.go files; run scripts/genproto.sh.
package flowctlpb
