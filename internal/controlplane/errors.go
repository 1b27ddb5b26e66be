package controlplane

import "errors"

// Sentinel errors of the registry. The gRPC services map them to status
// codes (NOT_FOUND, INVALID_ARGUMENT, RESOURCE_EXHAUSTED).
var (
	// ErrNotFound means no component is registered under the id.
	ErrNotFound = errors.New("component not registered")
	// ErrInvalid means a registration lacks a required field.
	ErrInvalid = errors.New("invalid registration")
	// ErrWatchOverflow means a watcher did not keep up and was dropped; it
	// should List and Watch again.
	ErrWatchOverflow = errors.New("watcher fell behind and was dropped")
)
