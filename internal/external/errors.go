package external

import (
	"errors"

	"github.com/flowctl/flowctl/internal/flow"
)

// Sentinel errors of external components.
var (
	// ErrClosed is returned by a conn's calls after Close, and for batches
	// still in flight when it closed.
	ErrClosed = errors.New("connection closed")
	// ErrPermanent marks a per-event failure the component says retrying
	// will not fix. Protocols wrap it into Result.Failures entries; it is
	// flow.ErrPermanent, so the engine skips on_error's retries for it.
	ErrPermanent = flow.ErrPermanent
	// ErrHung means a batch was not answered within the answer timeout: the
	// component is treated as hung and restarted.
	ErrHung = errors.New("component did not answer in time")
	// ErrUnknownProtocol is returned by LookupProtocol for a name no
	// protocol is registered under.
	ErrUnknownProtocol = errors.New("unknown protocol")
	// ErrNotSent wraps a conn error for a batch that never reached the
	// component (the conn was already broken): sending it again is not a
	// redelivery.
	ErrNotSent = errors.New("batch not sent")
	// ErrCrashLoop means a component crashed too often in too short a time
	// and the run gives up on it.
	ErrCrashLoop = errors.New("component keeps crashing")
)
