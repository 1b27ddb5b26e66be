package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/pkg/backoff"
)

// Tuning of the reconciler.
const (
	// resyncRunning is how often a running pipeline is looked at again
	// (readiness, heartbeats, counters) without any event.
	resyncRunning = 2 * time.Second
	// countersEvery is how often a running run's counters are saved.
	countersEvery = 15 * time.Second
	// stableRun is how long a child must run before its failures count
	// starts again from one.
	stableRun = time.Minute
	// workers is how many pipelines are reconciled at once (stopping a
	// child can take the whole grace).
	workers = 4
)

// Condition types written in a pipeline's status.
const (
	condApplied = "Applied"
	condReady   = "Ready"
	condFailed  = "Failed"
)

// errShuttingDown refuses work while the server stops.
var errShuttingDown = errors.New("the server is shutting down")

// reconcilerOptions are what the reconciler needs from the server.
type reconcilerOptions struct {
	store    store.Store
	registry *controlplane.Registry
	logs     *logStore
	log      *slog.Logger
	// driver starts the children (the process driver, or a fake in tests).
	driver drivers.Driver
	// exe is the flowctl binary run as `exe run -f ...`.
	exe string
	// specDir holds the spec files children run (specDir/NAME/rREV.yaml).
	specDir string
	// reportAddr is the address children report to; reportArgs are extra
	// flags for them (TLS files, token file).
	reportAddr string
	reportArgs []string
	// grace bounds a child's drain; the child gets a little less as its
	// own --grace.
	grace time.Duration
	// backoff and maxBackoff bound restarts after crashes.
	backoff, maxBackoff time.Duration
	// hungGrace: a running child whose every component has been
	// UNHEALTHY (no heartbeat for longer than the TTL) this much longer is
	// killed and restarted; 0 kills it as soon as that is seen.
	hungGrace time.Duration
	// keepRuns is passed to StartRun: how many runs of a pipeline its
	// history keeps (0: all).
	keepRuns int
}

// reconciler makes the running children match the applied pipelines.
//
// Desired state is the store's pipelines; observed state is the observed
// map (children, failures, completions). reconcile(name) compares the two
// and converges: stop an outdated or deleted pipeline's child, start a
// missing one (after any backoff), write the status. It is
// level-triggered: it never depends on what event queued the name.
type reconciler struct {
	opts  reconcilerOptions
	queue *workQueue

	mu       sync.Mutex
	observed map[string]*observed
	// stopped holds what the teardown of a deleted pipeline stopped, for
	// the Delete call whose own reconcile finds that a worker (woken by
	// the store's change) got there first.
	stopped map[string][]int
	// unrecorded holds, per pipeline, ended runs whose end the store
	// refused; each sync writes them again.
	unrecorded map[string][]store.Run
	locks      map[string]*sync.Mutex
	shutting   bool

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// observed is what the reconciler knows about one pipeline.
type observed struct {
	child *child
	// last is the last run that ended (nil: none since the server started).
	lastRun *store.Run
	// completedRev is the revision whose child completed (not started
	// again until a new revision is applied).
	completedRev int64
	// permanentRev is a revision that cannot start (not retried hot).
	permanentRev int64
	// failures counts consecutive failures of failRev; nextRetry is when
	// the next start may happen.
	failRev   int64
	failures  int
	nextRetry time.Time
	lastError string
	restarts  int
	// unhealthySince is when every component was first seen UNHEALTHY.
	unhealthySince time.Time
	// written is the last status written to the store.
	written *store.PipelineStatus
	// phaseSince is when the phase last changed.
	phase      store.Phase
	phaseSince time.Time
}

// child is one running `flowctl run` task.
type child struct {
	h drivers.Handle
	// pid is the child's local pid (0 when the driver has none).
	pid int
	// rev is the revision the child runs (a reload in place changes it).
	rev     atomic.Int64
	run     store.Run // guarded by mu once the child runs
	started time.Time
	// spec, dir and reloadPath are what the child was started with (then
	// last reloaded): the applied file, its directory and the file a
	// SIGHUP makes it apply (see reload.go).
	spec, dir, reloadPath, revisionPath string
	// reloadingRev is the revision a SIGHUP asked the child to apply.
	reloadingRev int64 // guarded by mu
	// stopReason is set before the reconciler stops the child on purpose.
	mu         sync.Mutex
	stopReason string
	lastSaved  time.Time
	// ended is set once await took the run to record its end: no other
	// write of the run may follow, or it would undo that record.
	ended bool // guarded by mu
	// exited is closed once the exit was recorded.
	exited chan struct{}
}

// revision is the revision the child runs.
func (c *child) revision() int64 { return c.rev.Load() }

// updateRun calls write with the child's run unless its end is being
// recorded (then it does nothing). c.mu is held throughout, so the
// record of the end, which waits for it, always lands last.
func (c *child) updateRun(write func(run *store.Run) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return nil
	}
	return write(&c.run)
}

