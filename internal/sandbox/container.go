package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/drivers/docker"
)

// An image service runs in a container through the docker driver, on the
// host's network (so its PORT is on 127.0.0.1 as a local process's is).
// The driver ties a container to the flowctl process that started it: it
// labels it with that pid, captures its output through that process, and
// reaps it once the process is gone. So that the container outlives `up`,
// `up` starts a detached `flowctl sandbox container SPEC` that owns it:
// the helper starts the container, writes its output to the service's
// log, and stops it (docker stop, ContainerGrace) when it is told to stop
// (SIGTERM from `down`).

// ContainerGrace is how long a container may take to stop before it is
// killed; less than StopGrace, so that the helper is never killed first.
const ContainerGrace = 5 * time.Second

// ContainerSpec is what the helper starts: written by `up` in the
// sandbox's data directory.
type ContainerSpec struct {
	Sandbox string   `json:"sandbox"`
	Service string   `json:"service"`
	Image   string   `json:"image"`
	Argv    []string `json:"argv,omitempty"`
	Env     []string `json:"env"`
}

// LabelSandbox names the sandbox on its containers.
const LabelSandbox = "flowctl.sandbox"

// RunContainer is the helper: it starts the container specPath describes,
// copies its output to out, and stops it when ctx ends. It returns the
// container's exit code.
func RunContainer(ctx context.Context, specPath string, out io.Writer) (int, error) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return 1, err
	}
	var spec ContainerSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return 1, fmt.Errorf("%s: %w", specPath, err)
	}
	h, err := docker.New().Start(ctx, drivers.TaskConfig{
		Name:   spec.Service,
		Image:  spec.Image,
		Argv:   spec.Argv,
		Env:    spec.Env,
		Output: out,
		Labels: map[string]string{LabelSandbox: spec.Sandbox, docker.LabelComponent: spec.Service},
	})
	if err != nil {
		return 1, err
	}
	select {
	case <-h.Done():
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), ContainerGrace+5*time.Second)
		err := h.Stop(sctx, ContainerGrace)
		cancel()
		if err != nil {
			return 1, fmt.Errorf("stop the container of %s: %w", spec.Service, err)
		}
	}
	st := h.Inspect()
	fmt.Fprintf(out, "container of %s ended: %s\n", spec.Service, st.ExitString())
	if st.Stopped {
		return 0, nil
	}
	if st.ExitCode < 0 {
		return 1, nil
	}
	return st.ExitCode, nil
}
