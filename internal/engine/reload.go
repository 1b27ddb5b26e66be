package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/spec"
)

// ErrReloadNeedsRestart is what Reload and CheckReload return (wrapped,
// with the reason) when the new pipeline cannot be applied to the running
// one in place: the dead-letter sink or the pipeline's name changed, or a
// component to change already finished. The running pipeline is left as
// it was. It is graph.ErrReloadNeedsRestart: the plan is decided there.
var ErrReloadNeedsRestart = graph.ErrReloadNeedsRestart

// Plan is what applying a new pipeline to a running one does, by
// component name (see graph.ReloadPlan).
type Plan = graph.ReloadPlan

// CheckReload returns what Reload would do to a run of old to apply next,
// or an error wrapping ErrReloadNeedsRestart naming why next cannot be
// applied in place. (Reload may still refuse a change CheckReload allows,
// when the component concerned already finished in the running pipeline.)
func CheckReload(old, next *spec.Pipeline) (Plan, error) { return graph.CheckReload(old, next) }

// Reload applies p to the running pipeline in place. Components whose
// spec did not change keep running untouched: the same instance (an
// external child keeps its process), the same counters, their goroutines
// never stop. The rest is applied in this order:
//
//  1. Everything new is built; a build error returns before anything is
//     touched.
//  2. Added processors and sinks are opened, downstream first, connected
//     to what they feed and started, waiting for input.
//  3. Edges: each running component is held between batches while its
//     outputs are switched to p's at once (make before break), so a batch
//     takes either the old way or the new one, never neither. The queue
//     an edge reaches counts one producer more first; the queue an edge
//     leaves hears of it once every component was switched.
//  4. Removed components (or whose role changed), upstream first: nothing
//     sends to one any more; it processes what its queue and workers
//     hold, hands it downstream, tells its downstream queues it finished
//     and is closed. A removed source is cancelled, what it emitted is
//     acknowledged (waited for, within ctx), then it is closed.
//  5. Changed components (any field of their spec but their inputs),
//     upstream first; the old instance drains before the new one starts.
//     A processor or sink: its producers are held (one that pushes into
//     it blocks, as under backpressure), its queue and workers drain
//     downstream, the old instance is closed, the new one opened and
//     started, and the producers go on into it. A source: its Run is
//     cancelled (what it emitted keeps its acks; an Emit caught half-way
//     follows the usual rules), what it emitted is acknowledged (waited
//     for, within ctx), it is closed, the new one opened and run. The
//     downstream queues never see a changed component finish. It keeps
//     its counters (they go on rising across the reload); its queue is
//     new, sized from the new buffer.
//  6. Added sources open and start.
//
// A reloaded sink is opened again like at the start of a run (a file sink
// without append: true starts its file over); a reloaded processor loses
// its state (a dedupe forgets the ids it saw). Added sources open after
// removed and changed components closed, so a renamed source may listen on
// its predecessor's port; added processors and sinks open before removed
// ones close (what is upstream needs somewhere to send meanwhile), so a
// renamed sink that truncates its predecessor's file does so while that
// one still writes: rename a sink together with a change of its path.
// Every batch a source handed over is written, filtered, dropped or
// dead-lettered as without a reload, and acknowledged once, after that;
// a batch in a removed component's queue is processed by it first.
//
// Reload returns an error wrapping ErrReloadNeedsRestart, naming why, and
// changes nothing when p adds, removes or changes the dead-letter sink,
// renames the pipeline, or changes a component that already finished (a
// source whose Run returned, a component whose inputs all ended). Other
// failures do not undo what was applied before them; they are returned
// together, each naming its component, and the run goes on:
//   - a changed component's new instance fails to open: the old instance
//     is opened again and goes on with its old spec (the next Reload
//     tries again); if that fails too, the run fails;
//   - an added component fails to open: it is not added, and the edges to
//     and from it are left out;
//   - ctx ends while holding a component or draining one: a changed
//     component stays as it was, a removed one goes on draining and
//     closes itself when done (it leaves Stats at once);
//   - an edge into a component whose inputs all ended is not made;
//   - a close fails (the component is replaced or removed anyway).
//
// No producer is left held. Reload may be called while Run runs, once
// every component is open (Stats().Ready); calls are serialised. Applying
// the running pipeline again is a no-op.
func (e *Engine) Reload(ctx context.Context, p *spec.Pipeline) error {
	return e.ReloadRestarting(ctx, p, nil)
}