func (c *child) setStopReason(r string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopReason == "" {
		c.stopReason = r
	}
}

func (c *child) reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopReason
}

func newReconciler(opts reconcilerOptions) *reconciler {
	return &reconciler{
		opts:       opts,
		queue:      newWorkQueue(200*time.Millisecond, 30*time.Second),
		observed:   map[string]*observed{},
		stopped:    map[string][]int{},
		unrecorded: map[string][]store.Run{},
		locks:      map[string]*sync.Mutex{},
	}
}

// start queues every stored pipeline and starts the workers.
func (r *reconciler) start(ctx context.Context) error {
	ctx, r.cancel = context.WithCancel(ctx)
	pls, err := r.opts.store.ListPipelines(ctx)
	if err != nil {
		return fmt.Errorf("list pipelines: %w", err)
	}
	for _, p := range pls {
		r.queue.Add(p.Name)
	}
	for range workers {
		r.wg.Add(1)
		go r.worker(ctx)
	}
	r.wg.Add(1)
	go r.watchRegistry(ctx)
	return nil
}

// watchRegistry queues a pipeline whenever one of its components
// registers, changes health (a TTL expiry included) or goes away, so that
// readiness and hung children are seen at once rather than at the next
// resync.
func (r *reconciler) watchRegistry(ctx context.Context) {
	defer r.wg.Done()
	for ctx.Err() == nil {
		w := r.opts.registry.Watch(ctx, false)
		for ch := range w.C {
			if p := ch.Entry.Metadata[report.MetaPipeline]; p != "" && ch.Kind != controlplane.ChangeUpdated {
				r.queue.Add(p)
			}
		}
		// The watcher fell behind (a burst of registrations) or ctx ended:
		// watch again; resync covers what was missed.
	}
}

func (r *reconciler) worker(ctx context.Context) {
	defer r.wg.Done()
	for {
		name, ok := r.queue.Get()
		if !ok {
			return
		}
		after, err := r.reconcile(ctx, name)
		switch {
		case err != nil && !errors.Is(err, errShuttingDown):
			d := r.queue.AddRateLimited(name)
			r.opts.log.Warn("reconcile failed; retrying", logKeyPipeline, name, logKeyError, err, logKeyRetryIn, d)
		default:
			r.queue.Forget(name)
			if after > 0 {
				r.queue.AddAfter(name, after)
			}
		}
		r.queue.Done(name)
	}
}

// lock returns name's lock: reconcile and the API's synchronous calls for
// one pipeline never run at once.
func (r *reconciler) lock(name string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.locks[name]
	if l == nil {
		l = &sync.Mutex{}
		r.locks[name] = l
	}
	return l
}

// obs returns name's observed state, creating it from the stored status.
// r.mu must be held.
func (r *reconciler) obsLocked(name string, desired *store.Pipeline) *observed {
	o := r.observed[name]
	if o == nil {
		delete(r.stopped, name) // a pipeline of that name again
		o = &observed{phaseSince: time.Now()}
		if desired != nil {
			st := desired.Status
			if st.Phase == store.PhaseCompleted && st.ObservedRevision == desired.Revision {
				o.completedRev = desired.Revision
			}
			o.phase = st.Phase
			o.lastError = st.LastError
			s := st
			o.written = &s
		}
		r.observed[name] = o
	}
	return o
}

// syncResult is what a synchronous reconcile did.
type syncResult struct {
	stoppedPIDs []int
}

// reconcile converges one pipeline and says when to look again (0: only
// when something happens).
func (r *reconciler) reconcile(ctx context.Context, name string) (time.Duration, error) {
	after, _, err := r.sync(ctx, name)
	return after, err
}

func (r *reconciler) sync(ctx context.Context, name string) (time.Duration, syncResult, error) {
	l := r.lock(name)
	l.Lock()
	defer l.Unlock()
	after, res, err := r.converge(ctx, name)
	if rerr := r.recordEnded(ctx, name); rerr != nil && err == nil {
		// Queued again with backoff until the store takes them.
		err = rerr
	}
	return after, res, err
}

