// Package backoff is the one capped exponential backoff of flowctl, with
// jitter: the engine's on_error retries, the supervisor's restarts of
// external components, the server's restarts of crashing pipelines and its
// work queue, and the reporter's registration all wait through it.
//
// It imports only the standard library, so any package may use it.
package backoff
