package flow

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrUnknownComponent is returned by Registry.Lookup for a name with no
// built-in behind it.
var ErrUnknownComponent = errors.New("unknown component")

// NotBuiltError is a component's Validate or Build error when the
// component is described in this binary but its code is not linked in
// (an optional part left out by a build tag). Reason says how to get a
// binary that has it; validation shows it without pointing at the
// component's fields, which are not what is wrong.
type NotBuiltError struct{ Reason string }

func (e *NotBuiltError) Error() string { return e.Reason }

// BatchError reports which events of a batch a sink failed to write.
type BatchError struct {
	// Failed maps an index in the batch to the error for that event.
	Failed map[int]error
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("%d events of the batch failed", len(e.Failed))
}

// FieldError is a config error at a path inside a component's config, such
// as "expr" or "cases[1].when". The spec package turns the path into a
// file:line:col.
type FieldError struct {
	Path    string
	Message string
	Hint    string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Hint != "" {
		b.WriteString(" — ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// RetryAfterError is a failure whose cause said when to try again (an HTTP
// 429 or 503 with a Retry-After header). The engine waits After before its
// next on_error attempt instead of its own backoff.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the wait the failure err asked for, if it carries one
// (see RetryAfterError).
func RetryAfter(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return max(ra.After, 0), true
	}
	return 0, false
}
