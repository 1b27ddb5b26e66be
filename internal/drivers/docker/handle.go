package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/flowctl/flowctl/internal/drivers"
)

// Tuning of the handle.
const (
	// drainWait is how long the exit waits for the last output lines.
	drainWait = 2 * time.Second
	// lostDaemon is how long the daemon may fail to answer about a
	// running container before the handle gives it up as ended.
	lostDaemon = time.Minute
	// signalTimeout bounds one kill request.
	signalTimeout = 10 * time.Second
)

// handle is one started container. One goroutine (own) waits for the
// container, records how it ended and removes it; everything else goes
// through mu.
type handle struct {
	cli  *client.Client
	id   string
	cfg  drivers.TaskConfig
	att  client.HijackedResponse
	done chan struct{}

	stdin  io.WriteCloser // Stdio only
	stdout io.ReadCloser  // Stdio only

	outR, errR *io.PipeReader
	outW, errW *io.PipeWriter

	mu      sync.Mutex
	status  drivers.Status
	lines   *drivers.Lines
	stopped bool

	readers sync.WaitGroup
}

func newHandle(cli *client.Client, id string, cfg drivers.TaskConfig, att client.HijackedResponse) *handle {
	h := &handle{cli: cli, id: id, cfg: cfg, att: att, done: make(chan struct{}), lines: drivers.NewLines(cfg.Name, cfg.Output, cfg.TailLines)}
	h.status.ID = shortID(id)
	h.outR, h.outW = io.Pipe()
	h.errR, h.errW = io.Pipe()
	if cfg.Stdio {
		h.stdin = &stdinConn{att: &h.att}
		h.stdout = h.outR
	}
	return h
}

// startCapture splits the attach stream into stdout and stderr and
// captures them (stdout only when it is not the caller's).
func (h *handle) startCapture() {
	h.readers.Add(1)
	go func() {
		defer h.readers.Done()
		_, err := stdcopy.StdCopy(h.outW, h.errW, h.att.Reader)
		h.outW.CloseWithError(err)
		h.errW.CloseWithError(err)
	}()
	h.readers.Add(1)
	go h.capture(h.errR, true)
	if !h.cfg.Stdio {
		h.readers.Add(1)
		go h.capture(h.outR, false)
	}
}

// stdinConn is the container's stdin: the write side of the attach
// connection; Close ends it (the container sees end of input, as
// StdinOnce is set).
type stdinConn struct {
	att  *client.HijackedResponse
	once sync.Once
}

func (s *stdinConn) Write(p []byte) (int, error) { return s.att.Conn.Write(p) }

func (s *stdinConn) Close() error {
	var err error
	s.once.Do(func() { err = s.att.CloseWrite() })
	return err
}

// own waits for the container to end, records its status, and removes it.
func (h *handle) own(wait client.ContainerWaitResult, stopWait context.CancelFunc) {
	defer stopWait()
	code, waitErr := h.waitExit(wait)

	// The attach stream ends with the container; give the readers a
	// moment to pass on the last lines (the tail goes into crash messages).
	drained := make(chan struct{})
	go func() { h.readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainWait):
	}

	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	oom := false
	if res, err := h.cli.ContainerInspect(ctx, h.id, client.ContainerInspectOptions{}); err == nil && res.Container.State != nil {
		st := res.Container.State
		if waitErr == nil || !st.Running {
			code, waitErr = st.ExitCode, nil
		}
		oom = st.OOMKilled
	}
	if _, err := h.cli.ContainerRemove(ctx, h.id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		h.cfg.Logger.Warn("could not remove container; the next flowctl start reaps it", "container", h.status.ID, "err", err)
	}
	h.att.Close()

	h.mu.Lock()
	st := &h.status
	st.Exited, st.ExitedAt, st.Stopped = true, time.Now(), h.stopped
	st.ExitCode = code
	// The init (pid 1) exits 128+n when a signal n ended the component, as
	// a shell reports it.
	switch {
	case oom:
		st.ExitCode, st.Signal = -1, 9
	case code > 128 && code <= 128+64:
		st.ExitCode, st.Signal = -1, code-128
	}
	h.mu.Unlock()
	h.cfg.Logger.Debug("container exited", "container", st.ID, "status", st.ExitString(), "oom_killed", oom, "err", waitErr)
	close(h.done)
}

