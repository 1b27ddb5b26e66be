package external

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// fakeDriver starts in-process stdio processors instead of processes or
// containers, so the supervisor's logic is tested without either. The
// first incarnation crashes (exit status 2) after crashAfter inputs.
type fakeDriver struct {
	name       string
	crashAfter int

	mu    sync.Mutex
	tasks []drivers.TaskConfig
}

func (d *fakeDriver) Name() string { return d.name }

func (d *fakeDriver) Start(_ context.Context, cfg drivers.TaskConfig) (drivers.Handle, error) {
	d.mu.Lock()
	d.tasks = append(d.tasks, cfg)
	first := len(d.tasks) == 1
	d.mu.Unlock()
	h := &fakeHandle{done: make(chan struct{})}
	h.status.ID, h.status.StartedAt = fmt.Sprintf("fake-%d", len(d.tasks)), time.Now()
	var inW *io.PipeWriter
	var outR *io.PipeReader
	h.inR, inW = io.Pipe()
	outR, h.outW = io.Pipe()
	h.stdin, h.stdout = inW, outR
	crashAfter := 0
	if first {
		crashAfter = d.crashAfter
	}
	go h.serve(crashAfter)
	return h, nil
}

// fakeHandle is one fake incarnation: a goroutine that answers the stdio
// protocol, upper-casing data.kind.
type fakeHandle struct {
	inR    *io.PipeReader
	stdin  io.WriteCloser
	stdout io.ReadCloser
	outW   *io.PipeWriter
	done   chan struct{}

	mu      sync.Mutex
	status  drivers.Status
	stopped bool
	once    sync.Once
}

func (h *fakeHandle) serve(crashAfter int) {
	sc := bufio.NewScanner(h.inR)
	n := 0
	for sc.Scan() {
		n++
		if crashAfter > 0 && n > crashAfter {
			h.finish(2, 0)
			return
		}
		var in struct {
			Seq   int64
			Event struct{ Data map[string]any }
		}
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			h.finish(3, 0)
			return
		}
		if k, ok := in.Event.Data["kind"].(string); ok {
			in.Event.Data["kind"] = strings.ToUpper(k)
		}
		b, _ := json.Marshal(map[string]any{"seq": in.Seq, "data": in.Event.Data, "done": true})
		if _, err := h.outW.Write(append(b, '\n')); err != nil {
			h.finish(1, 0)
			return
		}
	}
	h.finish(0, 0) // end of input
}

func (h *fakeHandle) finish(code, sig int) {
	h.once.Do(func() {
		h.inR.Close()
		h.outW.Close()
		h.mu.Lock()
		h.status.Exited, h.status.ExitedAt, h.status.Stopped = true, time.Now(), h.stopped
		h.status.ExitCode, h.status.Signal = code, sig
		if sig != 0 {
			h.status.ExitCode = -1
		}
		h.mu.Unlock()
		close(h.done)
	})
}

func (h *fakeHandle) Done() <-chan struct{} { return h.done }
func (h *fakeHandle) Stdin() io.WriteCloser { return h.stdin }
func (h *fakeHandle) Stdout() io.ReadCloser { return h.stdout }

func (h *fakeHandle) Inspect() drivers.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status
}

func (h *fakeHandle) Stop(ctx context.Context, grace time.Duration) error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.stdin.Close() // end of input: serve returns and finishes with 0
	select {
	case <-h.done:
		return nil
	case <-time.After(grace):
	case <-ctx.Done():
	}
	return h.Kill()
}

func (h *fakeHandle) Kill() error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.finish(0, 9)
	return nil
}

// TestSupervisorPicksDriver: an image: component goes to the "docker"
// driver with a container task, a command: component to "process"; a
// crash of the first incarnation is restarted and no answer is lost.
func TestSupervisorPicksDriver(t *testing.T) {
	for _, tc := range []struct {
		driver string
		c      spec.Component
	}{
		{"docker", spec.Component{Runner: spec.RunContainer, Image: "acme/up:1", Args: []string{"--fast"}}},
		{"process", spec.Component{Runner: spec.RunProcess, Command: []string{"/bin/up"}}},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			fake := &fakeDriver{name: tc.driver, crashAfter: 150}
			rt, _ := runtimeFor(t)
			rt.Drivers = func(name string) (drivers.Driver, error) {
				if name != tc.driver {
					return nil, fmt.Errorf("asked for driver %q, want %q", name, tc.driver)
				}
				return fake, nil
			}
			c := tc.c
			c.Name, c.Role, c.Protocol = "up", flow.RoleProcessor, "stdio"
			c.Env = map[string]string{"LEVEL": "debug"}
			c.Config = flow.Config{}
			c.StartupTimeout, c.StopGrace, c.RestartPolicy = 5*time.Second, time.Second, RestartOnFailure
			p := openProcessor(t, rt, &c)
			in := events(400, func(i int) string { return fmt.Sprintf(`{"n":%d,"kind":"fee"}`, i) })
			for b := 0; b < len(in); b += 100 {
				outs, fails, err := p.ProcessBatch(context.Background(), in[b:b+100])
				if err != nil || len(fails) > 0 {
					t.Fatal(err, fails)
				}
				for i, o := range outs {
					if len(o) != 1 || o[0].ID != in[b+i].ID || !strings.Contains(string(o[0].Data), `"FEE"`) {
						t.Fatalf("input %s: outputs %v", in[b+i].ID, o)
					}
				}
			}
			if st := p.Supervisor().Stats(); st.Restarts != 1 || st.RedeliveredEvents < 1 {
				t.Errorf("stats %+v; want one restart with redelivery", st)
			}
			fake.mu.Lock()
			task := fake.tasks[0]
			n := len(fake.tasks)
			fake.mu.Unlock()
			if n != 2 {
				t.Errorf("%d starts; want 2", n)
			}
			if !task.Stdio || task.Name != "up" || !slices.Contains(task.Env, "LEVEL=debug") || !slices.Contains(task.Env, "FLOWCTL_COMPONENT_ID=up") {
				t.Errorf("task %+v", task)
			}
			switch tc.driver {
			case "docker":
				if task.Image != "acme/up:1" || len(task.Argv) != 0 || !slices.Equal(task.ImageArgs, []string{"--fast"}) ||
					task.Labels["flowctl.component"] != "up" || task.Labels["flowctl.pipeline"] != "test" {
					t.Errorf("container task %+v", task)
				}
				if slices.ContainsFunc(task.Env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
					t.Errorf("flowctl's own PATH leaked into the container's env")
				}
			case "process":
				if task.Image != "" || !slices.Equal(task.Argv, []string{"/bin/up"}) {
					t.Errorf("process task %+v", task)
				}
			}
		})
	}
}
