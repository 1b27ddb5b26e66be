package process

import (
	"context"
	"errors"
	"fmt"

	"github.com/flowctl/flowctl/internal/drivers"
)

// DriverName is the name the process driver registers under.
const DriverName = "process"

func init() { drivers.Register(Driver{}) }

// Driver is the process driver as a drivers.Driver: each task is a local
// child process started by Start. It holds no state.
type Driver struct{}

// Name returns "process".
func (Driver) Name() string { return DriverName }

// Start starts cfg as a local process. A config naming an image is an
// error: containers are another driver's. ctx only bounds the start (a
// done ctx refuses it); the process outlives it.
func (Driver) Start(ctx context.Context, cfg drivers.TaskConfig) (drivers.Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	if cfg.Image != "" || len(cfg.ImageArgs) > 0 || len(cfg.Mounts) > 0 {
		return nil, fmt.Errorf("start %s: the process driver cannot run image %q, image arguments or mounts (use the docker driver)", cfg.Name, cfg.Image)
	}
	if len(cfg.Argv) == 0 {
		return nil, errors.New("start process: empty command")
	}
	h, err := Start(Config{
		Name: cfg.Name, Argv: cfg.Argv, Env: cfg.Env, Dir: cfg.Dir, Stdio: cfg.Stdio,
		Output: cfg.Output, TailLines: cfg.TailLines, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return task{h}, nil
}

// task adapts a *Handle to drivers.Handle; everything but Inspect is the
// Handle's own method. It also offers Signal (SIGHUP for a reload).
type task struct{ *Handle }

// Inspect reports the status in the drivers' terms.
func (t task) Inspect() drivers.Status {
	st := t.Handle.Inspect()
	return drivers.Status{
		ID: fmt.Sprint(st.PID), PID: st.PID, StartedAt: st.StartedAt,
		Exited: st.Exited, ExitedAt: st.ExitedAt, ExitCode: st.ExitCode,
		Signal: int(st.Signal), Stopped: st.Stopped, Tail: st.Tail,
	}
}

var (
	_ drivers.Driver = Driver{}
	_ drivers.Handle = task{}
)
