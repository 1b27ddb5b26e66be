package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

func TestSrcTrackMovesOverContiguousAcks(t *testing.T) {
	tr := newSrcTrack()
	pos := func(i int) flow.Position { return flow.Position{Key: "k", Value: []byte(strconv.Itoa(i))} }
	for range 5 {
		tr.assign()
	}
	tr.done(0, pos(0))
	tr.done(2, pos(2))
	tr.done(3, pos(3))
	cut, p := tr.snapshot()
	if cut != 1 || string(p["k"]) != "0" {
		t.Fatalf("after 0, 2, 3: cut %d at %q, want 1 at 0", cut, p["k"])
	}
	tr.committed(cut)
	if _, p := tr.snapshot(); p != nil {
		t.Fatalf("nothing moved, snapshot gave %q", p)
	}
	tr.done(1, pos(1))
	cut, p = tr.snapshot()
	if cut != 4 || string(p["k"]) != "3" {
		t.Fatalf("after 1: cut %d at %q, want 4 at 3", cut, p["k"])
	}
}

// fixedPos is a CheckpointSink stub whose Position is set by the test.
type fixedPos struct{ pos int64 }

func (f *fixedPos) OutputKey() string          { return "k" }
func (f *fixedPos) Position() int64            { return f.pos }
func (f *fixedPos) Sync(context.Context) error { return nil }
func (f *fixedPos) Resume(int64, bool) error   { return nil }

func TestSinkTrackCut(t *testing.T) {
	a, b := newSrcTrack(), newSrcTrack()
	type entry struct {
		src *srcTrack
		seq uint64
		pos int64
	}
	cases := []struct {
		name    string
		entries []entry
		cuts    map[*srcTrack]uint64
		now     int64
		want    int64
		exact   bool
		left    int
	}{
		{"in order", []entry{{a, 0, 10}, {a, 1, 20}, {a, 2, 30}}, map[*srcTrack]uint64{a: 2}, 30, 20, true, 1},
		{"nothing committed yet", []entry{{a, 3, 10}}, map[*srcTrack]uint64{a: 2}, 10, 0, true, 1},
		{"two sources interleaved, cut between", []entry{{a, 0, 10}, {b, 0, 20}, {a, 1, 30}}, map[*srcTrack]uint64{a: 1, b: 1}, 30, 20, true, 1},
		{"out of order: keep all", []entry{{a, 1, 10}, {a, 0, 20}}, map[*srcTrack]uint64{a: 1}, 25, 25, false, 0},
		{"fan-in with no clean cut: keep all", []entry{{a, 1, 10}, {b, 0, 20}}, map[*srcTrack]uint64{a: 1, b: 1}, 20, 20, false, 0},
		{"a source that cannot replay is always kept", []entry{{nil, 0, 10}, {a, 5, 20}}, map[*srcTrack]uint64{a: 1}, 20, 10, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := &sinkTrack{cs: &fixedPos{pos: c.now}}
			for _, e := range c.entries {
				tr.entries = append(tr.entries, sinkEntry{src: e.src, seq: e.seq, pos: e.pos})
			}
			got, _ := tr.cutAt(c.cuts)
			if got != c.want || tr.exact != c.exact || len(tr.entries) != c.left {
				t.Fatalf("cut = %d exact %v, %d entries left; want %d, %v, %d", got, tr.exact, len(tr.entries), c.want, c.exact, c.left)
			}
		})
	}
}

// memStore is a flow.CheckpointStore in memory.
type memStore struct {
	mu      sync.Mutex
	cp      flow.Checkpoint
	commits int
}

func newMemStore() *memStore {
	return &memStore{cp: flow.Checkpoint{Sources: map[string]map[string][]byte{}, Sinks: map[string]flow.SinkCheckpoint{}}}
}

func (m *memStore) Load() (flow.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := flow.Checkpoint{Sources: map[string]map[string][]byte{}, Sinks: maps.Clone(m.cp.Sinks)}
	for k, v := range m.cp.Sources {
		out.Sources[k] = maps.Clone(v)
	}
	return out, nil
}