// ReloadRestarting is Reload that also treats the components named in
// restart as changed even when their spec is not: they drain, close and
// start anew like a changed one (flowctl run --watch, when the program a
// component runs was rebuilt). A name the new pipeline lacks is ignored.
func (e *Engine) ReloadRestarting(ctx context.Context, p *spec.Pipeline, restart []string) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if !e.ready.Load() || e.finished.Load() || !e.acquire() {
		return errors.New("reload: the pipeline is not running")
	}
	defer e.release()
	e.pruneRetired()

	g, err := graph.Build(p)
	if err != nil {
		return fmt.Errorf("reload: build graph: %w", err)
	}
	var deadGN *graph.Node
	if e.dead != nil {
		deadGN = e.dead.gn
	}
	if err := graph.RestartNeeded(e.p.Name, deadGN, p.Name, g); err != nil {
		return err
	}
	nodes := e.list()
	cur := make([]*graph.Node, len(nodes))
	byName := make(map[string]*node, len(nodes))
	for i, n := range nodes {
		cur[i] = n.gn
		byName[n.name] = n
	}
	plan := graph.PlanReload(cur, g)
	if len(restart) > 0 {
		// Forced ones join the changed, which stay in topological order;
		// the dead-letter sink cannot change in place.
		change := map[string]bool{}
		for _, name := range plan.Change {
			change[name] = true
		}
		kept := plan.Unchanged[:0:0]
		for _, name := range plan.Unchanged {
			if slices.Contains(restart, name) && !g.Node(name).DeadLetter {
				change[name] = true
			} else {
				kept = append(kept, name)
			}
		}
		plan.Unchanged, plan.Change = kept, plan.Change[:0]
		for _, gn := range g.Nodes() {
			if change[gn.Name] {
				plan.Change = append(plan.Change, gn.Name)
			}
		}
	}
	for _, name := range plan.Change {
		if n := byName[name]; n.finished() {
			return graph.RestartError("component %q already finished", name)
		}
	}

	// Build: no side effects, nothing is touched on failure.
	fresh := map[string]*node{}
	for _, name := range slices.Concat(plan.Start, plan.Change) {
		gn := g.Node(name)
		if external(gn.Component) && e.opts.External == nil {
			return fmt.Errorf("reload: component %q runs a command/image: %w", name, ErrExternal)
		}
		n, err := e.buildNode(gn, e.reg)
		if err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		fresh[name] = n
	}

	r := &reload{e: e, ctx: ctx, g: g, byName: byName}
	r.apply(plan, fresh)
	e.p, e.g = p, g
	if len(r.errs) > 0 {
		return fmt.Errorf("reload: %w", errors.Join(r.errs...))
	}
	return nil
}

// reload is one Reload being applied.
type reload struct {
	e      *Engine
	ctx    context.Context
	g      *graph.Graph     // the new graph
	byName map[string]*node // the running nodes by name
	// held are the queues Reload counts as one producer more, so that
	// none ends while the graph changes (a queue that loses its last input
	// before gaining a new one); released at the end.
	held []*queue
	// leaving are the nodes being removed, listed until they finished.
	leaving map[*node]bool
	errs    []error
}

func (r *reload) fail(err error) { r.errs = append(r.errs, err) }

