package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/tap"
)

// DefaultGrace is the drain time when Options.Grace is zero.
const DefaultGrace = 10 * time.Second

// DefaultBuffer is the input queue capacity, in events, of a component
// whose buffer is zero.
const DefaultBuffer = 1024

// stopWait bounds how long a hard stop waits for components that ignore
// their context before Run returns anyway.
const stopWait = 5 * time.Second

// Options tune a run.
type Options struct {
	// Grace is how long a cancelled run may drain [DefaultGrace].
	Grace time.Duration
	// Logger receives the engine's and the components' logs (scoped with
	// the pipeline and component names) [discard].
	Logger *slog.Logger
	// Dir resolves relative paths in component configs [the directory of
	// the pipeline file].
	Dir string
	// StateDir is handed to components as BuildContext.StateDir: the
	// pipeline's state directory, "" for none.
	StateDir string
	// External builds a component run by a command, an image or a url
	// (Runner other than builtin): a flow.Source, flow.Processor (a
	// flow.BatchProcessor is preferred) or flow.Sink of the component's
	// role, optionally a flow.Opener/flow.Closer. Nil refuses such
	// components with ErrExternal.
	External func(c *spec.Component, bc flow.BuildContext) (any, error)
	// Checkpoints, if not nil, keeps the run's checkpoints: Run resumes
	// the sources and sinks from what it holds and commits to it every
	// CheckpointInterval [DefaultCheckpointInterval] and when it ends.
	Checkpoints        flow.CheckpointStore
	CheckpointInterval time.Duration
	// Taps, if not nil, is handed every batch a component emits and every
	// batch it is handed, for `flowctl tap` (one atomic load per batch
	// when nobody watches).
	Taps *tap.Hub
	// Tracer, if not nil, traces every source batch (see trace.go and
	// docs/tracing.md); nil costs a nil check per batch.
	Tracer trace.Tracer
}

// Engine runs one pipeline once. Build it with New, start it with Run;
// Stats may be read at any time from any goroutine.
type Engine struct {
	p    *spec.Pipeline
	g    *graph.Graph
	opts Options
	log  *slog.Logger
	dead *node
	reg  *flow.Registry

	// nodes is the current node list (topological order, dead-letter sink
	// last). Reload replaces the slice, never changes one: readers (Stats,
	// the metrics) may keep what they loaded.
	nodes atomic.Pointer[[]*node]

	// reloadMu serialises Reload calls and guards p and g against them.
	reloadMu sync.Mutex

	// srcCtx is the parent of every source's context; set by Run before
	// ready.
	srcCtx context.Context

	// live counts the node goroutines and the Reload in progress; allDone
	// is closed when it drops to zero, and nothing starts after that.
	liveMu  sync.Mutex
	live    int
	over    bool
	allDone chan struct{}

	// retired holds the nodes Reload took out of the list that may still
	// matter: a source with unacknowledged batches, a component still
	// draining. stop wakes them and Run's end sweeps their pending acks.
	retiredMu sync.Mutex
	retired   []*node

	running  atomic.Bool
	ready    atomic.Bool
	finished atomic.Bool
	started  atomic.Pointer[time.Time]
	ended    atomic.Pointer[time.Time]
	epoch    time.Time

	hardCtx    context.Context
	hardCancel context.CancelFunc
	hard       <-chan struct{}
	stopOnce   sync.Once

	errMu     sync.Mutex
	cancelSrc context.CancelFunc // guarded by errMu
	err       error              // first component failure
	stopCause error              // why the run was stopped hard (grace, abort)

	ckMu    sync.Mutex // serialises checkpoint commits
	commits atomic.Int64
}

