package external

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// ProtocolNone is `protocol: none`: the component moves its data itself
// (each reads its upstream's address from its own environment), as the
// components of the earlier flowctl's older ecosystem do. flowctl starts
// it, waits for it to register through any control-plane service
// (flowctl.ControlPlane, flowctl.v1 or the native one), restarts it when it
// exits or stops heartbeating past its TTL, and stops it at the end; it
// streams no events to or from it.
const ProtocolNone = spec.ProtocolNone

func init() { RegisterProtocol(noneProtocol{}) }

type noneProtocol struct{}

func (noneProtocol) Name() string { return ProtocolNone }

// Launch adds nothing: such a component takes its ports from its own env.
func (noneProtocol) Launch(*Runtime, *spec.Component) (Launch, error) { return Launch{}, nil }

// Ready waits for the component's registration; there is nothing to
// connect to.
func (noneProtocol) Ready(ctx context.Context, rt *Runtime, inst *Instance) (Conns, error) {
	if _, err := waitRegistered(ctx, rt, inst); err != nil {
		return Conns{}, err
	}
	return Conns{}, nil
}

// SelfMoving is a `protocol: none` component as the engine sees it: a
// node of its role through which no event passes. Open starts it — the
// first Open of a run starts every such component in input order, each
// once its inputs registered; Close stops it. As a source, Run lasts until
// the run stops, the component exits with status 0 (done), or a
// self-moving component of the run fails for good, which fails the run.
type SelfMoving struct {
	s *Supervisor
	g *noneGroup
}

// Supervisor returns the supervisor behind the adapter.
func (a *SelfMoving) Supervisor() *Supervisor { return a.s }

// Open starts the component (with the others of the run, in input order)
// and waits until it registered.
func (a *SelfMoving) Open(ctx context.Context) error { return a.g.open(ctx, a.s) }

// Close stops the component (SIGTERM, stop_grace, SIGKILL).
func (a *SelfMoving) Close(ctx context.Context) error { return a.s.Stop(ctx) }

// Run implements flow.Source; it emits nothing.
func (a *SelfMoving) Run(ctx context.Context, _ flow.Emitter) error {
	select {
	case <-ctx.Done():
		return nil
	case <-a.s.done: // exhausted (exit 0), failed or stopped
		return a.s.Err()
	case <-a.g.failed:
		return a.g.failure()
	}
}

// Process implements flow.Processor. flowctl routes no event to a
// self-moving component (the spec forbids such edges), so a call is a bug.
func (a *SelfMoving) Process(_ context.Context, _ *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	return out, fmt.Errorf("component %q moves its data itself (protocol: none) and takes no events from flowctl: %w", a.s.Name(), flow.ErrStopRun)
}

// Write implements flow.Sink; see Process.
func (a *SelfMoving) Write(context.Context, []*flow.Event) error {
	return fmt.Errorf("component %q moves its data itself (protocol: none) and takes no events from flowctl: %w", a.s.Name(), flow.ErrStopRun)
}

// noneGroup starts the self-moving components of a run in input order and
// notes the first that fails for good.
type noneGroup struct {
	once    sync.Once
	mu      sync.Mutex
	order   []*Supervisor         // built, in the order Build saw them
	inputs  map[string][]string   // component → its inputs
	results map[*Supervisor]error // outcome of the ordered start

	failOnce sync.Once
	failed   chan struct{}
	err      error
}

func newNoneGroup() *noneGroup {
	return &noneGroup{inputs: map[string][]string{}, results: map[*Supervisor]error{}, failed: make(chan struct{})}
}

// add registers a built component with the group.
func (g *noneGroup) add(c *spec.Component, s *Supervisor) *SelfMoving {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.order = append(g.order, s)
	for _, in := range c.Inputs {
		g.inputs[c.Name] = append(g.inputs[c.Name], in.From)
	}
	return &SelfMoving{s: s, g: g}
}

// open starts every component built so far on the first call, in input
// order; a component built later (a reload) starts on its own Open.
func (g *noneGroup) open(ctx context.Context, s *Supervisor) error {
	g.once.Do(func() { g.startAll(ctx) })
	g.mu.Lock()
	err, ok := g.results[s]
	g.mu.Unlock()
	if !ok {
		err = g.start(ctx, s)
	}
	return err
}

// startAll starts the components in topological order of their inputs,
// each after those it reads from registered (Start returns once it did).
// When one fails, those after it are not started.
func (g *noneGroup) startAll(ctx context.Context) {
	g.mu.Lock()
	sups := append([]*Supervisor(nil), g.order...)
	g.mu.Unlock()
	var failed error
	for _, s := range topoOrder(sups, g.inputs) {
		var err error
		if failed != nil {
			err = fmt.Errorf("component %q not started: %w", s.Name(), failed)
		} else if err = g.start(ctx, s); err != nil {
			failed = fmt.Errorf("component %q, started before it, failed: %w", s.Name(), err)
		}
		g.mu.Lock()
		g.results[s] = err
		g.mu.Unlock()
	}
}

// start starts s and, once it runs, watches it for a terminal failure.
func (g *noneGroup) start(ctx context.Context, s *Supervisor) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	go func() {
		<-s.done
		if err := s.Err(); err != nil {
			g.failOnce.Do(func() {
				g.mu.Lock()
				g.err = err
				g.mu.Unlock()
				close(g.failed)
			})
		}
	}()
	return nil
}

func (g *noneGroup) failure() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		return errors.New("a self-moving component failed")
	}
	return g.err
}

// topoOrder orders sups so that each comes after the ones it reads from
// (the spec rejected cycles); the order among independent ones is kept.
func topoOrder(sups []*Supervisor, inputs map[string][]string) []*Supervisor {
	byName := map[string]*Supervisor{}
	for _, s := range sups {
		byName[s.Name()] = s
	}
	done := map[string]bool{}
	var out []*Supervisor
	var visit func(s *Supervisor, depth int)
	visit = func(s *Supervisor, depth int) {
		if done[s.Name()] || depth > len(sups) {
			return
		}
		for _, in := range inputs[s.Name()] {
			if up, ok := byName[in]; ok {
				visit(up, depth+1)
			}
		}
		if !done[s.Name()] {
			done[s.Name()] = true
			out = append(out, s)
		}
	}
	for _, s := range sups {
		visit(s, 0)
	}
	return out
}

var (
	_ flow.Source    = (*SelfMoving)(nil)
	_ flow.Processor = (*SelfMoving)(nil)
	_ flow.Sink      = (*SelfMoving)(nil)
	_ flow.Opener    = (*SelfMoving)(nil)
	_ flow.Closer    = (*SelfMoving)(nil)
)
