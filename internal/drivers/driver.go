// Package drivers is the layer that starts what flowctl runs: a `command:`
// component as a local process, an `image:` component as a container, and
// the server's `flowctl run` children. Every driver offers the same task
// handle — start, a done channel, stop with grace then kill, inspect — so
// the external-component supervisor and the server's reconciler do not
// care which one runs a task. Nomad's plugins/drivers is the model.
//
// Drivers register themselves (Register) from their own packages; callers
// pick one by name (Lookup). The conformance suite in
// internal/drivers/driverstest is what every driver passes.
package drivers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// TaskConfig says what to start.
type TaskConfig struct {
	// Name names the task in logs and prefixes every captured output line
	// ("name | line").
	Name string
	// Argv is the command and its arguments. For a process, Argv[0] is
	// looked up in PATH unless it contains a slash; for a container it
	// replaces the image's command (empty: the image's own).
	Argv []string
	// Image is the container image (container drivers only).
	Image string
	// ImageArgs are arguments for the image's own entrypoint, used when
	// Argv is empty (an `image:` component with `args:` and no
	// `command:`); container drivers only.
	ImageArgs []string
	// Mounts are host paths and named volumes given to a container
	// (container drivers only).
	Mounts []Mount
	// Env is the task's complete environment as KEY=VALUE pairs (nil: an
	// empty environment).
	Env []string
	// Dir is the working directory ("" = the driver's default).
	Dir string
	// Stdio gives the caller the task's stdin and stdout (Handle.Stdin,
	// Handle.Stdout) instead of capturing stdout; stderr is still captured.
	Stdio bool
	// Output receives the captured lines; nil discards them.
	Output io.Writer
	// TailLines is how many of the last stderr lines Inspect keeps [20].
	TailLines int
	// Labels are attached to what the driver creates (container labels), so
	// that leftovers of a flowctl that died can be found and reaped.
	Labels map[string]string
	// Logger gets driver events (start, exit); nil discards them.
	Logger *slog.Logger
}

// Mount is one host path or named volume mounted into a container.
type Mount struct {
	// Source is an absolute host path, or a volume name when Volume is set.
	Source string
	// Target is the absolute path inside the container.
	Target   string
	Volume   bool
	ReadOnly bool
}

// Status is what Inspect reports.
//
//	starting ──► running ──► exited
type Status struct {
	// ID is the driver's id of the task: a pid, a container id.
	ID        string
	PID       int // 0 when the driver has no local pid
	StartedAt time.Time
	// Exited is true once the task ended; the fields below are then set.
	Exited   bool
	ExitedAt time.Time
	// ExitCode is the exit status, or -1 when a signal ended it.
	ExitCode int
	// Signal is the number of the signal that ended it, if one did.
	Signal int
	// Stopped is true when the exit followed Stop or Kill.
	Stopped bool
	// Tail holds the last stderr lines (oldest first).
	Tail []string
}

// ExitString describes how the task ended: "exit status 2" or "killed by
// signal 9"; "running" before it ended.
func (s Status) ExitString() string {
	switch {
	case !s.Exited:
		return "running"
	case s.Signal != 0:
		return fmt.Sprintf("killed by signal %d", s.Signal)
	default:
		return fmt.Sprintf("exit status %d", s.ExitCode)
	}
}

// Handle is one started task. Its methods are safe for concurrent use.
type Handle interface {
	// Done is closed once the task ended and its status is final.
	Done() <-chan struct{}
	// Inspect reports the task's status now.
	Inspect() Status
	// Stop asks the task to end (SIGTERM), waits up to grace, then kills
	// it; it returns once Done is closed or ctx ends.
	Stop(ctx context.Context, grace time.Duration) error
	// Kill ends the task at once (SIGKILL).
	Kill() error
	// Stdin and Stdout are the task's standard streams when
	// TaskConfig.Stdio was set, else nil.
	Stdin() io.WriteCloser
	Stdout() io.ReadCloser
}

// Driver starts tasks of one kind.
type Driver interface {
	// Name is the driver's name: "process", "docker".
	Name() string
	// Start starts a task and returns its handle once it runs.
	Start(ctx context.Context, cfg TaskConfig) (Handle, error)
}

// ErrUnknownDriver is returned by Lookup for a name no driver registered.
var ErrUnknownDriver = errors.New("unknown driver")

var registry struct {
	mu sync.RWMutex
	m  map[string]Driver
}

// Register makes d available under d.Name(). Driver packages call it from
// init; a duplicate name panics (a programming error).
func Register(d Driver) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.m == nil {
		registry.m = map[string]Driver{}
	}
	if _, dup := registry.m[d.Name()]; dup {
		panic(fmt.Sprintf("drivers: %q registered twice", d.Name()))
	}
	registry.m[d.Name()] = d
}

// Lookup returns the driver registered under name.
func Lookup(name string) (Driver, error) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	if d, ok := registry.m[name]; ok {
		return d, nil
	}
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("driver %q is not in this build (have %v): %w", name, names, ErrUnknownDriver)
}
