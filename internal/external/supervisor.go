package external

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowctl/flowctl/internal/backoff"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// restartPolicy spaces the restarts of a crashing component:
// InitialBackoff doubling to MaxBackoff, with jitter so that components
// that crashed together do not all come back at once.
var restartPolicy = backoff.Policy{Base: InitialBackoff, Max: MaxBackoff, Jitter: backoff.DefaultJitter}

// Restart policies (restart_policy).
const (
	RestartNo            = "no"
	RestartOnFailure     = "on-failure"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
)

// Restart tuning. A component that crashes more than CrashLoopLimit times
// within CrashLoopWindow fails the run.
const (
	InitialBackoff  = 100 * time.Millisecond
	MaxBackoff      = 5 * time.Second
	CrashLoopLimit  = 5
	CrashLoopWindow = 30 * time.Second
	// healthyAfter is how long an incarnation must live for the backoff to
	// start again from InitialBackoff.
	healthyAfter = 10 * time.Second
	// stdioExitWait is how long a stdio component may take to exit after
	// end of input before it gets SIGTERM.
	stdioExitWait = 2 * time.Second
)

// Default timeouts when the component leaves them zero.
const (
	DefaultStartupTimeout = 10 * time.Second
	DefaultStopGrace      = 10 * time.Second
)

// Stats are a supervised component's counters.
type Stats struct {
	// Restarts counts incarnations started after the first.
	Restarts int64
	// RedeliveredBatches and RedeliveredEvents count batches (and their
	// events) sent again after the incarnation handling them died: the
	// component may have seen (and acted on) them twice.
	RedeliveredBatches int64
	RedeliveredEvents  int64
	// Unhealthy counts incarnations killed because they stopped
	// heartbeating for longer than their TTL while their process lived.
	Unhealthy int64
	// V1Processor is set for a processor driven over flowctl.v1, which
	// has no "no output for this input" signal (docs/protocols-v1.md):
	// V1NoAnswer counts inputs settled without an answer after the stream
	// went quiet (also counted filtered by the engine), V1TimedOut inputs
	// failed for want of an answer within v1_answer_timeout, V1Late answers
	// that came after their input was settled (delivered with a later
	// batch), and V1LateUndelivered the late answers held now: at the end
	// of a run, those that were never delivered.
	V1Processor                                       bool
	V1NoAnswer, V1TimedOut, V1Late, V1LateUndelivered int64
}

// Supervisor runs one external component: it starts its process (unless it
// is remote), connects the protocol, watches both, and starts a new
// incarnation when one dies, under the component's restart_policy.
//
//	Start ──► starting ──ready──► running ──exit/broken──► backoff ──► starting
//	                                 │                        │
//	                               Stop                  policy/crash loop
//	                                 ▼                        ▼
//	                              stopped                  failed (Err)
//
// Callers take the current incarnation with acquire; while there is none
// (between incarnations) they block.
type Supervisor struct {
	rt    *Runtime
	c     *spec.Component
	proto Protocol
	log   *slog.Logger

	startupTimeout time.Duration
	stopGrace      time.Duration
	policy         string

	mu       sync.Mutex
	cur      *incarnation  // nil between incarnations
	ready    chan struct{} // closed when cur is set or the supervisor failed/stopped
	err      error         // terminal: why the component is gone
	stopping bool
	started  bool
	// exhausted: a source said it has no more events; its exit is expected.
	exhausted bool
	gen       int
	crashes   []time.Time
	// restartBackoff counts the crashes since the last incarnation that
	// lived healthyAfter; backoff is the wait before the next start.
	restartBackoff backoff.Backoff
	backoff        time.Duration

	restarts           atomic.Int64
	redeliveredBatches atomic.Int64
	redeliveredEvents  atomic.Int64
	unhealthy          atomic.Int64
	// envWarned: the file's values of flowctl's own variables were
	// reported (once per component, not per restart).
	envWarned atomic.Bool

	cancel context.CancelFunc
	done   chan struct{} // closed when watch returned
}

// incarnation is one started process (or container) and its connection.
type incarnation struct {
	gen     int
	h       drivers.Handle // nil for a remote component
	conns   Conns
	started time.Time
	stdio   bool // the child's stdin is the protocol: EOF asks it to exit

	inflight atomic.Int64 // batches sent and not answered

	brokenOnce sync.Once
	broken     chan struct{}
	brokenErr  error
}

func (inc *incarnation) breakWith(err error) {
	inc.brokenOnce.Do(func() {
		inc.brokenErr = err
		close(inc.broken)
	})
}

