package engine

import (
	"context"
	"fmt"
	"sync"
)

// gate lets Reload hold a node between batches. A processor's or sink's
// worker enters before it pops a batch and leaves once it handed the
// batch on; a source enters for each Emit and leaves once the batch is
// queued; the node's goroutine enters once more to tell its downstream
// queues it finished. While the node is held nobody enters, so Reload may
// rewire its edges:
//
//	running ──pause──▶ held (new entries wait; pause returns once
//	   ▲                 │     the batches in hand were handed on)
//	   └────unpause──────┘
//
// A worker waiting on an empty queue is woken by pausing and leaves, so a
// hold never waits for input that cannot come.
type gate struct {
	mu      sync.Mutex
	active  int           // entries in progress
	holds   int           // pause calls not yet undone
	resume  chan struct{} // non-nil while held; closed on resume
	pausing chan struct{} // closed when a hold begins; a new one after it
	idle    chan struct{} // closed when active drops to 0 while held
}

// enter waits while the node is held, then counts the caller in. It
// returns a channel closed when a hold begins (a worker blocked on an
// empty queue leaves then). ok is false when soft (may be nil) or the
// hard stop came first.
func (n *node) enter(soft <-chan struct{}) (pausing <-chan struct{}, ok bool) {
	g := &n.gate
	for {
		g.mu.Lock()
		if r := g.resume; r != nil {
			g.mu.Unlock()
			select {
			case <-r:
				continue
			case <-soft:
				return nil, false
			case <-n.e.hard:
				return nil, false
			}
		}
		g.active++
		pausing = g.pausing
		g.mu.Unlock()
		return pausing, true
	}
}

// leave ends an entry.
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

// pause holds the node: nobody enters any more, and pause returns once
// the entries in progress left (their batches were handed on). On ctx's
// end or a hard stop it undoes its hold and fails. Every successful pause
// is undone by one unpause.
func (n *node) pause(ctx context.Context) error {
	g := &n.gate
	g.mu.Lock()
	g.holds++
	if g.holds == 1 {
		g.resume = make(chan struct{})
		close(g.pausing)
	}
	var idle chan struct{}
	if g.active > 0 {
		if g.idle == nil {
			g.idle = make(chan struct{})
		}
		idle = g.idle
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
		return fmt.Errorf("hold %s %q between batches: %w", n.role, n.name, ctx.Err())
	case <-n.e.hard:
		n.unpause()
		return fmt.Errorf("hold %s %q between batches: %w", n.role, n.name, errStopped)
	}
}

// unpause undoes one pause; the last lets the node go on.
func (n *node) unpause() {
	g := &n.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holds--
	if g.holds > 0 {
		return
	}
	close(g.resume)
	g.resume = nil
	g.idle = nil
	g.pausing = make(chan struct{})
}

// pauseAll holds every node of ns in order (upstream first, so that a
// held node's last push never waits on a held node downstream). On
// failure it lets go of the ones it held.
func pauseAll(ctx context.Context, ns []*node) error {
	for i, n := range ns {
		if err := n.pause(ctx); err != nil {
			unpauseAll(ns[:i])
			return err
		}
	}
	return nil
}

func unpauseAll(ns []*node) {
	for _, n := range ns {
		n.unpause()
	}
}

// takeOver makes Reload, rather than n's goroutine, tell the downstream
// queues and close the component once n's work ends. It returns false
// when the goroutine already ended its work (and does both itself).
func (n *node) takeOver() bool {
	n.endMu.Lock()
	defer n.endMu.Unlock()
	if n.exited {
		return false
	}
	n.owned = true
	return true
}

// handBack undoes takeOver (Reload gave up waiting): the goroutine
// finishes the node itself. It returns false when the goroutine already
// ended its work: the node is Reload's to finish.
func (n *node) handBack() bool {
	n.endMu.Lock()
	defer n.endMu.Unlock()
	if n.exited {
		return false
	}
	n.owned = false
	return true
}

// hasExited reports whether n's goroutine ended its work.
func (n *node) hasExited() bool {
	n.endMu.Lock()
	defer n.endMu.Unlock()
	return n.exited
}