// recordEnded writes the ends of name's runs that the store refused when
// they ended (a full disk, say): until then the history shows them still
// running, beside the run that replaced them.
func (r *reconciler) recordEnded(ctx context.Context, name string) error {
	r.mu.Lock()
	runs := r.unrecorded[name]
	delete(r.unrecorded, name)
	r.mu.Unlock()
	var left []store.Run
	var errs []error
	for _, run := range runs {
		if err := r.opts.store.UpdateRun(ctx, run); err != nil && !errors.Is(err, store.ErrNotFound) {
			left = append(left, run)
			errs = append(errs, fmt.Errorf("record the end of run %d: %w", run.ID, err))
		}
	}
	if len(left) > 0 {
		r.mu.Lock()
		r.unrecorded[name] = append(left, r.unrecorded[name]...)
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// converge is sync's work, with name's lock held.
func (r *reconciler) converge(ctx context.Context, name string) (time.Duration, syncResult, error) {
	var res syncResult

	desired, err := r.opts.store.GetPipeline(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		res.stoppedPIDs = r.teardown(name, "pipeline deleted")
		return 0, res, nil
	}
	if err != nil {
		return 0, res, fmt.Errorf("read pipeline %q: %w", name, err)
	}
	r.mu.Lock()
	o := r.obsLocked(name, &desired)
	c := o.child
	shutting := r.shutting
	r.mu.Unlock()

	// An outdated child applies the new revision in place when it can
	// (only settings of processors and sinks changed); otherwise it
	// drains before the new revision starts.
	if c != nil && c.revision() != desired.Revision && !r.reloadChild(ctx, c, desired) {
		select {
		case <-c.exited: // it stopped itself: the change needs a restart
		default:
			res.stoppedPIDs = r.stopChild(c, fmt.Sprintf("revision %d applied", desired.Revision))
		}
		c = nil
	}
	r.mu.Lock()
	if o.failRev != desired.Revision {
		o.failRev, o.failures, o.nextRetry, o.restarts = desired.Revision, 0, time.Time{}, 0
	}
	c = o.child
	completed := o.completedRev == desired.Revision
	permanent := o.permanentRev == desired.Revision
	nextRetry := o.nextRetry
	r.mu.Unlock()

	now := time.Now()
	switch {
	case c != nil:
		return r.observeRunning(ctx, desired, o, c), res, r.writeStatus(ctx, desired, o)
	case completed:
		r.setPhase(o, store.PhaseCompleted)
		return 0, res, r.writeStatus(ctx, desired, o)
	case permanent:
		r.setPhase(o, store.PhaseFailed)
		return 0, res, r.writeStatus(ctx, desired, o)
	case shutting:
		return 0, res, errShuttingDown
	case now.Before(nextRetry):
		r.setPhase(o, store.PhaseFailed)
		return nextRetry.Sub(now), res, r.writeStatus(ctx, desired, o)
	}

	if err := r.startChild(ctx, desired, o); err != nil {
		if errors.Is(err, errShuttingDown) {
			return 0, res, err
		}
		r.mu.Lock()
		o.lastError = err.Error()
		var perm *permanentError
		if errors.As(err, &perm) {
			o.permanentRev = desired.Revision
		} else {
			r.failedLocked(o)
		}
		wait := time.Until(o.nextRetry)
		r.mu.Unlock()
		r.setPhase(o, store.PhaseFailed)
		r.opts.log.Error("cannot start pipeline", logKeyPipeline, name, logKeyRevision, desired.Revision, logKeyError, err)
		if werr := r.writeStatus(ctx, desired, o); werr != nil {
			return 0, res, werr
		}
		if errors.As(err, &perm) {
			return 0, res, nil
		}
		return max(wait, time.Millisecond), res, nil
	}
	r.setPhase(o, store.PhaseRunning)
	return resyncRunning, res, r.writeStatus(ctx, desired, o)
}

// permanentError is a start failure that retrying cannot fix (the stored
// file no longer loads); it is recorded and not retried until a new
// revision is applied.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// failedLocked counts a failure of the current revision and sets the next
// retry. r.mu must be held.
func (r *reconciler) failedLocked(o *observed) {
	o.failures++
	p := backoff.Policy{Base: r.opts.backoff, Max: r.opts.maxBackoff, Jitter: backoff.DefaultJitter}
	o.nextRetry = time.Now().Add(p.Delay(o.failures))
}

func (r *reconciler) setPhase(o *observed, p store.Phase) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.phase != p {
		o.phase, o.phaseSince = p, time.Now()
	}
}

// observeRunning checks a running child: readiness, heartbeats (a child
// whose every component stopped heartbeating is killed: it hangs), and
// saves its counters now and then. It returns when to look again.
func (r *reconciler) observeRunning(ctx context.Context, desired store.Pipeline, o *observed, c *child) time.Duration {
	r.setPhase(o, store.PhaseRunning)
	next := resyncRunning
	entries := r.components(desired.Name, c.revision())
	if len(entries) > 0 {
		// Silent, not merely unhealthy: a child reports the health of the
		// external components it supervises (and restarts), which may say
		// UNHEALTHY while the child itself heartbeats.
		all := true
		for _, e := range entries {
			if time.Since(e.LastHeartbeat) <= e.TTL {
				all = false
				break
			}
		}
		r.mu.Lock()
		switch {
		case !all:
			o.unhealthySince = time.Time{}
		case o.unhealthySince.IsZero():
			o.unhealthySince = time.Now()
		}
		silentFor := time.Since(o.unhealthySince)
		hung := all && silentFor >= r.opts.hungGrace
		r.mu.Unlock()
		if all && !hung {
			next = min(resyncRunning, r.opts.hungGrace-silentFor+10*time.Millisecond)
		}
		if hung {
			r.opts.log.Warn("pipeline child stopped heartbeating; killing it", logKeyPipeline, desired.Name, logKeyPID, c.pid)
			markHung(c)
			_ = c.h.Kill()
			<-c.exited
			return time.Millisecond
		}
	}
	c.mu.Lock()
	save := time.Since(c.lastSaved) >= countersEvery
	if save {
		c.lastSaved = time.Now()
	}
	c.mu.Unlock()
	if save && len(entries) > 0 {
		if err := c.updateRun(func(run *store.Run) error {
			saved := *run
			saved.Counters = countersOf(entries)
			return r.opts.store.UpdateRun(ctx, saved)
		}); err != nil {
			r.opts.log.Warn("save run counters", logKeyPipeline, desired.Name, logKeyError, err)
		}
	}
	return next
}

// labelPipeline labels a child with its pipeline's name (container
// drivers attach it, so leftovers can be found).
const labelPipeline = "flowctl.pipeline"

// signaler is what a handle offers when it can send a signal (the process
// driver's can); without it a reload restarts the child instead.
type signaler interface {
	Signal(sig syscall.Signal) error
}

// hungReason marks a child killed because it stopped heartbeating; the
// exit is then a failure with this reason.
const hungReason = "\x00hung"

func markHung(c *child) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopReason = hungReason
}