func (inc *incarnation) exited() <-chan struct{} {
	if inc.h == nil {
		return nil
	}
	return inc.h.Done()
}

// NewSupervisor returns a supervisor of c speaking proto. It starts
// nothing.
func NewSupervisor(rt *Runtime, c *spec.Component, proto Protocol) *Supervisor {
	log := rt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		rt: rt, c: c, proto: proto,
		log:            log.With("component", c.Name),
		startupTimeout: c.StartupTimeout,
		stopGrace:      c.StopGrace,
		policy:         c.RestartPolicy,
		ready:          make(chan struct{}),
		done:           make(chan struct{}),
	}
	if s.startupTimeout <= 0 {
		s.startupTimeout = DefaultStartupTimeout
	}
	if s.stopGrace <= 0 {
		s.stopGrace = DefaultStopGrace
	}
	if s.policy == "" {
		s.policy = RestartOnFailure
	}
	return s
}

// Name returns the component's name.
func (s *Supervisor) Name() string { return s.c.Name }

// Start starts the first incarnation and waits until it is ready (within
// startup_timeout); then it watches in the background. ctx bounds the
// first start only.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.stopping {
		s.mu.Unlock()
		return fmt.Errorf("component %q: started twice or after Stop", s.c.Name)
	}
	s.started = true
	s.mu.Unlock()
	inc, err := s.startOne(ctx)
	if err != nil {
		close(s.done)
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	if s.stopping { // Stop came while starting
		s.mu.Unlock()
		cancel()
		inc.conns.Close()
		if inc.h != nil {
			inc.h.Kill()
		}
		close(s.done)
		return fmt.Errorf("component %q: %w", s.c.Name, ErrClosed)
	}
	s.cancel = cancel
	s.setCurrentLocked(inc)
	s.mu.Unlock()
	go s.watch(wctx, inc)
	return nil
}

func (s *Supervisor) setCurrentLocked(inc *incarnation) {
	s.cur = inc
	close(s.ready)
}

