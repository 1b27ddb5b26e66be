package components

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

// dlqLine is one dead-letter file line for component comp.
func dlqLine(t *testing.T, comp string, n int) string {
	t.Helper()
	ev := &flow.Event{ID: fmt.Sprintf("in:%d", n), Type: "in", Source: "in", Data: []byte(fmt.Sprintf(`{"n":%d}`, n)),
		Metadata: map[string]string{"k": "v"}}
	b, err := json.Marshal(flow.NewDeadLetter(comp, errors.New("boom"), 1, ev))
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func newDLQSource(t *testing.T, dir string, cfg flow.Config) flow.Source {
	t.Helper()
	r := flow.NewRegistry()
	if err := RegisterReplay(r); err != nil {
		t.Fatal(err)
	}
	s, err := r.Lookup(flow.RoleSource, DeadLetterSourceType)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.New(flow.BuildContext{Name: "dlq:a", Config: cfg, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return c.(flow.Source)
}

// TestDLQSource: the hidden source emits the original events of one
// component's dead letters, stops at until and at a torn last line, and a
// source resumed at a committed position emits only what follows it.
func TestDLQSource(t *testing.T) {
	if slices.Contains(NewRegistry().Names(flow.RoleSource), DeadLetterSourceType) {
		t.Fatal("the dlq source is listed among the built-ins")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "failed.jsonl")
	var b strings.Builder
	for i := 1; i <= 6; i++ {
		comp := "a"
		if i%3 == 0 {
			comp = "b"
		}
		b.WriteString(dlqLine(t, comp, i))
	}
	b.WriteString("not a dead letter\n")
	full := b.String()
	ioWriteFile(t, path, full+strings.TrimSuffix(dlqLine(t, "a", 7), "\n")) // torn: not read
	cfg := flow.Config{"path": "failed.jsonl", "component": "a"}

	ids := func(em *posEmitter) []string { return em.ids() }
	em := &posEmitter{}
	if err := ioRunSource(t, newDLQSource(t, dir, cfg), em); err != nil {
		t.Fatal(err)
	}
	if got := ids(em); !slices.Equal(got, []string{"in:1", "in:2", "in:4", "in:5"}) {
		t.Fatalf("ids %v", got)
	}
	if e := em.events[0]; string(e.Data) != `{"n":1}` || e.Type != "in" || e.Metadata["k"] != "v" {
		t.Fatalf("first event %+v", e)
	}
	abs, _ := filepath.Abs(path)
	if len(em.pos) == 0 || em.pos[len(em.pos)-1].Key != abs {
		t.Fatalf("positions %v", em.pos)
	}
	var p ioFilePos
	if err := json.Unmarshal(em.pos[len(em.pos)-1].Value, &p); err != nil || p.Offset != int64(len(full)) {
		t.Fatalf("last position %s, want offset %d", em.pos[len(em.pos)-1].Value, len(full))
	}

	// until: only the first two lines.
	first2 := int64(len(dlqLine(t, "a", 1)) + len(dlqLine(t, "a", 2)))
	em = &posEmitter{}
	if err := ioRunSource(t, newDLQSource(t, dir, flow.Config{"path": path, "component": "a", "until": int(first2)}), em); err != nil {
		t.Fatal(err)
	}
	if got := ids(em); !slices.Equal(got, []string{"in:1", "in:2"}) {
		t.Fatalf("until %d: ids %v", first2, got)
	}

	// Resumed after the first two lines: the rest, once.
	src := newDLQSource(t, dir, cfg)
	p.Offset, p.Line = first2, 2 // same file (device and inode), earlier offset
	p2, _ := json.Marshal(p)
	if err := src.(flow.Resumer).Resume(map[string][]byte{abs: p2}); err != nil {
		t.Fatal(err)
	}
	em = &posEmitter{}
	if err := ioRunSource(t, src, em); err != nil {
		t.Fatal(err)
	}
	if got := ids(em); !slices.Equal(got, []string{"in:4", "in:5"}) {
		t.Fatalf("resumed: ids %v", got)
	}
}