// components returns the registry entries of pipeline's components
// registered by the child of revision rev.
func (r *reconciler) components(pipeline string, rev int64) []controlplane.Entry {
	q := controlplane.Query{IncludeUnhealthy: true, Metadata: map[string]string{report.MetaPipeline: pipeline}}
	if rev > 0 {
		q.Metadata[report.MetaRevision] = strconv.FormatInt(rev, 10)
	}
	return r.opts.registry.Discover(q)
}

// countersOf flattens the entries' counters into COMPONENT/COUNTER keys.
func countersOf(entries []controlplane.Entry) map[string]int64 {
	out := map[string]int64{}
	for _, e := range entries {
		comp := e.Metadata[report.MetaComponent]
		for k, v := range report.ParseMetrics(e.Metrics) {
			out[comp+"/"+k] = v
		}
	}
	return out
}

// specPath is where revision rev of pipeline is written for its child.
// runSocket is where the pipeline's run serves its taps: in its folder
// beside the spec copies, unless that path is longer than a socket's may
// be (a long name in a deep data dir); then in a folder of short names,
// named by a hash of the pipeline's name, in the data dir.
func (r *reconciler) runSocket(name string) string {
	p := filepath.Join(r.opts.specDir, name, "run.sock")
	if len(p) <= maxSocketPath() {
		return p
	}
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(filepath.Dir(r.opts.specDir), "rs", hex.EncodeToString(sum[:6])+".sock")
}

func (r *reconciler) specPath(p store.Pipeline) string {
	ext := ".yaml"
	if t := strings.TrimLeft(string(p.Spec), " \t\r\n\ufeff"); strings.HasPrefix(t, "{") {
		ext = ".json"
	}
	return filepath.Join(r.opts.specDir, p.Name, fmt.Sprintf("r%d%s", p.Revision, ext))
}

