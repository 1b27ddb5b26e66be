// Package sandbox runs a local development environment: the services a
// sandbox file declares (a PostgreSQL server started from the machine's
// own binaries, local processes), started health-gated in dependency
// order, and the pipeline that uses them, each detached from the flowctl
// that started it, with its pid, address and variables kept in a state
// file inside the sandbox directory (.flowctl/sandbox/NAME/ next to the
// sandbox file) so that later `flowctl sandbox` commands find them.
//
// It imports spec for its diagnostics only; it never imports the engine,
// the components or the CLI. The pipeline runs in a `flowctl run` child.
package sandbox