// waitExit returns the container's exit code. When the wait request
// fails (the daemon restarted, the connection broke), it polls the
// container's state instead, and gives the container up as ended (-1)
// once it is gone or the daemon did not answer for lostDaemon.
func (h *handle) waitExit(wait client.ContainerWaitResult) (int, error) {
	select {
	case res := <-wait.Result:
		if res.Error != nil && res.Error.Message != "" {
			return int(res.StatusCode), errors.New(res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-wait.Error:
		h.cfg.Logger.Debug("waiting for the container failed; polling it", "container", h.status.ID, "err", err)
	}
	lastOK := time.Now()
	poll := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
		res, err := h.cli.ContainerInspect(ctx, h.id, client.ContainerInspectOptions{})
		cancel()
		switch {
		case err == nil && res.Container.State != nil && !res.Container.State.Running:
			return res.Container.State.ExitCode, nil
		case err == nil:
			lastOK = time.Now()
		case cerrdefs.IsNotFound(err):
			return -1, fmt.Errorf("container %s disappeared", h.status.ID)
		case time.Since(lastOK) > lostDaemon:
			return -1, fmt.Errorf("lost the Docker daemon while container %s ran: %w", h.status.ID, err)
		}
		time.Sleep(poll)
		poll = min(2*poll, 2*time.Second)
	}
}

// capture passes one output stream to the handle's Lines until it ends.
func (h *handle) capture(r io.ReadCloser, stderr bool) {
	defer h.readers.Done()
	defer r.Close()
	h.lines.Copy(r, stderr)
}

// Done returns a channel closed once the container ended and was removed.
func (h *handle) Done() <-chan struct{} { return h.done }

// Inspect returns the container's status now.
func (h *handle) Inspect() drivers.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.status
	st.Tail = h.lines.Tail()
	return st
}

// Stdin returns the container's stdin (Stdio only, else nil); closing it
// is the container's end of input.
func (h *handle) Stdin() io.WriteCloser { return h.stdin }

// Stdout returns the container's stdout (Stdio only, else nil).
func (h *handle) Stdout() io.ReadCloser { return h.stdout }

// signal sends sig to the container; a container that already ended is
// not an error.
func (h *handle) signal(sig string) error {
	select {
	case <-h.done:
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
	defer cancel()
	_, err := h.cli.ContainerKill(ctx, h.id, client.ContainerKillOptions{Signal: sig})
	if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
		// Conflict: "is not running" — it ended between our check and now.
		return nil
	}
	return fmt.Errorf("%s %s (container %s): %w", sig, h.cfg.Name, h.status.ID, err)
}

// Stop closes the container's stdin (a stdio component's signal to
// finish), sends SIGTERM, waits up to grace, then kills it. It returns
// once the container ended; when ctx ends first it kills at once.
func (h *handle) Stop(ctx context.Context, grace time.Duration) error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	if h.stdin != nil {
		h.stdin.Close()
	}
	if err := h.signal("SIGTERM"); err != nil {
		return errors.Join(err, h.Kill())
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-h.done:
		return nil
	case <-t.C:
		h.cfg.Logger.Warn("container did not stop within its grace period; killing it", "grace", grace, "container", h.status.ID)
	case <-ctx.Done():
	}
	return h.Kill()
}

// Kill sends SIGKILL and waits until the container ended.
func (h *handle) Kill() error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	if err := h.signal("SIGKILL"); err != nil {
		return err
	}
	<-h.done
	return nil
}

var _ drivers.Handle = (*handle)(nil)