// startChild writes the spec file, records a run and starts the child.
func (r *reconciler) startChild(ctx context.Context, p store.Pipeline, o *observed) error {
	if ps := parseSpec("", p.Spec); ps.diags.HasErrors() {
		return &permanentError{fmt.Errorf("the applied revision %d no longer validates: %w", p.Revision, ps.diags.Err())}
	}
	path := r.specPath(p)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	if err := os.WriteFile(path, escapeVars(p.Spec), 0o600); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	dir := p.Dir
	if dir == "" {
		dir, _ = os.Getwd()
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("directory %q of the applied file is not there: apply it again from an existing directory", dir)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutting {
		return errShuttingDown
	}
	run, err := r.opts.store.StartRun(ctx, store.Run{Pipeline: p.Name, Revision: p.Revision, StartedAt: time.Now()}, r.opts.keepRuns)
	if err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	childGrace := r.opts.grace * 8 / 10
	if childGrace <= 0 {
		childGrace = time.Second
	}
	argv := []string{r.opts.exe, "run", "-f", path, "--dir", dir, "--grace", childGrace.String(),
		"--report-to", r.opts.reportAddr, "--pipeline-revision", strconv.FormatInt(p.Revision, 10),
		"--run-id", strconv.FormatInt(run.ID, 10),
		// JSON records: the log store reads each line's component, level
		// and time from its fields instead of guessing them from text.
		"--log-format", "json",
		// The run's own socket: the server taps the run through it.
		"--socket", r.runSocket(p.Name),
		// Checkpoints live beside the pipeline's spec copies, so that a
		// restarted child (after a crash of it or of the server) resumes.
		"--state-dir", filepath.Join(r.opts.specDir, p.Name, stateDirName)}
	reloadPath := filepath.Join(filepath.Dir(path), "reload"+filepath.Ext(path))
	revisionPath := filepath.Join(filepath.Dir(path), "reload.revision")
	argv = append(argv, "--reload-from", reloadPath, "--reload-revision-file", revisionPath)
	argv = append(argv, r.opts.reportArgs...)
	known := map[string]bool{}
	if ps := parseSpec("", p.Spec); ps.pl != nil {
		for _, n := range ps.order {
			known[n] = true
		}
	}
	errW := &lineWriter{store: r.opts.logs, pipeline: p.Name, stream: "stderr", run: run.ID, known: known}
	// Name stays empty: errW takes lines as " | text" and finds the
	// component in the text itself.
	h, err := r.opts.driver.Start(ctx, drivers.TaskConfig{
		Argv: argv, Env: os.Environ(), Dir: dir, Stdio: true, Output: errW,
		Labels: map[string]string{labelPipeline: p.Name},
		Logger: r.opts.log.With(logKeyPipeline, p.Name),
	})
	if err != nil {
		run.State, run.Reason, run.EndedAt = store.RunFailed, "start: "+err.Error(), time.Now()
		_ = r.opts.store.UpdateRun(ctx, run)
		return fmt.Errorf("start child: %w", err)
	}
	if in := h.Stdin(); in != nil {
		in.Close()
	}
	run.PID = h.Inspect().PID
	if err := r.opts.store.UpdateRun(ctx, run); err != nil {
		r.opts.log.Warn("record run pid", logKeyPipeline, p.Name, logKeyError, err)
	}
	outW := &lineWriter{store: r.opts.logs, pipeline: p.Name, stream: "stdout", run: run.ID, known: known}
	c := &child{h: h, pid: run.PID, run: run, started: time.Now(), lastSaved: time.Now(), exited: make(chan struct{}),
		spec: string(p.Spec), dir: p.Dir, reloadPath: reloadPath, revisionPath: revisionPath}
	c.rev.Store(p.Revision)
	if o.failures > 0 {
		o.restarts++
	}
	o.child = c
	o.unhealthySince = time.Time{}
	r.opts.log.Info("pipeline started", logKeyPipeline, p.Name, logKeyRevision, p.Revision, logKeyRun, run.ID, logKeyPID, run.PID)
	if out := h.Stdout(); out != nil {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			outW.copyLines(out)
		}()
	}
	r.wg.Add(1)
	go r.await(p.Name, o, c)
	return nil
}