// New builds every component of p (no side effects: nothing is opened).
// It refuses types reg does not know, and components run by a command, an
// image or a url unless Options.External builds them.
func New(p *spec.Pipeline, reg *flow.Registry, opts Options) (*Engine, error) {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" && p.File != "" {
		opts.Dir = filepath.Dir(p.File)
	}
	for _, c := range append(p.Components(), p.DeadLetter) {
		if c != nil && external(c) && opts.External == nil {
			return nil, fmt.Errorf("component %q runs a command/image: %w", c.Name, ErrExternal)
		}
	}
	g, err := graph.Build(p)
	if err != nil {
		return nil, fmt.Errorf("build graph: %w", err)
	}
	e := &Engine{p: p, g: g, reg: reg, opts: opts, log: opts.Logger.With(logKeyPipeline, p.Name),
		allDone: make(chan struct{})}
	e.hardCtx, e.hardCancel = context.WithCancel(context.Background())
	e.hard = e.hardCtx.Done()

	byName := map[string]*node{}
	producersOfDead := 0
	var nodes []*node
	for _, gn := range g.Nodes() {
		n, err := e.buildNode(gn, reg)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		byName[n.name] = n
		if gn.DeadLetter {
			e.dead = n
		} else {
			producersOfDead++
		}
	}
	for _, n := range nodes {
		n.outs = outsOf(n.gn, byName)
	}
	if e.dead != nil {
		e.dead.in.producers = producersOfDead
	}
	e.nodes.Store(&nodes)
	return e, nil
}

// external reports whether c is run by a command, a container or is a
// remote component (url) rather than a built-in.
func external(c *spec.Component) bool {
	switch c.Runner {
	case spec.RunBuiltin:
		return false
	case "":
		return c.Image != "" || len(c.Command) > 0 || c.URL != ""
	}
	return true // a process, a container, a remote component

}

func (e *Engine) buildNode(gn *graph.Node, reg *flow.Registry) (*node, error) {
	c := gn.Component
	log := e.log.With(logKeyComponent, gn.Name)
	bc := flow.BuildContext{Name: gn.Name, Pipeline: e.p.Name, Config: c.Config, Dir: e.opts.Dir, Logger: log, StateDir: e.opts.StateDir}
	var comp any
	var err error
	if external(c) {
		comp, err = e.opts.External(c, bc)
	} else {
		cs, lerr := reg.Lookup(gn.Role, c.Type)
		if lerr != nil {
			return nil, fmt.Errorf("component %q: %w", gn.Name, lerr)
		}
		comp, err = cs.New(bc)
	}
	if err != nil {
		return nil, fmt.Errorf("build %s %q: %w", gn.Role, gn.Name, err)
	}
	n := &node{
		e: e, gn: gn, name: gn.Name, role: gn.Role, deadLetter: gn.DeadLetter,
		comp: comp, log: log, stats: newCounters(),
		parallel: max(1, c.Parallelism), ordered: c.Ordered,
	}
	n.initRuntime()
	var ok bool
	switch gn.Role {
	case flow.RoleSource:
		n.src, ok = comp.(flow.Source)
		n.track = newSrcTrack()
	case flow.RoleProcessor:
		n.proc, ok = comp.(flow.Processor)
		n.batchProc, _ = comp.(flow.BatchProcessor)
	case flow.RoleSink:
		n.sink, ok = comp.(flow.Sink)
		n.parallel = 1
		if cs, isCS := comp.(flow.CheckpointSink); isCS {
			n.sinkTrack = &sinkTrack{cs: cs, key: cs.OutputKey()}
		}
	}
	if !ok {
		return nil, fmt.Errorf("build %s %q: type %q does not implement a %s", gn.Role, gn.Name, c.Type, gn.Role)
	}
	if gn.Role != flow.RoleSource {
		buf := c.Buffer
		if buf <= 0 {
			buf = DefaultBuffer
		}
		n.in = newQueue(buf, len(gn.Inputs))
	}
	n.policy = resolvePolicy(c.OnError, gn.Role, gn.DeadLetter, e.g.DeadLetter() != nil)
	return n, nil
}

