package conformance

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/drivers/process"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/spec"
)

// instance is one started incarnation of the component under test.
type instance struct {
	h     *process.Handle
	inst  *external.Instance
	conns external.Conns
	// ready is how long start-up took (process start to Ready).
	ready time.Duration
	// stdin counts what the conn wrote to a stdio child's stdin; gate
	// holds back reading its stdout (both nil for other protocols).
	stdin *countingWriter
	gate  *gatedReader
	// violations counts protocol violations the conns tolerated.
	violations *violations
}

// violations collects what the conns report through Instance.Violation.
type violations struct {
	mu   sync.Mutex
	errs []error
}

func (v *violations) add(err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err)
	v.mu.Unlock()
}

func (v *violations) list() []error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]error(nil), v.errs...)
}

// start launches the component and waits until its protocol connected. On
// error the process (if any) is killed.
func (r *runner) start(ctx context.Context) (*instance, error) {
	launch, err := r.proto.Launch(r.rt, r.comp)
	if err != nil {
		return nil, fmt.Errorf("prepare the launch: %w", err)
	}
	env := r.env(launch)
	if r.rt.ControlPlane != nil {
		// A flowctl.v1 component may register only while it is awaited.
		release := r.rt.ControlPlane.Expect(r.comp.Name)
		defer release()
	}
	started := time.Now()
	h, err := process.Start(process.Config{
		Name:   r.comp.Name,
		Argv:   r.opts.Command,
		Env:    envList(env),
		Dir:    r.opts.Dir,
		Stdio:  launch.Stdio,
		Output: r.rt.Output,
		Logger: r.log,
	})
	if err != nil {
		return nil, err
	}
	in := &instance{h: h, violations: &violations{}}
	in.inst = &external.Instance{
		Component: r.comp,
		ID:        r.comp.Name,
		Started:   started,
		Env:       env,
		Exited:    h.Done(),
		Logger:    newCaptureLogger(r.log, in.violations),
	}
	if launch.Stdio {
		in.stdin = &countingWriter{w: h.Stdin()}
		in.gate = newGatedReader(h.Stdout())
		in.inst.Stdin, in.inst.Stdout = in.stdin, in.gate
	}
	rctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	conns, err := r.proto.Ready(rctx, r.rt, in.inst)
	if err != nil {
		st := in.kill()
		if st.Exited && !st.Stopped {
			return nil, fmt.Errorf("not ready: %w (the process ended: %s%s)", err, st.ExitString(), tail(st))
		}
		return nil, fmt.Errorf("not ready within %v: %w%s", r.opts.Timeout, err, tail(st))
	}
	in.conns, in.ready = conns, time.Since(started)
	return in, nil
}

// kill ends the process at once and returns how it ended.
func (in *instance) kill() process.Status {
	if in.conns != (external.Conns{}) {
		_ = in.conns.Close()
	}
	if in.gate != nil {
		in.gate.open()
	}
	_ = in.h.Kill()
	return in.h.Inspect()
}

// waitExit waits until the process exited or d passed, and reports whether
// it exited.
func (in *instance) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-in.h.Done():
		return true
	case <-t.C:
		return false
	}
}

func (in *instance) signal(sig syscall.Signal) error { return in.h.Signal(sig) }

// tail formats the last stderr lines of a process for an error detail.
func tail(st process.Status) string {
	if len(st.Tail) == 0 {
		return ""
	}
	last := st.Tail[len(st.Tail)-1]
	return "; last stderr line: " + strconv.Quote(last)
}

// env is the child's environment: ours, the compatibility page's, the
// protocol's, then the user's --env.
func (r *runner) env(l external.Launch) map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				env[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	if r.rt.Endpoint != "" {
		env["ENABLE_FLOWCTL"] = "true"
		env["FLOWCTL_ENDPOINT"] = r.rt.Endpoint
		env["FLOWCTL_HEARTBEAT_INTERVAL"] = r.rt.HeartbeatInterval.String()
		// The control plane admits only the component under test.
		env[external.EnvToken] = r.rt.ControlPlane.Token()
	}
	env["FLOWCTL_COMPONENT_ID"] = r.comp.Name
	env["FLOWCTL_SERVICE_ID"] = r.comp.Name
	for k, v := range l.Env {
		env[k] = v
	}
	for k, v := range r.opts.Env {
		env[k] = v
	}
	return env
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// component is the definition the protocols see.
func (r *runner) component() *spec.Component {
	return &spec.Component{
		Name:           "under-test",
		Role:           r.opts.Role,
		Runner:         spec.RunProcess,
		Command:        r.opts.Command,
		Protocol:       r.opts.Protocol,
		StartupTimeout: r.opts.Timeout,
		StopGrace:      r.opts.Grace,
		RestartPolicy:  "no",
		Parallelism:    1,
		Buffer:         1024,
		Config:         map[string]any{"answer_timeout": (3 * r.opts.Timeout).String()},
		Env:            r.opts.Env,
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w  io.WriteCloser
	mu sync.Mutex
	n  int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingWriter) Close() error { return c.w.Close() }

func (c *countingWriter) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// gatedReader passes reads through while open; while closed, Read blocks,
// so the child's stdout pipe fills up as if flowctl stopped reading.
type gatedReader struct {
	r    io.ReadCloser
	mu   sync.Mutex
	gate chan struct{} // closed while open
}

func newGatedReader(r io.ReadCloser) *gatedReader {
	g := &gatedReader{r: r, gate: make(chan struct{})}
	close(g.gate)
	return g
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	<-gate
	return g.r.Read(p)
}

func (g *gatedReader) Close() error {
	g.open()
	return g.r.Close()
}

// hold stops reads that start from now on.
func (g *gatedReader) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.gate:
		g.gate = make(chan struct{})
	default:
	}
}

// open lets reads through again.
func (g *gatedReader) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.gate:
	default:
		close(g.gate)
	}
}