// await records the end of c's run once the child exits, and queues the
// pipeline so that the reconciler decides what follows.
func (r *reconciler) await(name string, o *observed, c *child) {
	defer r.wg.Done()
	<-c.h.Done()
	st := c.h.Inspect()
	c.mu.Lock()
	c.ended = true
	run := c.run
	reloading := c.reloadingRev
	c.mu.Unlock()
	run.EndedAt, run.ExitCode = st.ExitedAt, st.ExitCode
	if run.EndedAt.IsZero() {
		run.EndedAt = time.Now()
	}
	entries := r.components(name, c.revision())
	if len(entries) > 0 {
		run.Counters = countersOf(entries)
	}
	reason := c.reason()
	r.mu.Lock()
	switch {
	case reason != "" && reason != hungReason:
		run.State, run.Reason = store.RunStopped, reason
	case reason == "" && reloading != 0 && st.ExitCode == childExitReloadRestart:
		run.State, run.Reason = store.RunStopped, fmt.Sprintf("revision %d applied (the change needs a restart)", reloading)
	case reason == "" && (st.ExitCode == 0 || st.ExitCode == childExitDropped) && st.Signal == 0:
		run.State, run.Reason = store.RunCompleted, "every source finished"
		if st.ExitCode == childExitDropped {
			// Done, but it lost events: say so in the run's record. Running
			// it again would only repeat what it wrote.
			run.Reason += ", but events were dropped" + failureDetail(st)
		}
		o.completedRev = c.revision()
		o.failures, o.lastError = 0, ""
	default:
		run.State = store.RunFailed
		if reason == hungReason {
			run.Reason = "every component stopped heartbeating for longer than its TTL (the child hangs); killed"
		} else {
			run.Reason = st.ExitString() + failureDetail(st)
		}
		if time.Since(c.started) >= stableRun {
			o.failures = 0
		}
		r.failedLocked(o)
		o.lastError = run.Reason
	}
	if o.child == c {
		o.child = nil
	}
	last := run
	o.lastRun = &last
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.opts.store.UpdateRun(ctx, run); err != nil {
		r.opts.log.Error("record the end of a run; trying again", logKeyPipeline, name, logKeyRun, run.ID, logKeyError, err)
		r.mu.Lock()
		r.unrecorded[name] = append(r.unrecorded[name], run)
		r.mu.Unlock()
	}
	for _, e := range entries {
		r.opts.registry.Deregister(e.ID)
		_ = r.opts.store.DeleteRegistration(ctx, e.ID)
	}
	r.opts.log.Info("pipeline child exited", logKeyPipeline, name, logKeyRun, run.ID, logKeyPID, c.pid, logKeyState, run.State, logKeyReason, run.Reason)
	close(c.exited)
	r.queue.Add(name)
}

// failureDetail picks the lines of a child's stderr tail that say why it
// failed: its last "flowctl run:" error with the indented lines that
// continue it (a component's last stderr lines), else the last line. A
// child killed by a signal said nothing about its end: what it printed
// last is a note of its start ("resuming ..."), which would pass for a
// reason, so there is no detail.
func failureDetail(st drivers.Status) string {
	if st.Signal != 0 {
		return ""
	}
	tail := st.Tail
	for i := len(tail) - 1; i >= 0; i-- {
		if !strings.Contains(tail[i], "flowctl run:") {
			continue
		}
		msg := strings.TrimSpace(tail[i])
		var more []string
		for _, l := range tail[i+1:] {
			if !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") {
				break
			}
			more = append(more, strings.TrimSpace(l))
		}
		if len(more) > 0 {
			msg += " " + strings.Join(more, "; ")
		}
		return ": " + msg
	}
	if len(tail) > 0 {
		return ": " + strings.TrimSpace(tail[len(tail)-1])
	}
	return ""
}

