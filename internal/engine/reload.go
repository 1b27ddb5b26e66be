package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/spec"
)

// ErrReloadNeedsRestart is what Reload returns (wrapped, with the reason)
// when the new pipeline cannot be applied to the running one in place:
// the graph's shape changed, or a component changed in a way only a
// restart applies. The running pipeline is left as it was.
var ErrReloadNeedsRestart = errors.New("the change needs a restart of the run")

// gate lets Reload hold a processor's or sink's workers between batches:
// a worker enters after it popped a batch and leaves once it handed the
// batch on; while paused, workers wait before entering.
type gate struct {
	mu     sync.Mutex
	active int           // workers handling a batch
	resume chan struct{} // non-nil while paused; closed on resume
	idle   chan struct{} // closed when active drops to 0 while paused

	// swap guards the component fields Reload replaces against the
	// node's final close; closed is set by that close.
	swap   sync.Mutex
	closed bool
}

// enter waits while the node is paused; false means the run was stopped
// hard meanwhile.
func (n *node) enter() bool {
	g := &n.gate
	for {
		g.mu.Lock()
		if r := g.resume; r != nil {
			g.mu.Unlock()
			select {
			case <-r:
				continue
			case <-n.e.hard:
				return false
			}
		}
		g.active++
		g.mu.Unlock()
		return true
	}
}

// leave ends a worker's batch.
func (n *node) leave() {
	g := &n.gate
	g.mu.Lock()
	g.active--
	if g.active == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
}

// pause stops the workers taking new batches and waits until the batches
// they hold are handed on (drained). On ctx's end it resumes and fails.
func (n *node) pause(ctx context.Context) error {
	g := &n.gate
	g.mu.Lock()
	g.resume = make(chan struct{})
	var idle chan struct{}
	if g.active > 0 {
		idle = make(chan struct{})
		g.idle = idle
	}
	g.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		n.unpause()
		return fmt.Errorf("drain %s %q: %w", n.role, n.name, ctx.Err())
	case <-n.e.hard:
		n.unpause()
		return fmt.Errorf("drain %s %q: %w", n.role, n.name, errStopped)
	}
}

func (n *node) unpause() {
	g := &n.gate
	g.mu.Lock()
	if g.resume != nil {
		close(g.resume)
		g.resume = nil
	}
	g.idle = nil
	g.mu.Unlock()
}

// Reload applies p to the running pipeline in place, for a change that
// keeps the graph's shape: the same components (names, roles, runners,
// types), the same edges, and only the config or on_error of built-in
// processors and sinks changed. Each changed component is drained (its
// workers finish the batches they hold and take no new ones), closed,
// rebuilt from p, opened and resumed; events wait in its input queue
// meanwhile, so none is lost and none is acknowledged early. Components
// that did not change keep running and keep their counters.
//
// Reload returns an error wrapping ErrReloadNeedsRestart, naming why, when
// p changes anything else (the run is untouched then); another error
// when a changed component failed to build, drain (within ctx), close or
// open; a component whose new instance fails to open is opened again as
// it was. Reload may be called while Run runs, once every component is
// open (Stats().Ready).
//
// A reloaded sink is opened again like at the start of a run: a file sink
// without append: true starts its file over. A reloaded processor loses
// its state (a dedupe forgets the ids it saw). Ordered components with
// parallelism above 1, sources and external components are not reloaded.
func (e *Engine) Reload(ctx context.Context, p *spec.Pipeline) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if !e.ready.Load() || e.finished.Load() {
		return errors.New("reload: the pipeline is not running")
	}
	g, err := graph.Build(p)
	if err != nil {
		return fmt.Errorf("reload: build graph: %w", err)
	}
	names, err := reloadPlan(e.g, g)
	if err != nil {
		return err
	}
	byName := make(map[string]*node, len(e.nodes))
	for _, n := range e.nodes {
		byName[n.name] = n
	}
	// Build every new instance first: a bad config changes nothing.
	changed := make([]*node, len(names))
	fresh := make([]*node, len(names))
	saved := e.p
	e.p = p
	for i, name := range names {
		changed[i] = byName[name]
		fresh[i], err = e.buildNode(g.Node(name), e.reg)
		if err != nil {
			e.p = saved
			return fmt.Errorf("reload: %w", err)
		}
	}
	e.p = saved
	var errs []error
	for i, n := range changed {
		if err := n.replace(ctx, fresh[i]); err != nil {
			errs = append(errs, err)
			continue
		}
		e.log.Info("component reloaded", logKeyComponent, n.name)
	}
	if len(errs) > 0 {
		return fmt.Errorf("reload: %w", errors.Join(errs...))
	}
	e.p, e.g = p, g
	for _, n := range e.nodes {
		n.gn = g.Node(n.name)
	}
	return nil
}