func (r *reload) apply(plan Plan, fresh map[string]*node) {
	e := r.e
	for _, n := range e.list() {
		if n.in != nil && n.in.addProducer() {
			r.held = append(r.held, n.in)
		}
	}
	r.leaving = map[*node]bool{}
	for _, name := range plan.Stop {
		n := r.byName[name]
		r.leaving[n] = true
		delete(r.byName, name) // a component of another role may take the name
	}
	// Added components: opened downstream first, then connected to what
	// they feed and started (their queues held, so that they wait for
	// their inputs). Sources open and start once everything else is in
	// place, removed and changed ones closed: a source renamed in the new
	// file may take over the port or file its predecessor held.
	var startSources, startOthers []string
	for _, name := range plan.Start {
		if fresh[name].role == flow.RoleSource {
			startSources = append(startSources, name)
		} else {
			startOthers = append(startOthers, name)
		}
	}
	added := r.openAdded(startOthers, fresh)
	for _, n := range added {
		if n.role != flow.RoleSource {
			r.startAdded(n)
		}
	}
	// Edges: each running component is switched to its new outputs at
	// once (make before break), so that no batch finds its way cut while
	// the graph changes. A queue an edge leaves hears of it once every new
	// edge is counted, so that none sees its producers drop to zero on
	// the way.
	isAdded := map[*node]bool{}
	for _, n := range added {
		isAdded[n] = true
	}
	var left []*queue
	for _, n := range e.list() {
		// A removed node keeps its outputs: it drains into them.
		if isAdded[n] || n.deadLetter || r.leaving[n] {
			continue
		}
		left = append(left, r.rewire(n, r.g.Node(n.name))...)
	}
	for _, q := range left {
		q.producerDone()
	}
	// Removed components, upstream first so that what one drains reaches
	// what is downstream of it while that still runs.
	for _, name := range slices.Backward(plan.Stop) {
		for n := range r.leaving {
			if n.name != name {
				continue
			}
			if err := r.stop(n); err != nil {
				r.fail(err)
				continue
			}
			e.log.Info("component stopped", logKeyComponent, name)
		}
	}
	// Changed components, upstream first.
	for _, name := range plan.Change {
		if err := r.change(r.byName[name], fresh[name]); err != nil {
			r.fail(err)
			continue
		}
		e.log.Info("component reloaded", logKeyComponent, name) // changed: drained, closed, started anew
	}
	// Added sources, before the held queues are let go (a queue whose
	// only producer was a removed source would end otherwise).
	sources := r.openAdded(startSources, fresh)
	for _, n := range sources {
		r.startAdded(n)
	}
	added = append(added, sources...)
	for _, q := range r.held {
		q.producerDone()
	}
	for _, n := range r.byName {
		if gn := r.g.Node(n.name); gn != nil && gn.Role == n.role && graph.SameSpec(gn.Component, n.gn.Component) {
			n.gn = gn
		}
	}
	r.publish()
	for _, n := range added {
		e.log.Info("component started", logKeyComponent, n.name)
	}
}

// holders returns the running nodes that send to n, upstream first.
func (r *reload) holders(n *node) []*node {
	var out []*node
	for _, u := range append(r.e.list(), r.e.retiredNodes()...) {
		if slices.ContainsFunc(u.outs, func(o outEdge) bool { return o.to == n }) && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// stop removes n, which nothing feeds any more: it drains, finishes and
// is closed. A source is cancelled first, and closed once what it emitted
// was acknowledged.
func (r *reload) stop(n *node) error {
	if hs := slices.DeleteFunc(r.holders(n), func(u *node) bool { return u.ended.Load() }); len(hs) > 0 {
		return fmt.Errorf("remove %s %q: %q still sends to it", n.role, n.name, hs[0].name)
	}
	if !n.takeOver() {
		// It finished and closed itself already.
		r.drop(n)
		return nil
	}
	if n.role == flow.RoleSource {
		n.cancel()
	} else {
		r.release(n.in)
	}
	if err := r.waitDone(n); err != nil {
		if n.handBack() {
			// It goes on draining and finishes itself.
			r.drop(n)
			return fmt.Errorf("remove %s %q: it goes on draining and closes when done: %w", n.role, n.name, err)
		}
		<-n.done
	}
	n.finish()
	var errs []error
	if n.role == flow.RoleSource {
		if err := r.waitAcked(n); err != nil {
			errs = append(errs, fmt.Errorf("remove source %q: closing it with batches not yet acknowledged: %w", n.name, err))
		}
	}
	if err := n.close(); err != nil {
		errs = append(errs, err)
	}
	r.drop(n)
	return errors.Join(errs...)
}

// change drains n and replaces it with x (see Reload).
func (r *reload) change(n, x *node) error {
	e := r.e
	var hs []*node
	if n.role == flow.RoleSource {
		if !n.takeOver() {
			return fmt.Errorf("change source %q: it already finished", n.name)
		}
		n.cancel()
		if err := r.waitDone(n); err != nil {
			if n.handBack() {
				return fmt.Errorf("change source %q: it did not stop: %w", n.name, err)
			}
			<-n.done
		}
		n.ended.Store(true) // x takes its place downstream
	} else {
		hs = r.holders(n)
		if err := pauseAll(r.ctx, hs); err != nil {
			return fmt.Errorf("change %s %q: %w", n.role, n.name, err)
		}
		if err := r.drain(n); err != nil {
			unpauseAll(hs)
			return fmt.Errorf("change %s %q: %w", n.role, n.name, err)
		}
	}
	// n is drained and idle: close it, then open x.
	var errs []error
	if n.role == flow.RoleSource {
		if err := r.waitAcked(n); err != nil {
			errs = append(errs, fmt.Errorf("change source %q: closing it with batches not yet acknowledged: %w", n.name, err))
		}
	}
	if err := n.close(); err != nil {
		errs = append(errs, err)
	}
	if err := carry(n, x); err != nil {
		errs = append(errs, err)
	}
	if err := open(r.ctx, x); err != nil {
		errs = append(errs, fmt.Errorf("open new %s %q (the old one goes on): %w", n.role, n.name, err))
		x = e.renew(n)
		octx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), e.opts.Grace)
		err := open(octx, x)
		cancel()
		if err != nil {
			e.fail(fmt.Errorf("reopen %s %q after a failed reload: %w", n.role, n.name, err))
			unpauseAll(hs)
			return errors.Join(errs...)
		}
	}
	x.stats = n.stats
	x.outs = n.outs
	if x.in != nil {
		live := 0
		for _, u := range hs {
			u.outs = slices.Clone(u.outs)
			for i := range u.outs {
				if u.outs[i].to == n {
					u.outs[i].to = x
				}
			}
			if !u.ended.Load() {
				live++
			}
		}
		x.in.producers = 1 + live // one held until the edges are set
		r.forget(n.in)
		r.held = append(r.held, x.in)
	}
	r.retire(n)
	r.byName[n.name] = x
	e.liveMu.Lock()
	e.startLocked(x)
	e.liveMu.Unlock()
	unpauseAll(hs)
	r.publish()
	return errors.Join(errs...)
}