// stopChild drains c (SIGTERM, the grace, then SIGKILL), waits until the
// exit is recorded and, for a child with a local pid, every process it
// started is gone, and returns their pids.
func (r *reconciler) stopChild(c *child, reason string) []int {
	c.setStopReason(reason)
	var pids []int
	if c.pid > 0 { // descendants(0) would be every process on the machine
		pids = append([]int{c.pid}, descendants(c.pid)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.grace+5*time.Second)
	defer cancel()
	_ = c.h.Stop(ctx, r.opts.grace)
	<-c.exited
	waitGone(pids, 5*time.Second)
	return pids
}

// teardown stops a deleted pipeline's child and forgets it.
func (r *reconciler) teardown(name, reason string) []int {
	r.mu.Lock()
	o := r.observed[name]
	r.mu.Unlock()
	var pids []int
	if o != nil {
		r.mu.Lock()
		c := o.child
		r.mu.Unlock()
		if c != nil {
			pids = r.stopChild(c, reason)
		}
	}
	r.mu.Lock()
	delete(r.observed, name)
	if o != nil {
		r.stopped[name] = pids
	} else {
		// Torn down already: by the worker, or by an earlier call.
		pids = r.stopped[name]
		delete(r.stopped, name)
	}
	r.mu.Unlock()
	// Its registrations go in Server.dropRegistrations, which the delete
	// calls once this returned.
	r.removeFiles(name)
	r.opts.logs.EndFollowers(name)
	return pids
}

// stateDirName is the folder, under a pipeline's directory of spec
// copies, that holds its checkpoints (the child's --state-dir).
const stateDirName = "state"

// removeFiles removes what a deleted pipeline's child ran from (its spec
// copies, reload files, socket) but keeps its checkpoints: applied again,
// the pipeline resumes where it stopped. Starting over instead would
// empty the files its sinks wrote, as a first run does.
func (r *reconciler) removeFiles(name string) {
	dir := filepath.Join(r.opts.specDir, name)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() != stateDirName {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// shutdown stops every child within the grace, records their runs as
// stopped and the pipelines as Stopped (started again at the next server
// start), and stops the workers.
func (r *reconciler) shutdown(ctx context.Context) {
	r.mu.Lock()
	r.shutting = true
	type item struct {
		name string
		o    *observed
		c    *child
	}
	var items []item
	for name, o := range r.observed {
		if o.child != nil {
			items = append(items, item{name, o, o.child})
		}
	}
	r.mu.Unlock()
	r.queue.ShutDown()

	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.stopChild(it.c, "server shutdown")
			l := r.lock(it.name)
			l.Lock()
			defer l.Unlock()
			p, err := r.opts.store.GetPipeline(ctx, it.name)
			if err != nil {
				return
			}
			r.setPhase(it.o, store.PhaseStopped)
			if err := r.writeStatus(ctx, p, it.o); err != nil {
				r.opts.log.Warn("write status at shutdown", logKeyPipeline, it.name, logKeyError, err)
			}
		}()
	}
	wg.Wait()
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}

// writeStatus builds the pipeline's status from what was observed and
// writes it when it changed.
func (r *reconciler) writeStatus(ctx context.Context, p store.Pipeline, o *observed) error {
	st := r.liveStatus(p, o)
	r.mu.Lock()
	same := o.written != nil && statusEqual(*o.written, st)
	r.mu.Unlock()
	if same {
		return nil
	}
	if err := r.opts.store.UpdatePipelineStatus(ctx, p.Name, st); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("write status of %q: %w", p.Name, err)
	}
	r.mu.Lock()
	o.written = &st
	r.mu.Unlock()
	return nil
}

// liveStatus is the status now, with the transition times of conditions
// whose status did not change since the last write kept.
func (r *reconciler) liveStatus(p store.Pipeline, o *observed) store.PipelineStatus {
	st := r.status(p, o)
	r.mu.Lock()
	prev := o.written
	r.mu.Unlock()
	if prev != nil {
		for i, c := range st.Conditions {
			for _, pc := range prev.Conditions {
				if pc.Type == c.Type && pc.Status == c.Status {
					st.Conditions[i].LastTransition = pc.LastTransition
				}
			}
		}
	}
	return st
}

// statusOf is the live status of a stored pipeline the reconciler has
// looked at (ok false: not yet, the stored status is all there is).
func (r *reconciler) statusOf(p store.Pipeline) (store.PipelineStatus, bool) {
	r.mu.Lock()
	o := r.observed[p.Name]
	r.mu.Unlock()
	if o == nil {
		return p.Status, false
	}
	return r.liveStatus(p, o), true
}

// statusEqual compares statuses ignoring transition times.
func statusEqual(a, b store.PipelineStatus) bool {
	if a.ObservedRevision != b.ObservedRevision || a.Phase != b.Phase || a.Ready != b.Ready || a.LastError != b.LastError || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message {
			return false
		}
	}
	return true
}

