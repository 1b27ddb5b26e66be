package store

import "errors"

// Sentinel errors shared by every Store implementation. Implementations wrap
// them with context; test with errors.Is.
var (
	// ErrNotFound means the pipeline, registration or run does not exist
	// (a deleted pipeline does not exist).
	ErrNotFound = errors.New("not found")
	// ErrConflict means an optimistic-concurrency check failed: the
	// expected revision is not the stored one. Read again and retry.
	ErrConflict = errors.New("conflict: stored revision differs from the expected one")
	// ErrNewerSchema means the data was written by a newer flowctl whose
	// schema this binary cannot read. The only fix is to upgrade flowctl.
	ErrNewerSchema = errors.New("written by a newer flowctl")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store closed")
)