// CheckReload reports which components Reload would replace to go from
// old to next (names in topological order; none when nothing changed), or
// an error wrapping ErrReloadNeedsRestart naming why next cannot be
// applied to a run of old in place.
func CheckReload(old, next *spec.Pipeline) ([]string, error) {
	og, err := graph.Build(old)
	if err != nil {
		return nil, fmt.Errorf("reload: build graph: %w", err)
	}
	ng, err := graph.Build(next)
	if err != nil {
		return nil, fmt.Errorf("reload: build graph: %w", err)
	}
	return reloadPlan(og, ng)
}

// reloadPlan returns the names of the components whose config or on_error
// changed from og to ng, or an error wrapping ErrReloadNeedsRestart when
// ng cannot be applied in place.
func reloadPlan(og, ng *graph.Graph) ([]string, error) {
	restart := func(format string, a ...any) error {
		return fmt.Errorf("reload: %s: %w", fmt.Sprintf(format, a...), ErrReloadNeedsRestart)
	}
	if len(ng.Nodes()) != len(og.Nodes()) {
		return nil, restart("the number of components changed (%d → %d)", len(og.Nodes()), len(ng.Nodes()))
	}
	var changed []string
	for _, on := range og.Nodes() {
		nn := ng.Node(on.Name)
		if nn == nil {
			return nil, restart("component %q was removed", on.Name)
		}
		if nn.Role != on.Role || nn.DeadLetter != on.DeadLetter {
			return nil, restart("component %q changed its role", on.Name)
		}
		if !reflect.DeepEqual(edges(on), edges(nn)) {
			return nil, restart("the inputs or outputs of %q changed", on.Name)
		}
		oc, nc := on.Component, nn.Component
		if !reflect.DeepEqual(shape(oc), shape(nc)) {
			return nil, restart("component %q changed more than its config and on_error", on.Name)
		}
		if reflect.DeepEqual(oc.Config, nc.Config) && reflect.DeepEqual(oc.OnError, nc.OnError) {
			continue
		}
		switch {
		case on.Role == flow.RoleSource:
			return nil, restart("source %q changed (a source is restarted, not reloaded)", on.Name)
		case external(nc):
			return nil, restart("external component %q changed", on.Name)
		case nc.Ordered && nc.Parallelism > 1:
			return nil, restart("ordered parallel component %q changed", on.Name)
		}
		changed = append(changed, on.Name)
	}
	return changed, nil
}

// edges is a node's edges in a comparable form.
func edges(gn *graph.Node) [2][]string {
	var out [2][]string
	for _, in := range gn.Inputs {
		out[0] = append(out[0], fmt.Sprintf("%s%v", in.From, in.Types))
	}
	for _, o := range gn.Outputs {
		out[1] = append(out[1], fmt.Sprintf("%s%v", o.To, o.Types))
	}
	slices.Sort(out[0])
	slices.Sort(out[1])
	return out
}

// shape is c without what Reload may change or what does not matter at
// run time (positions in the file).
func shape(c *spec.Component) spec.Component {
	s := *c
	s.Config, s.OnError = nil, spec.OnError{}
	s.Pos, s.Positions = spec.Pos{}, nil
	s.Inputs = slices.Clone(s.Inputs)
	for i := range s.Inputs {
		s.Inputs[i].Pos = spec.Pos{}
	}
	return s
}

// replace drains n, closes its component and swaps in fresh's, opened.
// If the new one fails to open, the old one is opened again.
func (n *node) replace(ctx context.Context, fresh *node) error {
	if err := n.pause(ctx); err != nil {
		return err
	}
	defer n.unpause()
	n.gate.swap.Lock()
	defer n.gate.swap.Unlock()
	if n.gate.closed {
		return fmt.Errorf("%s %q already finished", n.role, n.name)
	}
	if c, ok := n.comp.(flow.Closer); ok {
		cctx, cancel := context.WithTimeout(ctx, n.e.opts.Grace)
		err := c.Close(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("close %s %q: %w", n.role, n.name, err)
		}
	}
	if o, ok := fresh.comp.(flow.Opener); ok {
		if err := o.Open(ctx); err != nil {
			openErr := fmt.Errorf("open new %s %q: %w", n.role, n.name, err)
			if o, ok := n.comp.(flow.Opener); ok {
				if err := o.Open(ctx); err != nil {
					n.e.fail(fmt.Errorf("reopen %s %q after a failed reload: %w", n.role, n.name, err))
				}
			}
			return openErr
		}
	}
	n.comp, n.proc, n.batchProc, n.sink = fresh.comp, fresh.proc, fresh.batchProc, fresh.sink
	n.policy, n.log = fresh.policy, fresh.log
	return nil
}
