// Package controlv1 is the generated Go for the protobuf package
// flowctl.control.v1 (proto/flowctl/control/v1/control.proto): the API of
// `flowctl server` — PipelineService (apply, get, list, delete), RunService
// (run history), LogService (pipeline logs) and StatusService. The CLI's
// apply, get, describe, logs, delete and status commands are its clients.
// Do not edit the .pb.go files; run scripts/genproto.sh.
package controlv1