// status is the pipeline's observed status now.
func (r *reconciler) status(p store.Pipeline, o *observed) store.PipelineStatus {
	r.mu.Lock()
	c := o.child
	phase := o.phase
	lastErr := o.lastError
	nextRetry := o.nextRetry
	failures := o.failures
	permanent := o.permanentRev == p.Revision
	r.mu.Unlock()
	now := time.Now().UTC()
	st := store.PipelineStatus{ObservedRevision: p.Revision, Phase: phase, LastError: lastErr}
	if phase == "" {
		st.Phase = store.PhasePending
	}
	cond := func(typ, status, reason, msg string) {
		st.Conditions = append(st.Conditions, store.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransition: now})
	}
	switch {
	case c != nil && c.revision() == p.Revision:
		cond(condApplied, "True", "ChildRunning", fmt.Sprintf("revision %d runs as pid %d (run %d)", p.Revision, c.pid, c.run.ID))
	case phase == store.PhaseCompleted:
		cond(condApplied, "True", "Completed", fmt.Sprintf("revision %d ran to completion", p.Revision))
	case c != nil:
		cond(condApplied, "False", "OlderRevisionRunning", fmt.Sprintf("revision %d still runs; revision %d is applied", c.revision(), p.Revision))
	default:
		cond(condApplied, "False", "NotRunning", fmt.Sprintf("revision %d is applied; no child runs it", p.Revision))
	}
	ready, why := r.readiness(p, c)
	st.Ready = ready
	if ready {
		cond(condReady, "True", "AllHealthy", why)
	} else {
		cond(condReady, "False", "NotReady", why)
	}
	switch {
	case lastErr != "" && !nextRetry.IsZero() && nextRetry.After(time.Now()) && c == nil:
		cond(condFailed, "True", "Crashed", fmt.Sprintf("%s (failure %d; restarting at %s)", lastErr, failures, nextRetry.UTC().Format(time.RFC3339)))
	case lastErr != "" && permanent:
		cond(condFailed, "True", "CannotStart", lastErr+" (not retried until a new revision is applied)")
	case lastErr != "":
		cond(condFailed, "False", "Recovered", "last failure: "+lastErr)
	default:
		cond(condFailed, "False", "NoFailure", "")
	}
	return st
}

// readiness says whether the child of the applied revision runs with every
// component registered and healthy.
func (r *reconciler) readiness(p store.Pipeline, c *child) (bool, string) {
	if c == nil || c.revision() != p.Revision {
		return false, "no child runs the applied revision"
	}
	want := map[string]bool{}
	if ps := parseSpec("", p.Spec); ps.pl != nil {
		for _, n := range ps.order {
			want[n] = true
		}
	}
	var missing, unhealthy []string
	have := map[string]controlplane.Entry{}
	for _, e := range r.components(p.Name, c.revision()) {
		have[e.Metadata[report.MetaComponent]] = e
	}
	for _, n := range slices.Sorted(maps.Keys(want)) {
		e, ok := have[n]
		switch {
		case !ok:
			missing = append(missing, n)
		case e.Health != controlplane.HealthHealthy:
			unhealthy = append(unhealthy, n+" ("+e.Health.String()+")")
		}
	}
	switch {
	case len(missing) > 0:
		return false, "not registered yet: " + strings.Join(missing, ", ")
	case len(unhealthy) > 0:
		return false, "not healthy: " + strings.Join(unhealthy, ", ")
	}
	return true, fmt.Sprintf("all %d components heartbeat healthy", len(want))
}

// snapshot returns a copy of what is observed about name (nil: nothing).
func (r *reconciler) snapshot(name string) *observedView {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.observed[name]
	if o == nil {
		return nil
	}
	v := &observedView{phase: o.phase, since: o.phaseSince, restarts: o.restarts, lastError: o.lastError, nextRetry: o.nextRetry}
	if o.child != nil {
		v.pid, v.runID, v.revision = o.child.pid, o.child.run.ID, o.child.revision()
	} else if o.lastRun != nil {
		v.runID = o.lastRun.ID
	}
	return v
}

// observedView is what the API shows of observed state.
type observedView struct {
	phase     store.Phase
	since     time.Time
	pid       int
	runID     int64
	revision  int64
	restarts  int
	lastError string
	nextRetry time.Time
}

// descendants lists the processes below pid (children, grandchildren…),
// read from /proc.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p] = pp
	}
	var out []int
	frontier := []int{pid}
	for len(frontier) > 0 {
		cur := frontier[0]
		frontier = frontier[1:]
		for p, pp := range parent {
			if pp == cur {
				out = append(out, p)
				frontier = append(frontier, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// waitGone waits up to d for every pid to exit; stragglers get SIGKILL.
func waitGone(pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range left {
				killPID(p)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
