// Package dlq reads a pipeline's dead-letter file and builds the one-off
// pipeline that `flowctl dlq replay` runs to re-inject the original events
// at the components that failed them.
//
// It imports flow, spec and components (for the hidden dead-letter
// source's type); it never imports the engine or the CLI: the CLI runs
// what it builds.
package dlq
