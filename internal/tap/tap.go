// Package tap lets a user watch the events crossing one point of a running
// pipeline: what a component emits (its output) or what it is handed (its
// input), including the edges into and out of external components.
//
// The engine calls Hub.Publish on its hot path for every batch; with no
// one watching that costs one atomic load. A watcher subscribes with a
// bounded buffer: when it falls behind, events are dropped for it and
// counted, never waited for, so a slow tap never slows the pipeline.
// Events are immutable once emitted (package flow), so a subscriber keeps
// the pointers and does its filtering and encoding on its own goroutine.
//
// It imports flow and expr only; the engine imports it.
package tap

import (
	"sync"
	"sync/atomic"

	"github.com/flowctl/flowctl/internal/flow"
)

// Point is where events are watched: a component's output (In false) or
// input (In true).
type Point struct {
	Component string
	In        bool
}

// String is "NAME:out" or "NAME:in".
func (p Point) String() string {
	if p.In {
		return p.Component + ":in"
	}
	return p.Component + ":out"
}

// DefaultBuffer is how many events a subscriber may lag behind before
// events are dropped for it.
const DefaultBuffer = 1024

// Hub fans the events of watched points out to their subscribers. The
// zero value is not usable: use NewHub. A nil *Hub is valid and watches
// nothing.
type Hub struct {
	mu   sync.Mutex
	subs atomic.Pointer[map[Point][]*Sub]
	// ended is closed by Close: the run is over and nothing more will be
	// published, so streams end instead of being cut by their server.
	ended     chan struct{}
	closeOnce sync.Once
}

// NewHub returns a hub with no subscribers.
func NewHub() *Hub {
	h := &Hub{ended: make(chan struct{})}
	empty := map[Point][]*Sub{}
	h.subs.Store(&empty)
	return h
}

// Close says that nothing more will be published (the run is over):
// Ended is closed, and the streams Handler serves send what they still
// hold, then an end record. It may be called more than once.
func (h *Hub) Close() {
	if h == nil {
		return
	}
	h.closeOnce.Do(func() { close(h.ended) })
}

// Ended is closed once Close was called (never for a nil Hub).
func (h *Hub) Ended() <-chan struct{} {
	if h == nil {
		return nil
	}
	return h.ended
}

// Sub is one watcher of one or more points. Events arrive on C until
// Unsubscribe; Dropped counts those it had no room for.
type Sub struct {
	Points  []Point
	C       chan Item
	dropped atomic.Int64
}

// Item is an event seen at a point.
type Item struct {
	Point Point
	Event *flow.Event
}

// Dropped is how many events were dropped for s so far.
func (s *Sub) Dropped() int64 { return s.dropped.Load() }

// Subscribe starts watching points with room for buffer events (≤ 0:
// DefaultBuffer).
func (h *Hub) Subscribe(points []Point, buffer int) *Sub {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &Sub{Points: points, C: make(chan Item, buffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	next := h.copyLocked()
	for _, p := range points {
		next[p] = append(next[p], s)
	}
	h.subs.Store(&next)
	return s
}

// Unsubscribe stops s. Its channel is not closed (a publisher may hold
// the old list for a moment): the subscriber stops reading instead.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	next := h.copyLocked()
	for _, p := range s.Points {
		list := next[p]
		for i, o := range list {
			if o == s {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(next, p)
		} else {
			next[p] = list
		}
	}
	h.subs.Store(&next)
}

// Watching reports how many points are watched, for tests and status.
func (h *Hub) Watching() int {
	if h == nil {
		return 0
	}
	return len(*h.subs.Load())
}

func (h *Hub) copyLocked() map[Point][]*Sub {
	cur := *h.subs.Load()
	next := make(map[Point][]*Sub, len(cur)+1)
	for k, v := range cur {
		next[k] = append([]*Sub(nil), v...)
	}
	return next
}

// Publish hands events crossing p to p's subscribers without blocking.
// It is called on the engine's hot path.
func (h *Hub) Publish(component string, in bool, events []*flow.Event) {
	if h == nil {
		return
	}
	m := *h.subs.Load()
	if len(m) == 0 {
		return
	}
	p := Point{Component: component, In: in}
	for _, s := range m[p] {
		s.offer(p, events)
	}
}

// offer queues events for s until its buffer is full; the rest of the
// batch is dropped for s and counted.
func (s *Sub) offer(p Point, events []*flow.Event) {
	for i, ev := range events {
		select {
		case s.C <- Item{Point: p, Event: ev}:
		default:
			s.dropped.Add(int64(len(events) - i))
			return
		}
	}
}