// drain waits, with n's producers held, until n's queue is empty and its
// workers idle, then lets its workers end without telling its downstream
// queues (its replacement takes its place there). On failure n goes on
// as it was.
func (r *reload) drain(n *node) error {
	if n.in.producerCount() == 0 || !n.takeOver() {
		return errors.New("it already finished its input")
	}
	if err := r.poll(func() bool { return n.in.depth() == 0 }); err != nil {
		n.handBack()
		return fmt.Errorf("drain: %w", err)
	}
	if err := n.pause(r.ctx); err != nil {
		n.handBack()
		return fmt.Errorf("drain: %w", err)
	}
	n.in.closeInput()
	n.unpause()
	select {
	case <-n.done:
	case <-r.e.hard:
		return errStopped
	}
	n.ended.Store(true)
	return nil
}

// openAdded opens the added components downstream first and sets their
// outputs; one that fails to open is left out.
func (r *reload) openAdded(names []string, fresh map[string]*node) []*node {
	var added []*node
	for _, name := range slices.Backward(names) {
		n := fresh[name]
		if n.sinkTrack != nil {
			// It joins sources that go on: nothing will write again what
			// its output holds, so it keeps it (as resumeFrom does for a
			// sink new to a resumed run).
			if err := n.sinkTrack.cs.Resume(0, true); err != nil {
				r.fail(fmt.Errorf("open new %s %q (not added): %w", n.role, n.name, err))
				continue
			}
		}
		if err := open(r.ctx, n); err != nil {
			r.fail(fmt.Errorf("open new %s %q (not added): %w", n.role, n.name, err))
			continue
		}
		added = append(added, n)
	}
	slices.Reverse(added)
	for _, n := range added {
		r.byName[n.name] = n
		if n.in != nil {
			n.in.producers = 1 // held until the edges are set
			r.held = append(r.held, n.in)
		}
	}
	return added
}

// startAdded counts n as a producer of its targets and starts it.
func (r *reload) startAdded(n *node) {
	e := r.e
	if e.dead != nil && !e.dead.in.addProducer() {
		r.fail(fmt.Errorf("add %s %q: the dead-letter sink already finished", n.role, n.name))
		if err := n.close(); err != nil {
			r.fail(err)
		}
		delete(r.byName, n.name)
		return
	}
	for _, out := range n.gn.Outputs {
		to := r.byName[out.To]
		if to == nil {
			continue
		}
		if !to.in.addProducer() {
			r.fail(fmt.Errorf("connect %q to %q: %q already finished its input", n.name, to.name, to.name))
			continue
		}
		n.outs = append(n.outs, outEdge{to: to, types: out.Types})
	}
	e.liveMu.Lock()
	e.startLocked(n)
	e.liveMu.Unlock()
}

