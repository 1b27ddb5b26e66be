package engine

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// DefaultCheckpointInterval is how often a run with a checkpoint store
// commits when Options.CheckpointInterval is zero.
const DefaultCheckpointInterval = time.Second

// srcTrack follows a replayable source's batches: each gets a sequence
// number when emitted, and the source's position moves on only over an
// unbroken run of acknowledged batches, so a committed position never
// skips a batch that was not written.
//
//	emitted:  0 1 2 3 4 5
//	acked:    ✓ ✓ ✗ ✓ ✓        → contiguous = 2, position = batch 1's
//
// A batch whose Emit gave up, or that was failed when the run stopped,
// never acknowledges: the position stays before it for good, and the
// next run emits it again.
type srcTrack struct {
	mu    sync.Mutex
	next  uint64                   // seq of the next batch
	acked uint64                   // every seq below is acknowledged
	ahead map[uint64]flow.Position // acknowledged past a gap
	pos   map[string][]byte        // where the contiguous prefix ends, by key
	dirty bool                     // pos moved since the last commit
}

func newSrcTrack() *srcTrack {
	return &srcTrack{ahead: map[uint64]flow.Position{}, pos: map[string][]byte{}}
}

// assign returns the next batch's sequence number.
func (t *srcTrack) assign() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.next
	t.next++
	return s
}

// done records that batch seq, ending at p, was acknowledged.
func (t *srcTrack) done(seq uint64, p flow.Position) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq != t.acked {
		t.ahead[seq] = p
		return
	}
	t.move(p)
	t.acked++
	for {
		q, ok := t.ahead[t.acked]
		if !ok {
			break
		}
		delete(t.ahead, t.acked)
		t.move(q)
		t.acked++
	}
}

// move sets the position p names; a p without a value (a batch of
// rejected events) holds a place in the order but moves nothing.
func (t *srcTrack) move(p flow.Position) {
	if p.Value != nil {
		t.pos[p.Key] = p.Value
		t.dirty = true
	}
}