// initRuntime sets up what a node needs to run, apart from its component:
// its pending acks, its done channel and its synchronisation.
func (n *node) initRuntime() {
	n.pending = map[*ack]struct{}{}
	n.done = make(chan struct{})
	n.seq.cond = sync.NewCond(&n.seq.mu)
	n.gate.pausing = make(chan struct{})
}

// Graph returns the graph of the pipeline the engine runs: the last one
// Reload applied (even in part, when it returned an error).
func (e *Engine) Graph() *graph.Graph {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.g
}

// now is the run-relative monotonic time in nanoseconds.
func (e *Engine) now() int64 { return int64(time.Since(e.epoch)) }

// Run opens every component (sinks first), runs the pipeline and returns
// when it ended: nil when every source finished (or ctx was cancelled)
// and everything emitted was written, filtered, dropped or dead-lettered.
// Cancelling ctx stops the sources and drains within Options.Grace; then
// the run is stopped hard and Run returns ErrGraceExpired. A component
// failure under on_error stop, a source error or a failed Open/Close
// returns an error naming the component. Run may be called once.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("engine: Run called twice")
	}
	now := time.Now()
	e.epoch = now
	e.started.Store(&now)
	defer func() {
		end := time.Now()
		e.ended.Store(&end)
		e.finished.Store(true)
		e.hardCancel()
	}()

	nodes := e.list()
	if err := e.resume(nodes); err != nil {
		return err
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if o, ok := n.comp.(flow.Opener); ok {
			if err := o.Open(ctx); err != nil {
				for _, n := range nodes[i+1:] {
					if err := n.close(); err != nil {
						e.recordErr(err)
					}
				}
				return fmt.Errorf("open %s %q: %w", n.role, n.name, err)
			}
		}
		n.opened()
	}
	// What the sinks hold now is kept by any later run, before a source
	// emits anything.
	if err := e.checkpoint(ctx); err != nil {
		for _, n := range nodes {
			if err := n.close(); err != nil {
				e.recordErr(err)
			}
		}
		return err
	}
	ckStop := make(chan struct{})
	var ckWG sync.WaitGroup
	if e.opts.Checkpoints != nil {
		ckWG.Add(1)
		go e.checkpointLoop(ckStop, &ckWG)
	}
	defer func() {
		close(ckStop)
		ckWG.Wait()
	}()
	srcCtx, cancelSrc := context.WithCancel(ctx)
	defer cancelSrc()
	e.errMu.Lock()
	e.cancelSrc = cancelSrc
	e.errMu.Unlock()
	if e.stopped() { // Abort came before the sources started
		cancelSrc()
	}
	e.srcCtx = srcCtx

	// Run holds a reference to live until every node started, so that
	// allDone cannot close early.
	e.liveMu.Lock()
	e.live = 1
	for _, n := range nodes {
		e.startLocked(n)
	}
	e.liveMu.Unlock()
	e.ready.Store(true)
	e.release()
	allDone := e.allDone

	select {
	case <-allDone:
	case <-ctx.Done():
		grace := time.NewTimer(e.opts.Grace)
		select {
		case <-allDone:
		case <-grace.C:
			e.stop(ErrGraceExpired)
		case <-e.hard:
		}
		grace.Stop()
	case <-e.hard:
	}
	select {
	case <-allDone:
	case <-e.hard:
		select {
		case <-allDone:
		case <-time.After(stopWait):
			e.log.Error("components did not stop in time after a hard stop", logKeyWait, stopWait)
		}
	}

	e.errMu.Lock()
	err, cause := e.err, e.stopCause
	e.errMu.Unlock()
	sources := e.sources()
	pending := 0
	for _, n := range sources {
		pending += n.pendingCount()
	}
	sweep := err
	if sweep == nil {
		sweep = cause
	}
	if sweep == nil && pending > 0 {
		sweep = errors.New("run ended before the batch was written")
	}
	for _, n := range sources {
		n.failPending(sweep)
	}
	// Every node returned: commit what was acknowledged, whatever ended
	// the run (the components closed, so their output is on disk).
	close(ckStop)
	ckWG.Wait()
	ckStop = make(chan struct{}) // for the deferred close
	if cerr := e.checkpoint(context.Background()); cerr != nil {
		if err == nil {
			err = cerr
		} else {
			e.log.Error("final checkpoint failed", logKeyError, cerr)
		}
	}
	switch {
	case err != nil:
		return err
	case errors.Is(cause, ErrGraceExpired):
		return fmt.Errorf("%w (%s): %d source batches were not acknowledged", ErrGraceExpired, e.opts.Grace, pending)
	case cause != nil:
		return cause
	case pending > 0:
		return fmt.Errorf("run ended with %d source batches not acknowledged", pending)
	}
	return nil
}

