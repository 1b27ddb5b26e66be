// Package backoff is the one capped exponential backoff of flowctl, with
// jitter: the engine's on_error retries, the supervisor's restarts of
// external components, the server's restarts of crashing pipelines and its
// work queue, and the registration retries of the reporter and the Go SDK
// all wait through it. It computes waits; each caller sleeps them its own
// way (on a context, on the engine's hard stop).
//
// It is public because the SDK (pkg/sdk) uses it and pkg/ must not import
// internal/. It imports only the standard library, so any package may use
// it.
package backoff