// snapshot returns the cut (every seq below it is acknowledged) and, when
// the position moved since the last commit, a copy of it.
func (t *srcTrack) snapshot() (cut uint64, pos map[string][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dirty {
		pos = maps.Clone(t.pos)
	}
	return t.acked, pos
}

// committed clears dirty when nothing moved since snapshot's cut.
func (t *srcTrack) committed(cut uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.acked == cut {
		t.dirty = false
	}
}

// sinkEntry is one batch a checkpointing sink wrote: from which source
// batch it derived (src nil: a source that cannot be replayed) and the
// sink's position after it.
type sinkEntry struct {
	src *srcTrack
	seq uint64
	pos int64
}

// sinkTrack follows what a checkpointing sink wrote since the last commit.
type sinkTrack struct {
	cs  flow.CheckpointSink
	key string

	mu      sync.Mutex
	entries []sinkEntry
	last    int64 // position committed last (or found at open)
	moved   bool  // last changed since it was committed
	exact   bool  // the last cut kept exactly the committed batches
}

// record notes that the sink wrote a batch derived from a, after Write
// returned.
func (t *sinkTrack) record(a *ack) {
	e := sinkEntry{pos: t.cs.Position()}
	if a.track != nil {
		e.src, e.seq = a.track, a.seq
	}
	t.mu.Lock()
	t.entries = append(t.entries, e)
	t.mu.Unlock()
}

// cutAt returns the position that holds exactly the batches below cuts
// (per source), dropping the entries it covers. When the sink got its
// batches in an order that allows no such cut, it keeps everything
// written so far instead: what is replayed is then written twice.
func (t *sinkTrack) cutAt(cuts map[*srcTrack]uint64) (pos int64, changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	in := func(e sinkEntry) bool { return e.src == nil || e.seq < cuts[e.src] }
	i := 0
	for i < len(t.entries) && in(t.entries[i]) {
		i++
	}
	exact := true
	for _, e := range t.entries[i:] {
		if in(e) {
			exact = false
			break
		}
	}
	p := t.last
	switch {
	case !exact:
		p = t.cs.Position()
		t.entries = t.entries[:0]
	case i > 0:
		p = t.entries[i-1].pos
		t.entries = append(t.entries[:0], t.entries[i:]...)
	}
	t.exact = exact
	if p > t.last {
		t.last, t.moved = p, true
	}
	return t.last, t.moved
}

func (t *sinkTrack) committed(pos int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == pos {
		t.moved = false
	}
}

// resume gives the components of the nodes their committed positions,
// before they open. A sink whose output key changed starts over (its
// mode decides whether it truncates).
func (e *Engine) resume(nodes []*node) error {
	if e.opts.Checkpoints == nil {
		return nil
	}
	cp, err := e.opts.Checkpoints.Load()
	if err != nil {
		return err
	}
	resuming := len(cp.Sources) > 0 || len(cp.Sinks) > 0
	for _, n := range nodes {
		if err := n.resumeFrom(cp, resuming); err != nil {
			return err
		}
	}
	return nil
}

// resumeFrom gives n its position in cp. A checkpointing sink with none
// there (it is new, or writes elsewhere than at the last checkpoint) of a
// pipeline that resumes keeps what its output holds and writes after it:
// the sources go on from their checkpoint and send nothing again that
// could be written in its place. Only a run without any checkpoint (the
// first, or --from-start) lets a sink's mode start its output over.
func (n *node) resumeFrom(cp flow.Checkpoint, resuming bool) error {
	switch {
	case n.src != nil:
		r, ok := n.comp.(flow.Resumer)
		pos := cp.Sources[n.name]
		if !ok || len(pos) == 0 {
			return nil
		}
		maps.Copy(n.track.pos, pos)
		if err := r.Resume(maps.Clone(pos)); err != nil {
			return fmt.Errorf("resume source %q: %w", n.name, err)
		}
	case n.sinkTrack != nil:
		sc, ok := cp.Sinks[n.name]
		if !ok || sc.Key != n.sinkTrack.key {
			if !resuming {
				return nil
			}
			if ok {
				n.log.Info("the sink writes elsewhere than at the last checkpoint: the pipeline resumes, so what that output holds is kept and written after", "was", sc.Key, "now", n.sinkTrack.key)
			}
			if err := n.sinkTrack.cs.Resume(0, true); err != nil {
				return fmt.Errorf("resume sink %q: %w", n.name, err)
			}
			return nil
		}
		if err := n.sinkTrack.cs.Resume(sc.Position, n.e.fedByUnreplayable(n)); err != nil {
			return fmt.Errorf("resume sink %q: %w", n.name, err)
		}
	}
	return nil
}

// opened sets a checkpointing sink's starting position once it is open:
// what its output held then is never cut.
func (n *node) opened() {
	if t := n.sinkTrack; t != nil {
		t.mu.Lock()
		t.last, t.moved, t.entries = t.cs.Position(), true, t.entries[:0]
		t.mu.Unlock()
	}
}

// checkpoint commits the positions every batch acknowledged so far
// reached, with the sinks' matching outputs made durable first. It is a
// no-op without a store or when nothing moved.
func (e *Engine) checkpoint(ctx context.Context) error {
	st := e.opts.Checkpoints
	if st == nil {
		return nil
	}
	e.ckMu.Lock()
	defer e.ckMu.Unlock()
	all := append(e.list(), e.retiredNodes()...)
	cuts := map[*srcTrack]uint64{}
	c := flow.Checkpoint{Sources: map[string]map[string][]byte{}, Sinks: map[string]flow.SinkCheckpoint{}}
	for _, n := range all {
		if n.src == nil || n.track == nil {
			continue
		}
		if _, seen := cuts[n.track]; seen {
			continue
		}
		cut, pos := n.track.snapshot()
		cuts[n.track] = cut
		if pos != nil {
			c.Sources[n.name] = pos
		}
	}
	type synced struct {
		t   *sinkTrack
		pos int64
	}
	var sinks []synced
	seen := map[*sinkTrack]bool{}
	// A retired sink drained before it left; its successor, if any, goes
	// on from where it ended.
	for _, n := range e.list() {
		t := n.sinkTrack
		if t == nil || seen[t] {
			continue
		}
		seen[t] = true
		pos, changed := t.cutAt(cuts)
		if !changed {
			continue
		}
		if err := t.cs.Sync(ctx); err != nil {
			return fmt.Errorf("checkpoint: sync sink %q: %w", n.name, err)
		}
		c.Sinks[n.name] = flow.SinkCheckpoint{Key: t.key, Position: pos}
		sinks = append(sinks, synced{t, pos})
	}
	if len(c.Sources) == 0 && len(c.Sinks) == 0 {
		return nil
	}
	if err := st.Commit(c); err != nil {
		return err
	}
	for t, cut := range cuts {
		t.committed(cut)
	}
	for _, s := range sinks {
		s.t.committed(s.pos)
	}
	e.commits.Add(1)
	return nil
}

// checkpointLoop commits every interval until stop is closed.
func (e *Engine) checkpointLoop(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	iv := e.opts.CheckpointInterval
	if iv <= 0 {
		iv = DefaultCheckpointInterval
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := e.checkpoint(context.Background()); err != nil {
				e.fail(err)
				return
			}
		}
	}
}

