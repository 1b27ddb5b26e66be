package process

import (
	"context"
	"errors"
	"strconv"

	"github.com/flowctl/flowctl/internal/drivers"
)

// Driver is the process driver as a drivers.Driver, registered as
// "process".
type Driver struct{}

func init() { drivers.Register(Driver{}) }

// Name returns "process".
func (Driver) Name() string { return "process" }

// Start starts cfg.Argv as a local process (see Start). Image, ImageArgs
// and Mounts are for containers: a task that sets them is refused.
func (Driver) Start(_ context.Context, cfg drivers.TaskConfig) (drivers.Handle, error) {
	if cfg.Image != "" || len(cfg.ImageArgs) > 0 || len(cfg.Mounts) > 0 {
		return nil, errors.New("start process: image, image arguments and mounts are for a container driver")
	}
	h, err := Start(Config{
		Name: cfg.Name, Argv: cfg.Argv, Env: cfg.Env, Dir: cfg.Dir, Stdio: cfg.Stdio,
		Output: cfg.Output, TailLines: cfg.TailLines, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return driverHandle{h}, nil
}

// driverHandle adapts *Handle to drivers.Handle.
type driverHandle struct{ *Handle }

func (h driverHandle) Inspect() drivers.Status {
	st := h.Handle.Inspect()
	return drivers.Status{
		ID: strconv.Itoa(st.PID), PID: st.PID, StartedAt: st.StartedAt,
		Exited: st.Exited, ExitedAt: st.ExitedAt, ExitCode: st.ExitCode,
		Signal: int(st.Signal), Stopped: st.Stopped, Tail: st.Tail,
	}
}

var (
	_ drivers.Driver = Driver{}
	_ drivers.Handle = driverHandle{}
)