// rewire sets the outputs of the running node n to gn's, holding n
// between batches while they are swapped. The new targets count n as a
// producer; it returns the queues of the targets n left, which the caller
// tells once every node is rewired.
func (r *reload) rewire(n *node, gn *graph.Node) (left []*queue) {
	want := outsOf(gn, r.byName)
	if slices.EqualFunc(n.outs, want, func(a, b outEdge) bool {
		return a.to == b.to && slices.Equal(a.types, b.types)
	}) {
		return nil
	}
	if err := n.pause(r.ctx); err != nil {
		r.fail(fmt.Errorf("rewire %s %q: %w", n.role, n.name, err))
		return nil
	}
	defer n.unpause()
	if n.ended.Load() {
		return nil // it sends nothing more
	}
	has := func(outs []outEdge, to *node) bool {
		return slices.ContainsFunc(outs, func(o outEdge) bool { return o.to == to })
	}
	want = slices.DeleteFunc(want, func(o outEdge) bool {
		if has(n.outs, o.to) || o.to.in.addProducer() {
			return false
		}
		r.fail(fmt.Errorf("connect %q to %q: %q already finished its input", n.name, o.to.name, o.to.name))
		return true
	})
	for _, o := range n.outs {
		if !has(want, o.to) {
			left = append(left, o.to.in)
		}
	}
	n.outs = want
	r.e.log.Info("component rewired", logKeyComponent, n.name)
	return left
}

// publish makes the node list match the running nodes: the new graph's
// order, then those being removed, the dead-letter sink last.
func (r *reload) publish() {
	var list []*node
	for _, gn := range r.g.Nodes() {
		if n := r.byName[gn.Name]; n != nil && n.role == gn.Role && !n.deadLetter {
			list = append(list, n)
		}
	}
	for _, n := range r.e.list() {
		if r.leaving[n] {
			list = append(list, n)
		}
	}
	if r.e.dead != nil {
		list = append(list, r.e.dead)
	}
	r.e.nodes.Store(&list)
}

// release lets go of Reload's hold on q now.
func (r *reload) release(q *queue) {
	if i := slices.Index(r.held, q); i >= 0 {
		r.held = slices.Delete(r.held, i, i+1)
		q.producerDone()
	}
}

// forget drops q from the held queues without telling it (its input was
// closed).
func (r *reload) forget(q *queue) {
	r.held = slices.DeleteFunc(r.held, func(h *queue) bool { return h == q })
}

// drop takes n out of the node list.
func (r *reload) drop(n *node) {
	delete(r.leaving, n)
	r.retire(n)
	r.publish()
}

// retire keeps n where stop and Run's end find it, while it may still
// matter (see Engine.retired).
func (r *reload) retire(n *node) {
	r.e.retiredMu.Lock()
	r.e.retired = append(r.e.retired, n)
	r.e.retiredMu.Unlock()
}

// pruneRetired forgets the retired nodes that ended and hold no pending
// batch.
func (e *Engine) pruneRetired() {
	e.retiredMu.Lock()
	defer e.retiredMu.Unlock()
	e.retired = slices.DeleteFunc(e.retired, func(n *node) bool {
		select {
		case <-n.done:
			return n.pendingCount() == 0
		default:
			return false
		}
	})
}

// waitDone waits until n's goroutine returned.
func (r *reload) waitDone(n *node) error {
	select {
	case <-n.done:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-r.e.hard:
		return errStopped
	}
}

// waitAcked waits until every batch source n emitted was acknowledged.
func (r *reload) waitAcked(n *node) error {
	return r.poll(func() bool { return n.pendingCount() == 0 })
}

// poll waits until cond holds, checking it at growing intervals.
func (r *reload) poll(cond func() bool) error {
	d := 100 * time.Microsecond
	for !cond() {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return r.ctx.Err()
		case <-r.e.hard:
			t.Stop()
			return errStopped
		}
		d = min(2*d, 10*time.Millisecond)
	}
	return nil
}

// finished reports whether n will take or send nothing more: a source
// whose Run returned, a processor or sink whose input ended.
func (n *node) finished() bool {
	if n.role == flow.RoleSource {
		return n.hasExited()
	}
	return n.in.producerCount() == 0
}

// open opens n's component, if it has resources.
func open(ctx context.Context, n *node) error {
	if o, ok := n.comp.(flow.Opener); ok {
		if err := o.Open(ctx); err != nil {
			return err
		}
	}
	n.opened()
	return nil
}

// renew returns a new node running n's component (already built), with
// n's counters, for a reload that could not replace it.
func (e *Engine) renew(n *node) *node {
	x := &node{
		e: e, gn: n.gn, name: n.name, role: n.role, deadLetter: n.deadLetter,
		comp: n.comp, src: n.src, proc: n.proc, batchProc: n.batchProc, sink: n.sink,
		log: n.log, policy: n.policy, stats: n.stats, parallel: n.parallel, ordered: n.ordered,
		track: n.track, sinkTrack: n.sinkTrack,
	}
	x.initRuntime()
	if n.in != nil {
		x.in = newQueue(n.in.capacity, 0)
	}
	return x
}
