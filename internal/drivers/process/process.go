package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/drivers"
)

// Config says what to start.
type Config struct {
	// Name prefixes every captured output line ("name | line").
	Name string
	// Argv is the command and its arguments; Argv[0] is looked up in PATH
	// unless it contains a slash.
	Argv []string
	// Env is the child's complete environment as KEY=VALUE pairs (nil: an
	// empty environment; callers usually start from os.Environ()).
	Env []string
	// Dir is the working directory ("" = flowctl's).
	Dir string
	// Stdio gives the caller the child's stdin and stdout (Handle.Stdin,
	// Handle.Stdout) instead of capturing stdout; stderr is still captured.
	Stdio bool
	// Output receives the captured lines; nil discards them. Writes from
	// every handle go through one lock, so lines never interleave.
	Output io.Writer
	// TailLines is how many of the last stderr lines Inspect keeps [20].
	TailLines int
	// Logger gets driver events (start, exit); nil discards them.
	Logger *slog.Logger
}

// Status is what Inspect reports.
//
//	starting ──► running ──► exited
type Status struct {
	PID       int
	StartedAt time.Time
	// Exited is true once the process ended; the fields below are then set.
	Exited   bool
	ExitedAt time.Time
	// ExitCode is the exit status, or -1 when a signal ended it.
	ExitCode int
	// Signal is the signal that ended it, if one did.
	Signal syscall.Signal
	// Stopped is true when the exit followed Stop or Kill.
	Stopped bool
	// Tail holds the last stderr lines (oldest first).
	Tail []string
}

// ExitString describes how the process ended: "exit status 2" or
// "killed by signal 9 (killed)"; "running" before it ended.
func (s Status) ExitString() string {
	switch {
	case !s.Exited:
		return "running"
	case s.Signal != 0:
		return fmt.Sprintf("killed by signal %d (%v)", int(s.Signal), s.Signal)
	default:
		return fmt.Sprintf("exit status %d", s.ExitCode)
	}
}

// Handle is one started process. Its methods are safe for concurrent use.
// One goroutine owns the process (waits for it and records its status);
// everything else goes through the handle's lock.
type Handle struct {
	cfg  Config
	cmd  *exec.Cmd
	done chan struct{}

	stdin  io.WriteCloser
	stdout io.ReadCloser
	// watch kills the child if flowctl dies, where the kernel does not
	// (nil where Pdeathsig does it).
	watch *watcher

	mu      sync.Mutex
	status  Status
	lines   *drivers.Lines
	stopped bool

	readers sync.WaitGroup
}