func (m *memStore) Commit(c flow.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, pos := range c.Sources {
		if m.cp.Sources[name] == nil {
			m.cp.Sources[name] = map[string][]byte{}
		}
		maps.Copy(m.cp.Sources[name], pos)
	}
	maps.Copy(m.cp.Sinks, c.Sinks)
	m.commits++
	return nil
}

// countingSource emits events 0..n-1 in batches of size with their
// positions, and resumes from a committed one. block, if set, is waited
// on before emitting event block.at.
type countingSource struct {
	name  string
	n     int
	size  int
	start int
	stop  chan struct{} // closed: emit nothing more
	at    int
}

func (s *countingSource) Resume(p map[string][]byte) error {
	var v struct{ Next int }
	if err := json.Unmarshal(p[""], &v); err != nil {
		return err
	}
	s.start = v.Next
	return nil
}

func (s *countingSource) Run(ctx context.Context, out flow.Emitter) error {
	pe := out.(flow.PositionEmitter)
	for i := s.start; i < s.n; i += s.size {
		if s.stop != nil && i >= s.at {
			<-ctx.Done()
			return nil
		}
		var b []*flow.Event
		for k := i; k < min(i+s.size, s.n); k++ {
			b = append(b, &flow.Event{ID: s.name + ":" + strconv.Itoa(k), Type: s.name, Data: []byte(`{}`)})
		}
		v, _ := json.Marshal(map[string]int{"next": min(i+s.size, s.n)})
		if err := pe.EmitAt(ctx, b, flow.Position{Value: v}); err != nil {
			return err
		}
	}
	return nil
}

// lineSink is a CheckpointSink writing ids to a slice that outlives the
// engine (the "file"); Resume cuts it back on Open.
type lineSink struct {
	mu       sync.Mutex
	lines    *[]string
	resume   int64
	keepTail bool
}

func (s *lineSink) OutputKey() string { return "lines" }
func (s *lineSink) Position() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(*s.lines))
}
func (s *lineSink) Sync(context.Context) error        { return nil }
func (s *lineSink) Resume(pos int64, keep bool) error { s.resume, s.keepTail = pos, keep; return nil }
func (s *lineSink) Open(context.Context) error {
	if s.resume >= 0 && !s.keepTail {
		*s.lines = (*s.lines)[:s.resume]
	}
	return nil
}
func (s *lineSink) Write(_ context.Context, b []*flow.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range b {
		*s.lines = append(*s.lines, e.ID)
	}
	return nil
}

