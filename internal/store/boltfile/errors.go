package boltfile

import (
	"errors"
	"fmt"
)

// Sentinel errors; an *Error unwraps to one of them. Test with errors.Is.
var (
	// ErrCorrupt means the file exists but is not a readable bbolt file:
	// zero-length, not bbolt at all, truncated, or failing bbolt's
	// consistency check. flowctl never overwrites such a file.
	ErrCorrupt = errors.New("corrupt")
	// ErrForeign means the file is a sound bbolt file that flowctl did not
	// write: it has buckets, but not the marker bucket every file of ours
	// has.
	ErrForeign = errors.New("not a flowctl file")
	// ErrLocked means another process holds the file open (bbolt's lock)
	// and did not let go within Options.Timeout.
	ErrLocked = errors.New("in use by another process")
)

// Error is why Open refused a file.
type Error struct {
	// Kind names what the file is for, as Options.Kind ("server store").
	Kind string
	// Path is the file.
	Path string
	// Reason says what is wrong with it, in words for a user.
	Reason string
	// Err is ErrCorrupt, ErrForeign or ErrLocked.
	Err error
	// Cause is the underlying error (bbolt's, a recovered panic), if any.
	Cause error
}

// Error names the file, what is wrong and what to do.
func (e *Error) Error() string {
	advice := "move it aside or restore it from a backup; flowctl will not overwrite it"
	if errors.Is(e.Err, ErrLocked) {
		advice = "stop the process that has it open, or use another file"
	}
	return fmt.Sprintf("%s %s: %s — %s", e.Kind, e.Path, e.Reason, advice)
}

// Unwrap returns the sentinel and the cause.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}