// Start starts the process and returns its handle. The process runs in its
// own process group, and gets SIGKILL when the flowctl thread that started
// it dies (see spawner for why that thread never dies).
func Start(cfg Config) (*Handle, error) {
	if len(cfg.Argv) == 0 || cfg.Argv[0] == "" {
		return nil, errors.New("start process: empty command")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cmd := exec.Command(cfg.Argv[0], cfg.Argv[1:]...)
	cmd.Env = cfg.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = cfg.Dir
	cmd.SysProcAttr = sysProcAttr()
	h := &Handle{cfg: cfg, cmd: cmd, done: make(chan struct{}), lines: drivers.NewLines(cfg.Name, cfg.Output, cfg.TailLines)}

	// Pipes are made by hand (not cmd.StdoutPipe) so that Wait does not
	// close them under the readers: a grandchild may still hold the write
	// ends, and the readers finish on their own at EOF.
	var parentEnds, childEnds []*os.File
	closeAll := func() {
		for _, f := range parentEnds {
			f.Close()
		}
		for _, f := range childEnds {
			f.Close()
		}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	parentEnds, childEnds = append(parentEnds, errR), append(childEnds, errW)
	cmd.Stderr = errW
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	parentEnds, childEnds = append(parentEnds, outR), append(childEnds, outW)
	cmd.Stdout = outW
	if cfg.Stdio {
		inR, inW, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
		}
		parentEnds, childEnds = append(parentEnds, inW), append(childEnds, inR)
		cmd.Stdin = inR
		h.stdin, h.stdout = inW, outR
	}

	if err := spawn(cmd); err != nil {
		closeAll()
		return nil, fmt.Errorf("start %s (%s): %w", cfg.Name, cfg.Argv[0], err)
	}
	for _, f := range childEnds {
		f.Close()
	}
	if pipeWatch {
		w, err := startWatcher(cmd.Process.Pid)
		if err != nil {
			_ = signalGroup(cmd.Process, cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			for _, f := range parentEnds {
				f.Close()
			}
			return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
		}
		h.watch = w
	}
	h.status = Status{PID: cmd.Process.Pid, StartedAt: time.Now()}
	cfg.Logger.Debug("process started", "pid", h.status.PID, "argv", cfg.Argv)

	h.readers.Add(1)
	go h.capture(errR, true)
	if !cfg.Stdio {
		h.readers.Add(1)
		go h.capture(outR, false)
	}
	go h.own()
	return h, nil
}

// own is the goroutine that owns the process: it waits for it and records
// how it ended.
func (h *Handle) own() {
	err := h.cmd.Wait()
	// Reaped: its pid may be reused from now on, so its watcher goes before
	// it could kill a stranger's group.
	h.watch.stop()
	// Give the readers a moment to drain what the child wrote last, so the
	// tail (used in crash messages) is complete; a grandchild holding the
	// pipes must not hold the exit up for long.
	waited := make(chan struct{})
	go func() { h.readers.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(200 * time.Millisecond):
	}
	h.mu.Lock()
	st := &h.status
	st.Exited, st.ExitedAt, st.Stopped = true, time.Now(), h.stopped
	st.ExitCode = h.cmd.ProcessState.ExitCode()
	if ws, ok := h.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		st.Signal = ws.Signal()
	}
	h.mu.Unlock()
	h.cfg.Logger.Debug("process exited", "pid", st.PID, "status", st.ExitString(), "err", err)
	close(h.done)
}

// capture passes one output stream to the handle's Lines until it ends.
func (h *Handle) capture(r io.ReadCloser, stderr bool) {
	defer h.readers.Done()
	defer r.Close()
	h.lines.Copy(r, stderr)
}

// Done returns a channel closed when the process has exited.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Stdin returns the child's stdin (Config.Stdio only, else nil). Closing
// it is the child's end of input.
func (h *Handle) Stdin() io.WriteCloser { return h.stdin }

// Stdout returns the child's stdout (Config.Stdio only, else nil).
func (h *Handle) Stdout() io.ReadCloser { return h.stdout }

// PID returns the process id.
func (h *Handle) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status.PID
}

// Inspect returns the process's status now.
func (h *Handle) Inspect() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.status
	st.Tail = h.lines.Tail()
	return st
}

// Signal sends sig to the process group. It is a no-op once the process
// exited.
func (h *Handle) Signal(sig syscall.Signal) error {
	select {
	case <-h.done:
		return nil
	default:
	}
	if err := signalGroup(h.cmd.Process, h.PID(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s: %w", h.cfg.Name, err)
	}
	return nil
}

// Stop ends the process: SIGTERM to its group, up to grace for it to exit,
// then SIGKILL. It blocks until the process exited or ctx is done (then it
// kills at once and still waits for the exit, which follows promptly).
// Stop closes the child's stdin first (for a stdio child that is its
// signal to finish). Safe to call several times and after the exit.
func (h *Handle) Stop(ctx context.Context, grace time.Duration) error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	if h.stdin != nil {
		h.stdin.Close()
	}
	if err := h.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		h.cfg.Logger.Warn("process did not stop within its grace period; killing it", "grace", grace)
	case <-ctx.Done():
	}
	return h.Kill()
}

// Kill sends SIGKILL to the process group and waits for the exit. Members
// of the group left behind by a leader that already exited are killed too.
func (h *Handle) Kill() error {
	h.mu.Lock()
	h.stopped = true
	pid := h.status.PID
	h.mu.Unlock()
	// Even after the leader exited, its group may live on in grandchildren.
	if err := signalGroup(h.cmd.Process, pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s: %w", h.cfg.Name, err)
	}
	<-h.done
	return nil
}

// spawner starts every child from one goroutine locked to its OS thread for
// the life of flowctl. Pdeathsig fires when the *thread* that forked the
// child exits, not the process; Go ends a thread when a goroutine locked
// to it returns, so a child started from an arbitrary goroutine that
// happens to be locked (and later returns) would be killed at random. The
// spawner's thread never returns.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func spawn(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as flowctl
			for r := range spawner.reqs {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawner.reqs <- spawnReq{cmd: cmd, errc: errc}
	return <-errc
}