// TestCheckpointResumeExactlyOnce stops a run hard while its sink still
// holds written-but-uncommitted events, and runs again: the second run
// cuts the sink back to the committed length and the source resumes
// there, so every id is in the output once.
func TestCheckpointResumeExactlyOnce(t *testing.T) {
	const n = 5000
	store := newMemStore()
	var out []string
	first := &countingSource{name: "src", n: n, size: 7, stop: make(chan struct{}), at: 3000}
	sink := &lineSink{lines: &out, resume: -1}
	p := pipeline(comp(flow.RoleSource, "src", first), comp(flow.RoleProcessor, "p", passThrough, "src"), comp(flow.RoleSink, "out", sink, "p"))
	e, err := New(p, testRegistry(t), Options{Checkpoints: store, CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	deadline := time.Now().Add(20 * time.Second)
	for sink.Position() < 2900 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// Written past the last commit, as a crash would leave it: append
	// what a half-finished write might have put there.
	e.Abort()
	<-done
	sink.mu.Lock()
	out = append(out, "src:torn")
	sink.mu.Unlock()
	cp, _ := store.Load()
	if cp.Sinks["out"].Position == 0 || len(cp.Sources["src"]) == 0 {
		t.Fatalf("nothing committed: %+v", cp)
	}

	second := &countingSource{name: "src", n: n, size: 7}
	sink2 := &lineSink{lines: &out, resume: -1}
	p2 := pipeline(comp(flow.RoleSource, "src", second), comp(flow.RoleProcessor, "p", passThrough, "src"), comp(flow.RoleSink, "out", sink2, "p"))
	if _, err := run(t, p2, Options{Checkpoints: store}); err != nil {
		t.Fatal(err)
	}
	if second.start == 0 {
		t.Fatal("the second run did not resume")
	}
	seen := map[string]int{}
	for _, id := range out {
		seen[id]++
	}
	for i := range n {
		if c := seen["src:"+strconv.Itoa(i)]; c != 1 {
			t.Fatalf("id %d written %d times (resumed at %d, sink cut to %d)", i, c, second.start, cp.Sinks["out"].Position)
		}
	}
	if len(out) != n {
		t.Fatalf("%d lines, want %d", len(out), n)
	}
}

// TestCheckpointFanInIsAtLeastOnce: two sources into one sink give it
// batches whose order allows no clean cut; a resumed run loses nothing.
func TestCheckpointFanInIsAtLeastOnce(t *testing.T) {
	const n = 3000
	store := newMemStore()
	var out []string
	a := &countingSource{name: "a", n: n, size: 5, stop: make(chan struct{}), at: 2000}
	b := &countingSource{name: "b", n: n, size: 3, stop: make(chan struct{}), at: 1000}
	sink := &lineSink{lines: &out, resume: -1}
	p := pipeline(comp(flow.RoleSource, "a", a), comp(flow.RoleSource, "b", b), comp(flow.RoleSink, "out", sink, "a", "b"))
	e, err := New(p, testRegistry(t), Options{Checkpoints: store, CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	deadline := time.Now().Add(20 * time.Second)
	for sink.Position() < 2900 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	e.Abort()
	<-done

	a2 := &countingSource{name: "a", n: n, size: 5}
	b2 := &countingSource{name: "b", n: n, size: 3}
	sink2 := &lineSink{lines: &out, resume: -1}
	p2 := pipeline(comp(flow.RoleSource, "a", a2), comp(flow.RoleSource, "b", b2), comp(flow.RoleSink, "out", sink2, "a", "b"))
	if _, err := run(t, p2, Options{Checkpoints: store}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, id := range out {
		seen[id]++
	}
	for _, src := range []string{"a", "b"} {
		for i := range n {
			if seen[fmt.Sprintf("%s:%d", src, i)] == 0 {
				t.Fatalf("%s:%d lost", src, i)
			}
		}
	}
}

// TestCheckpointKeepsTailOfUnreplayableSources: what a sink wrote after the
// checkpoint from a source that cannot replay it (stdin, http) is kept;
// from a replayable one it is not kept twice.
func TestCheckpointKeepsTailOfUnreplayableSources(t *testing.T) {
	for _, replayable := range []bool{true, false} {
		t.Run(fmt.Sprint("replayable=", replayable), func(t *testing.T) {
			store := newMemStore()
			store.cp.Sinks["out"] = flow.SinkCheckpoint{Key: "lines", Position: 2}
			out := []string{"a", "b", "written after the checkpoint"}
			var src any = &sliceSource{events: []*flow.Event{ev("s", 1, "t", "{}")}}
			if replayable {
				src = &countingSource{name: "s", n: 1, size: 1}
			}
			sink := &lineSink{lines: &out, resume: -1}
			p := pipeline(comp(flow.RoleSource, "s", src), comp(flow.RoleSink, "out", sink, "s"))
			if _, err := run(t, p, Options{Checkpoints: store}); err != nil {
				t.Fatal(err)
			}
			if sink.keepTail == replayable {
				t.Fatalf("keepTail = %v for a source that can replay: %v", sink.keepTail, replayable)
			}
			if kept := len(out) == 4; kept == replayable {
				t.Fatalf("output %q", out)
			}
		})
	}
}