// Commits returns how many checkpoints the run committed.
func (e *Engine) Commits() int64 { return e.commits.Load() }

// carry hands what n reached to x, its replacement in a reload, before x
// opens: a source goes on from n's acknowledged positions (the source
// judges whether they still apply to its new config), a sink that writes
// to the same output keeps all of it.
func carry(n, x *node) error {
	if n.track != nil && x.src != nil {
		x.track = n.track
		n.track.mu.Lock()
		pos := maps.Clone(n.track.pos)
		n.track.mu.Unlock()
		if r, ok := x.comp.(flow.Resumer); ok && len(pos) > 0 {
			if err := r.Resume(pos); err != nil {
				return fmt.Errorf("resume source %q: %w", x.name, err)
			}
		}
	}
	if n.sinkTrack != nil && x.sinkTrack != nil && n.sinkTrack.key == x.sinkTrack.key {
		if err := x.sinkTrack.cs.Resume(n.sinkTrack.cs.Position(), false); err != nil {
			return fmt.Errorf("resume sink %q: %w", x.name, err)
		}
	} else if x.sinkTrack != nil {
		// It writes elsewhere now, while the sources go on: what that
		// output holds is kept (see resumeFrom).
		if err := x.sinkTrack.cs.Resume(0, true); err != nil {
			return fmt.Errorf("resume sink %q: %w", x.name, err)
		}
	}
	return nil
}

// fedByUnreplayable reports whether a source that cannot resume (stdin,
// http, one without positions) may send events to sink n: then what n
// wrote after the checkpoint will not all come again, and must be kept.
// The dead-letter sink may get events from every source.
func (e *Engine) fedByUnreplayable(n *node) bool {
	byName := map[string]*node{}
	for _, x := range e.list() {
		byName[x.name] = x
	}
	unreplayable := func(x *node) bool {
		_, ok := x.comp.(flow.Resumer)
		return !ok
	}
	if n.deadLetter {
		for _, x := range e.list() {
			if x.src != nil && unreplayable(x) {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	stack := []string{n.name}
	for len(stack) > 0 {
		name := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[name] {
			continue
		}
		seen[name] = true
		x := byName[name]
		if x == nil {
			continue
		}
		if x.src != nil && unreplayable(x) {
			return true
		}
		for _, in := range x.gn.Inputs {
			stack = append(stack, in.From)
		}
	}
	return false
}

// Replayed returns, per sink that counts them (flow.ReplayCounter), how
// many events of this resumed run it had already written before.
func (e *Engine) Replayed() map[string]int64 {
	out := map[string]int64{}
	for _, n := range e.list() {
		if rc, ok := n.comp.(flow.ReplayCounter); ok {
			if v := rc.Replayed(); v > 0 {
				out[n.name] = v
			}
		}
	}
	return out
}