// Abort stops a running pipeline at once: nothing more is written, the
// sources' done callbacks get an error, and Run returns ErrAborted.
func (e *Engine) Abort() { e.stop(ErrAborted) }

// stop stops the run hard, remembering why.
func (e *Engine) stop(cause error) {
	e.stopOnce.Do(func() {
		e.errMu.Lock()
		if e.stopCause == nil {
			e.stopCause = cause
		}
		cancelSrc := e.cancelSrc
		e.errMu.Unlock()
		if cancelSrc != nil {
			cancelSrc()
		}
		e.hardCancel()
		for _, n := range append(e.list(), e.retiredNodes()...) {
			n.seq.mu.Lock()
			n.seq.cond.Broadcast()
			n.seq.mu.Unlock()
		}
	})
}

// fail records a component failure (the first one wins) and stops the
// run.
func (e *Engine) fail(err error) {
	e.errMu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.errMu.Unlock()
	e.stop(err)
}

// recordErr records an error that does not stop the run (a Close that
// failed after the node finished).
func (e *Engine) recordErr(err error) {
	e.errMu.Lock()
	defer e.errMu.Unlock()
	if e.err == nil {
		e.err = err
	}
}

// stopped reports whether the run was stopped hard.
func (e *Engine) stopped() bool {
	select {
	case <-e.hard:
		return true
	default:
		return false
	}
}

// list returns the current nodes (topological order, dead-letter sink
// last). The slice must not be modified.
func (e *Engine) list() []*node { return *e.nodes.Load() }

// retiredNodes returns a copy of the nodes Reload took out that may still
// matter.
func (e *Engine) retiredNodes() []*node {
	e.retiredMu.Lock()
	defer e.retiredMu.Unlock()
	return slices.Clone(e.retired)
}

// sources returns every source node that may hold pending acks: the
// current ones and the retired ones.
func (e *Engine) sources() []*node {
	var out []*node
	for _, n := range append(e.list(), e.retiredNodes()...) {
		if n.role == flow.RoleSource {
			out = append(out, n)
		}
	}
	return out
}

// startLocked starts n's goroutine, counted in live. e.liveMu is held and
// the run is not over.
func (e *Engine) startLocked(n *node) {
	if n.role == flow.RoleSource {
		n.ctx, n.cancel = context.WithCancel(e.srcCtx)
	}
	e.live++
	go func() {
		defer e.release()
		n.run()
	}()
}

// acquire counts the caller in live (a Reload), unless every node already
// finished.
func (e *Engine) acquire() bool {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	if e.over {
		return false
	}
	e.live++
	return true
}

// release drops one reference to live; the last closes allDone.
func (e *Engine) release() {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	e.live--
	if e.live == 0 && !e.over {
		e.over = true
		close(e.allDone)
	}
}

// outsOf returns gn's output edges to the nodes of byName; an edge to a
// name byName lacks is left out.
func outsOf(gn *graph.Node, byName map[string]*node) []outEdge {
	var outs []outEdge
	for _, out := range gn.Outputs {
		if to := byName[out.To]; to != nil {
			outs = append(outs, outEdge{to: to, types: out.Types})
		}
	}
	return outs
}
