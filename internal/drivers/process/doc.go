// Package process is the local-process driver: it starts a component's
// command as a child process and hands out a Handle to wait for it, stop it
// (SIGTERM, a grace period, then SIGKILL) and inspect it.
//
// Children die with their flowctl: each runs in its own process group with
// a parent-death signal (SIGKILL), and a restarted flowctl starts them
// again instead of re-attaching. Their output is captured line by line,
// each line prefixed with the component's name.
//
// Driver is this package as a drivers.Driver (registered as "process");
// Start and Handle stay for callers that want the process-specific calls
// (PID, Signal). Its test runs the drivers' conformance suite
// (internal/drivers/driverstest).
//
// It imports only the standard library and internal/drivers; it knows
// nothing of pipelines or protocols.
package process
