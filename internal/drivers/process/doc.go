// Package process is the local-process driver: it starts a component's
// command as a child process and hands out a Handle to wait for it, stop it
// (SIGTERM, a grace period, then SIGKILL) and inspect it.
//
// Children die with their flowctl: each runs in its own process group,
// and a restarted flowctl starts them again instead of re-attaching. On
// Linux the kernel SIGKILLs a child whose flowctl died (parent-death
// signal). macOS and the BSDs have none: there a small watcher (/bin/sh
// reading a pipe only flowctl holds, watch_unix.go) kills the child's group
// when the pipe reads EOF, i.e. when flowctl died, even by SIGKILL. Windows
// has neither yet: a child there outlives a killed flowctl (not
// supported; stdio components still end at stdin EOF). Their output is captured line by line,
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
