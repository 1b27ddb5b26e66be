package engine

import "errors"

// Errors Run returns (wrapped).
var (
	// ErrGraceExpired: the run was cancelled and what was already emitted
	// did not drain within Options.Grace; the message says how many source
	// batches were left unacknowledged.
	ErrGraceExpired = errors.New("drain did not finish within the grace period")
	// ErrAborted: Abort stopped the run at once.
	ErrAborted = errors.New("run aborted")
	// ErrExternal: a component runs a command or an image.
	ErrExternal = errors.New("external components are not supported yet by flowctl run (coming with external components)")
)

// errStopped is what Emit returns once the run was stopped hard.
var errStopped = errors.New("pipeline stopped")