// startOne starts one incarnation and connects to it.
func (s *Supervisor) startOne(ctx context.Context) (*incarnation, error) {
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.mu.Unlock()
	inc := &incarnation{gen: gen, broken: make(chan struct{}), started: time.Now()}
	inst := &Instance{Component: s.c, ID: s.c.Name, Started: inc.started, Logger: s.log}
	if s.rt.ControlPlane != nil && s.c.Runner != spec.RunRemote {
		// A flowctl.v1 component (no token) may register only while we
		// wait for it; the window opens before its process starts.
		release := s.rt.ControlPlane.Expect(s.c.Name)
		defer release()
	}
	if s.c.Runner != spec.RunRemote {
		launch, err := s.proto.Launch(s.rt, s.c)
		if err != nil {
			return nil, err
		}
		env, overridden, err := BuildEnv(s.rt, s.c, launch)
		if err != nil {
			return nil, err
		}
		if len(overridden) > 0 && !s.envWarned.Swap(true) {
			s.log.Warn("the pipeline file sets variables flowctl sets itself; flowctl's values are used",
				"fields", "env."+strings.Join(overridden, ", env."))
		}
		out := s.rt.Output
		if out == nil {
			out = os.Stderr
		}
		task := drivers.TaskConfig{Name: s.c.Name, Stdio: launch.Stdio, Output: out, Logger: s.log}
		if isContainer(s.c) {
			if err := containerTask(s.rt, s.c, env, &task); err != nil {
				return nil, err
			}
		} else {
			task.Argv, task.Dir = argv(s.rt, s.c)
			task.Env = environ(env)
		}
		lookup := s.rt.Drivers
		if lookup == nil {
			lookup = drivers.Lookup
		}
		drv, err := lookup(driverOf(s.c))
		if err != nil {
			return nil, fmt.Errorf("component %q: %w", s.c.Name, err)
		}
		h, err := drv.Start(ctx, task)
		if err != nil {
			return nil, fmt.Errorf("component %q: %w", s.c.Name, err)
		}
		inc.h, inc.stdio = h, launch.Stdio
		inst.Env, inst.Exited = env, h.Done()
		inst.Stdin, inst.Stdout = h.Stdin(), h.Stdout()
		st := h.Inspect()
		if task.Image != "" {
			s.log.Info("component started", "container", st.ID, "image", task.Image, "protocol", s.proto.Name(), "incarnation", gen)
		} else {
			s.log.Info("component started", "pid", st.PID, "protocol", s.proto.Name(), "incarnation", gen)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, s.startupTimeout)
	defer cancel()
	conns, err := s.proto.Ready(rctx, s.rt, inst)
	if err != nil {
		msg := fmt.Sprintf("component %q did not become ready within %v (startup_timeout)", s.c.Name, s.startupTimeout)
		tail := ""
		if inc.h != nil {
			inc.h.Kill()
			st := inc.h.Inspect()
			if st.Exited && !st.Stopped {
				msg = fmt.Sprintf("component %q exited while starting (%s)", s.c.Name, st.ExitString())
			}
			tail = tailText(st.Tail)
		}
		return nil, fmt.Errorf("%s: %w%s", msg, err, tail)
	}
	inc.conns = conns
	return inc, nil
}

func tailText(tail []string) string {
	if len(tail) == 0 {
		return ""
	}
	if len(tail) > 10 {
		tail = tail[len(tail)-10:]
	}
	return "; its last stderr lines:\n    " + strings.Join(tail, "\n    ")
}

// watch waits for the current incarnation to end, then starts the next.
func (s *Supervisor) watch(ctx context.Context, inc *incarnation) {
	defer close(s.done)
	for {
		var cause error
		stopHealth := s.watchHealth(ctx, inc)
		select {
		case <-inc.exited():
			cause = errors.New("the process exited")
		case <-inc.broken:
			cause = inc.brokenErr
		case <-ctx.Done():
			stopHealth()
			return
		}
		stopHealth()
		// A source that exits 0 is exhausted: its conn still yields what
		// it wrote before, then io.EOF. It stays the current incarnation,
		// so that the adapter drains it even when it asks for it only
		// now (a source that writes a line and exits at once is gone
		// before the engine first reads).
		exhausted := s.c.Role == flow.RoleSource && inc.h != nil && cleanExit(inc.h)
		s.mu.Lock()
		if s.cur == inc && !exhausted {
			s.cur = nil
			s.ready = make(chan struct{})
		}
		stopping := s.stopping || s.exhausted
		if exhausted {
			s.exhausted = true
		}
		s.mu.Unlock()
		if stopping || exhausted {
			return
		}
		inc.breakWith(cause)
		inc.conns.Close()
		status := "connection lost"
		var tail []string
		clean := false
		if inc.h != nil {
			inc.h.Kill()
			st := inc.h.Inspect()
			status, tail = st.ExitString(), st.Tail
			clean = st.ExitCode == 0 && st.Signal == 0 && !st.Stopped
		}
		s.log.Warn("component ended", "incarnation", inc.gen, "status", status, "cause", cause,
			"in_flight_batches", inc.inflight.Load())

		if err := s.mayRestart(status, tail, clean, time.Since(inc.started)); err != nil {
			s.failWith(err)
			return
		}
		// Start the next incarnation, retrying failed starts as crashes.
		for {
			if !sleepCtx(ctx, s.backoff) {
				return
			}
			next, err := s.startOne(ctx)
			if err == nil {
				s.restarts.Add(1)
				s.mu.Lock()
				if s.stopping {
					s.mu.Unlock()
					next.conns.Close()
					if next.h != nil {
						next.h.Kill()
					}
					return
				}
				s.setCurrentLocked(next)
				s.mu.Unlock()
				inc = next
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("component restart failed", "err", err)
			if lerr := s.mayRestart("start failed", nil, false, 0); lerr != nil {
				s.failWith(fmt.Errorf("%w\n  last start: %v", lerr, err))
				return
			}
		}
	}
}

// mayRestart applies the restart policy and the crash-loop limit to an
// incarnation that ended, and sets the next backoff.
func (s *Supervisor) mayRestart(status string, tail []string, clean bool, lived time.Duration) error {
	name := s.c.Name
	switch s.policy {
	case RestartNo:
		return fmt.Errorf("component %q ended (%s) and its restart_policy is \"no\"%s", name, status, tailText(tail))
	case RestartOnFailure:
		if clean {
			return fmt.Errorf("component %q exited on its own with status 0 while the pipeline was running; restart_policy on-failure does not restart it (use always)", name)
		}
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.crashes[:0]
	for _, t := range s.crashes {
		if now.Sub(t) < CrashLoopWindow {
			keep = append(keep, t)
		}
	}
	s.crashes = append(keep, now)
	if len(s.crashes) > CrashLoopLimit {
		return fmt.Errorf("component %q crashed %d times within %v (last: %s): %w; fix it and run again%s",
			name, len(s.crashes), CrashLoopWindow, status, ErrCrashLoop, tailText(tail))
	}
	s.restartBackoff.Policy = restartPolicy
	if lived >= healthyAfter {
		s.restartBackoff.Reset()
	}
	s.backoff = s.restartBackoff.Next()
	return nil
}

func (s *Supervisor) failWith(err error) {
	s.log.Error("component failed", "err", err)
	s.mu.Lock()
	if s.err == nil {
		s.err = stopRunError{err}
	}
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	s.mu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errExhausted is acquire's answer once a source ended for good.
var errExhausted = errors.New("the source is exhausted")

// acquire returns the current incarnation, waiting while one is being
// started. It fails once the supervisor failed or stopped, the source is
// exhausted and no incarnation is left, or ctx ended.
func (s *Supervisor) acquire(ctx context.Context) (*incarnation, error) {
	for {
		s.mu.Lock()
		cur, ready, err, stopping, exhausted := s.cur, s.ready, s.err, s.stopping, s.exhausted
		s.mu.Unlock()
		switch {
		case err != nil:
			return nil, err
		case stopping:
			return nil, fmt.Errorf("component %q: %w", s.c.Name, ErrClosed)
		case cur != nil:
			return cur, nil
		case exhausted:
			// The source ended for good and no incarnation is left to
			// read (its conn failed after it exited 0): nothing comes.
			return nil, errExhausted
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// lost is called by an adapter whose call on inc's conn failed: it breaks
// the incarnation (the watcher kills and restarts it).
//
// The incarnation stops being current at once, so that callers wait for
// the next one instead of spinning on a broken conn.
func (s *Supervisor) lost(inc *incarnation, err error) {
	inc.breakWith(err)
	s.mu.Lock()
	if s.cur == inc {
		s.cur = nil
		s.ready = make(chan struct{})
	}
	s.mu.Unlock()
}

// redelivered counts a batch of events sent again after an incarnation
// died with it in flight.
func (s *Supervisor) redelivered(events int) {
	s.redeliveredBatches.Add(1)
	s.redeliveredEvents.Add(int64(events))
}

// Err returns why the component is gone for good (crash loop, restart
// policy), nil while it runs or after a clean Stop.
func (s *Supervisor) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stats returns the component's counters.
func (s *Supervisor) Stats() Stats {
	st := Stats{
		Restarts:           s.restarts.Load(),
		RedeliveredBatches: s.redeliveredBatches.Load(),
		RedeliveredEvents:  s.redeliveredEvents.Load(),
		Unhealthy:          s.unhealthy.Load(),
	}
	if sh := s.rt.v1SharedIf(s.c.Name); sh != nil && s.c.Role == flow.RoleProcessor {
		st.V1Processor = true
		st.V1NoAnswer, st.V1TimedOut, st.V1Late, st.V1LateUndelivered = sh.stats()
	}
	return st
}

// Health is the component's health as flowctl sees it: Unhealthy once it
// failed for good; Starting between incarnations (starting up or waiting to
// restart); for a running component that heartbeats to the embedded control
// plane, what its registration says (Unhealthy as soon as its TTL passed
// without a heartbeat, even while its process lives); Healthy otherwise.
func (s *Supervisor) Health() controlplane.Health {
	s.mu.Lock()
	cur, err, stopping := s.cur, s.err, s.stopping
	s.mu.Unlock()
	switch {
	case err != nil:
		return controlplane.HealthUnhealthy
	case stopping:
		return controlplane.HealthStopping
	case cur == nil:
		return controlplane.HealthStarting
	}
	if cur.h != nil && s.rt.ControlPlane != nil && needsControlPlane(s.proto.Name()) {
		if e, ok := s.rt.ControlPlane.Registry().Get(s.c.Name); ok && !e.RegisteredAt.Before(cur.started) {
			return e.Health
		}
		return controlplane.HealthStarting
	}
	return controlplane.HealthHealthy
}

// PID returns the current incarnation's process id, 0 when none runs (or
// the component is remote).
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.h == nil {
		return 0
	}
	return s.cur.h.Inspect().PID
}

// InFlight returns how many batches are in flight on the current
// incarnation (sent, not answered).
func (s *Supervisor) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	return int(s.cur.inflight.Load())
}

// Stop ends the component: it closes the connection (a stdio component
// sees end of input), then stops the process — SIGTERM to its group,
// stop_grace, SIGKILL. It waits for the watcher; ctx bounds the wait for
// the process (then it is killed at once).
func (s *Supervisor) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.stopping = true
	if !s.started {
		s.mu.Unlock()
		return nil
	}
	cur := s.cur
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	<-s.done
	if cur == nil {
		return nil
	}
	err := cur.conns.Close()
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	if cur.h != nil {
		if cur.stdio {
			// End of input is a stdio component's signal to finish: give it
			// a moment to exit on its own before SIGTERM.
			t := time.NewTimer(min(stdioExitWait, s.stopGrace))
			select {
			case <-cur.h.Done():
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		if serr := cur.h.Stop(ctx, s.stopGrace); serr != nil {
			err = errors.Join(err, serr)
		}
		st := cur.h.Inspect()
		s.log.Info("component stopped", "status", st.ExitString())
	}
	return err
}

// stopRunError is a supervisor's terminal error: it reads as err and also
// matches flow.ErrStopRun, so the engine fails the run instead of applying
// on_error to the events.
type stopRunError struct{ err error }

func (e stopRunError) Error() string   { return e.err.Error() }
func (e stopRunError) Unwrap() []error { return []error{e.err, flow.ErrStopRun} }

// cleanExit reports whether h's process exited on its own with status 0.
func cleanExit(h drivers.Handle) bool {
	select {
	case <-h.Done():
	default:
		return false
	}
	st := h.Inspect()
	return st.ExitCode == 0 && st.Signal == 0 && !st.Stopped
}

// ErrUnhealthy means a component stopped heartbeating for longer than its
// TTL while its process lived: its supervisor killed it to restart it.
var ErrUnhealthy = errors.New("component stopped heartbeating (UNHEALTHY)")

// Health watching of components that register with the control plane.
const (
	// healthPollDefault is how often a registry entry is read before its
	// TTL is known.
	healthPollDefault = 100 * time.Millisecond
	// healthPollMin and healthPollMax bound TTL/healthPollDivisor.
	healthPollMin     = 10 * time.Millisecond
	healthPollMax     = 500 * time.Millisecond
	healthPollDivisor = 5
)

// healthPoll is how often an entry with this TTL is read: a fifth of it,
// so that a hung component is killed within TTL + TTL/5 of its last
// heartbeat, bounded by healthPollMin and healthPollMax.
func healthPoll(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return healthPollDefault
	}
	return min(max(ttl/healthPollDivisor, healthPollMin), healthPollMax)
}

// watchHealth watches the registry entry of inc, a process that registers
// with the embedded control plane (gRPC and flowctl.v1 components): when
// the entry turns UNHEALTHY because its last heartbeat is older than its
// TTL while the process still lives (hung, SIGSTOPped, deadlocked), it
// breaks the incarnation, and the watcher kills its process group with
// SIGKILL (a stopped process cannot handle SIGTERM) and restarts it through
// the restart path: backoff, crash-loop limit, in-flight batches sent
// again. A component that reports itself UNHEALTHY while it still
// heartbeats is logged, not killed: it is alive and says so. Only entries
// registered by this incarnation count (a predecessor's entry is stale by
// design). The returned func stops the watching.
func (s *Supervisor) watchHealth(ctx context.Context, inc *incarnation) (stop func()) {
	if inc.h == nil || s.rt.ControlPlane == nil || !needsControlPlane(s.proto.Name()) {
		return func() {}
	}
	reg := s.rt.ControlPlane.Registry()
	id := s.c.Name
	hctx, cancel := context.WithCancel(ctx)
	go func() {
		poll := healthPollDefault
		t := time.NewTimer(poll)
		defer t.Stop()
		reportedBad := false
		for {
			select {
			case <-hctx.Done():
				return
			case <-inc.broken:
				return
			case <-inc.exited():
				return
			case <-t.C:
			}
			e, ok := reg.Get(id)
			if ok && !e.RegisteredAt.Before(inc.started) {
				poll = healthPoll(e.TTL)
				if e.Health == controlplane.HealthUnhealthy {
					age := time.Since(e.LastHeartbeat)
					if e.Reported != controlplane.HealthUnhealthy || age > e.TTL {
						s.unhealthy.Add(1)
						s.log.Warn("component unhealthy: no heartbeat within its TTL while its process lives; killing it (SIGKILL) to restart it",
							"pid", inc.h.Inspect().PID, "incarnation", inc.gen,
							"last_heartbeat_age", age.Round(time.Millisecond), "ttl", e.TTL,
							"in_flight_batches", inc.inflight.Load())
						inc.breakWith(fmt.Errorf("component %q unhealthy: last heartbeat %v ago, TTL %v: %w",
							id, age.Round(time.Millisecond), e.TTL, ErrUnhealthy))
						return
					}
					if !reportedBad {
						s.log.Warn("component reports itself UNHEALTHY (it still heartbeats, so it is not restarted)",
							"pid", inc.h.Inspect().PID, "incarnation", inc.gen)
					}
					reportedBad = true
				} else {
					reportedBad = false
				}
			}
			t.Reset(poll)
		}
	}()
	return cancel
}
