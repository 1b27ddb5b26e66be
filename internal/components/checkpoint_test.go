package components

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

// posEmitter records batches and the positions they end at.
type posEmitter struct {
	mu     sync.Mutex
	events []*flow.Event
	pos    []flow.Position
}

func (p *posEmitter) Emit(_ context.Context, b []*flow.Event, done func(error)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, b...)
	if done != nil {
		done(nil)
	}
	return nil
}

func (p *posEmitter) EmitAt(_ context.Context, b []*flow.Event, pos flow.Position) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, b...)
	p.pos = append(p.pos, pos)
	return nil
}

func (p *posEmitter) ids() []string {
	var out []string
	for _, e := range p.events {
		out = append(out, e.ID)
	}
	return out
}

func lines(n, from int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		b.WriteString(`{"n":` + strconv.Itoa(i) + "}\n")
	}
	return b.String()
}

func TestFileSourceResume(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.jsonl")
	ioWriteFile(t, path, lines(10, 1))
	cfg := flow.Config{"path": "in.jsonl", "batch_size": 3}

	em := &posEmitter{}
	if err := ioRunSource(t, ioNewSource(t, "file", "in", dir, cfg), em); err != nil {
		t.Fatal(err)
	}
	if len(em.pos) != 4 {
		t.Fatalf("%d positions, want one per batch (4)", len(em.pos))
	}
	abs, _ := filepath.Abs(path)
	if em.pos[1].Key != abs {
		t.Fatalf("key = %q, want %q", em.pos[1].Key, abs)
	}
	var p ioFilePos
	if err := json.Unmarshal(em.pos[1].Value, &p); err != nil || p.Line != 6 || p.Offset != int64(len(lines(6, 1))) {
		t.Fatalf("after the second batch: %s (%v), want line 6 at byte %d", em.pos[1].Value, err, len(lines(6, 1)))
	}

	resumeAt := func(t *testing.T, pos flow.Position) []string {
		src := ioNewSource(t, "file", "in", dir, cfg)
		if err := src.(flow.Resumer).Resume(map[string][]byte{pos.Key: pos.Value}); err != nil {
			t.Fatal(err)
		}
		em := &posEmitter{}
		if err := ioRunSource(t, src, em); err != nil {
			t.Fatal(err)
		}
		return em.ids()
	}
	t.Run("same file goes on", func(t *testing.T) {
		if got := strings.Join(resumeAt(t, em.pos[1]), " "); got != "in:7 in:8 in:9 in:10" {
			t.Fatalf("ids = %s", got)
		}
	})
	t.Run("truncated file starts over", func(t *testing.T) {
		ioWriteFile(t, path, lines(2, 1))
		if got := strings.Join(resumeAt(t, em.pos[1]), " "); got != "in:1 in:2" {
			t.Fatalf("ids = %s", got)
		}
	})
	t.Run("truncated and grown past the checkpoint starts over", func(t *testing.T) {
		// Same inode, longer than the checkpoint's offset (copytruncate,
		// then more lines, while flowctl was down): going on at the
		// offset would skip the new file's first lines.
		ioWriteFile(t, path, lines(10, 100))
		got := resumeAt(t, em.pos[1])
		if len(got) != 10 || got[0] != "in:1" {
			t.Fatalf("ids = %v, want the rewritten file from its start", got)
		}
	})
	t.Run("replaced file starts over", func(t *testing.T) {
		tmp := filepath.Join(dir, "new")
		ioWriteFile(t, tmp, lines(10, 100))
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		got := resumeAt(t, em.pos[1])
		if len(got) != 10 || got[0] != "in:1" {
			t.Fatalf("ids = %v, want the new file from its start", got)
		}
	})
}

func TestFileSinkResume(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	ctx := context.Background()
	open := func(t *testing.T, cfg flow.Config, resume int64) (flow.Sink, error) {
		t.Helper()
		spec, err := NewRegistry().Lookup(flow.RoleSink, "file")
		if err != nil {
			t.Fatal(err)
		}
		if err := spec.Validate(cfg); err != nil {
			t.Fatal(err)
		}
		c, err := spec.New(flow.BuildContext{Name: "out", Config: cfg, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if resume >= 0 {
			if err := c.(flow.CheckpointSink).Resume(resume, false); err != nil {
				t.Fatal(err)
			}
		}
		return c.(flow.Sink), c.(flow.Opener).Open(ctx)
	}
	cfg := flow.Config{"path": "out.jsonl"}
	s, err := open(t, cfg, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, ioSampleBatch()); err != nil {
		t.Fatal(err)
	}
	committed := s.(flow.CheckpointSink).Position()
	if err := s.(flow.CheckpointSink).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(path)
	if int64(len(want)) != committed {
		t.Fatalf("Position = %d, file holds %d bytes", committed, len(want))
	}
	// Written after the checkpoint, and a torn last line.
	if err := s.Write(ctx, ioSampleBatch()); err != nil {
		t.Fatal(err)
	}
	ioClose(t, s)
	ioAppendFile(t, path, `{"half":`)
	tail := string(want) + string(want) + `{"half":`

	// The replayed events match what follows the checkpoint: nothing is
	// rewritten and the file never shrinks; the torn line is replaced by
	// what comes next.
	s, err = open(t, cfg, committed)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != tail {
		t.Fatalf("opening a resumed sink changed the file:\n%s", got)
	}
	if err := s.Write(ctx, ioSampleBatch()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != tail {
		t.Fatalf("replaying the same events rewrote the file:\n%s", got)
	}
	if p := s.(flow.CheckpointSink).Position(); p != 2*committed {
		t.Fatalf("Position = %d after the replay, want %d", p, 2*committed)
	}
	if r := s.(flow.ReplayCounter).Replayed(); r != int64(len(ioSampleBatch())) {
		t.Fatalf("Replayed = %d, want the %d lines found already written", r, len(ioSampleBatch()))
	}
	next := []*flow.Event{{ID: "n", Data: []byte(`{"next":1}`)}}
	if err := s.Write(ctx, next); err != nil {
		t.Fatal(err)
	}
	ioClose(t, s)
	if got, _ := os.ReadFile(path); string(got) != string(want)+string(want)+`{"next":1}`+"\n" {
		t.Fatalf("after the replay and a new event:\n%s", got)
	}

	// Replayed events that differ (a step whose output changes between
	// runs) replace the old tail from the first byte that differs.
	s, err = open(t, cfg, committed)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, next); err != nil {
		t.Fatal(err)
	}
	ioClose(t, s)
	if got, _ := os.ReadFile(path); string(got) != string(want)+`{"next":1}`+"\n" {
		t.Fatalf("a differing replay did not replace the tail:\n%s", got)
	}

	t.Run("shorter than the checkpoint", func(t *testing.T) {
		ioWriteFile(t, path, "x\n")
		_, err := open(t, cfg, committed)
		if err == nil || !strings.Contains(err.Error(), "--from-start") {
			t.Fatalf("Open = %v, want an error saying how to start over", err)
		}
		if got, _ := os.ReadFile(path); string(got) != "x\n" {
			t.Fatalf("the file was changed: %q", got)
		}
	})
	t.Run("mode append on a first run keeps the file", func(t *testing.T) {
		ioWriteFile(t, path, "old\n")
		s, err := open(t, flow.Config{"path": "out.jsonl", "mode": "append"}, -1)
		if err != nil {
			t.Fatal(err)
		}
		if p := s.(flow.CheckpointSink).Position(); p != 4 {
			t.Fatalf("Position = %d, want the existing 4 bytes", p)
		}
		ioClose(t, s)
	})
	t.Run("append contradicting mode", func(t *testing.T) {
		spec, _ := NewRegistry().Lookup(flow.RoleSink, "file")
		err := spec.Validate(flow.Config{"path": "x", "mode": "truncate", "append": true})
		if err == nil || !strings.Contains(err.Error(), "contradicts") {
			t.Fatalf("Validate = %v", err)
		}
	})
}

func TestGenerateResume(t *testing.T) {
	src := genNew(t, flow.Config{"count": 1000, "batch_size": 100, "expr": genExpr})
	if err := src.(flow.Resumer).Resume(map[string][]byte{"": []byte(`{"next":500}`)}); err != nil {
		t.Fatal(err)
	}
	em := &posEmitter{}
	if err := src.Run(context.Background(), em); err != nil {
		t.Fatal(err)
	}
	ids := em.ids()
	if len(ids) != 500 || ids[0] != "gen:500" || ids[499] != "gen:999" {
		t.Fatalf("%d ids from %s", len(ids), ids[0])
	}
	if last := em.pos[len(em.pos)-1]; string(last.Value) != `{"next":1000}` {
		t.Fatalf("last position %s", last.Value)
	}
	if err := genNew(t, flow.Config{"count": 10, "expr": genExpr}).(flow.Resumer).Resume(map[string][]byte{"": []byte(`x`)}); err == nil {
		t.Fatal("an unreadable checkpoint was taken")
	}
}

func TestSQLiteSinkResume(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func(t *testing.T, resume int64) *sqliteSink {
		return openSQLiteSink(t, dir, flow.Config{"path": "ev.db", "table": "ev", "create": true}, resume)
	}
	batch := func(from, n int) []*flow.Event {
		var b []*flow.Event
		for i := from; i < from+n; i++ {
			b = append(b, &flow.Event{ID: strconv.Itoa(i), Data: []byte(`{"n":` + strconv.Itoa(i) + `}`)})
		}
		return b
	}
	count := func(s *sqliteSink) (n int) {
		t.Helper()
		if err := s.db.QueryRow("SELECT count(*) FROM ev").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	s := open(t, -1)
	if err := s.Write(ctx, batch(0, 5)); err != nil {
		t.Fatal(err)
	}
	committed := s.Position()
	if committed != 5 {
		t.Fatalf("Position = %d after 5 rows", committed)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, batch(5, 3)); err != nil {
		t.Fatal(err)
	}
	ioClose(t, s)

	s = open(t, committed)
	if n := count(s); n != 5 {
		t.Fatalf("%d rows after resuming at rowid 5, want 5", n)
	}
	if r := s.Replayed(); r != 3 {
		t.Fatalf("Replayed = %d, want the 3 rows deleted", r)
	}
	if err := s.Write(ctx, batch(5, 3)); err != nil {
		t.Fatal(err)
	}
	if n, p := count(s), s.Position(); n != 8 || p != 8 {
		t.Fatalf("%d rows, Position %d; want 8 and 8", n, p)
	}
	ioClose(t, s)
	if got := open(t, -1).Position(); got != 8 {
		t.Fatalf("a first run over the existing table starts at %d, want 8", got)
	}
}

// TestFileSinkCompletesUnterminatedLine: a file whose last line has no
// newline — torn by a SIGKILL in the middle of a batch bigger than the
// write buffer, or written so by someone else — must not have the next
// event glued to it when the sink keeps what the file holds (mode:
// append, or a resumed run fed by a source that cannot be replayed):
// both lines would be lost to a reader. The unterminated line is kept and
// completed; nothing is cut.
func TestFileSinkCompletesUnterminatedLine(t *testing.T) {
	next := []*flow.Event{{ID: "n", Data: []byte(`{"next":1}`)}}
	for _, tt := range []struct {
		name   string
		cfg    flow.Config
		resume int64 // -1: a first run
	}{
		{"mode append", flow.Config{"path": "out.jsonl", "mode": "append"}, -1},
		{"resumed, fed by a source that cannot be replayed", flow.Config{"path": "out.jsonl"}, 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.jsonl")
			ioWriteFile(t, path, `{"a":1}`+"\n"+`{"half":`)
			spec, _ := NewRegistry().Lookup(flow.RoleSink, "file")
			c, err := spec.New(flow.BuildContext{Name: "out", Config: tt.cfg, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if tt.resume >= 0 {
				if err := c.(flow.CheckpointSink).Resume(tt.resume, true); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.(flow.Opener).Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			s := c.(flow.Sink)
			if err := s.Write(context.Background(), next); err != nil {
				t.Fatal(err)
			}
			ioClose(t, s)
			want := `{"a":1}` + "\n" + `{"half":` + "\n" + `{"next":1}` + "\n"
			if got, _ := os.ReadFile(path); string(got) != want {
				t.Fatalf("file:\n%q\nwant\n%q", got, want)
			}
			if p, n := c.(flow.CheckpointSink).Position(), int64(len(want)); p != n {
				t.Fatalf("Position = %d, want %d", p, n)
			}
		})
	}
}

// TestSQLiteSinkResumeKeepsRowidAlias: in a table whose INTEGER PRIMARY
// KEY column is written from the events, rowids are the events' own
// values, not the order of insertion: "rowid above the committed one"
// then names rows committed long before the checkpoint. A resumed run
// must keep them (and is at-least-once) rather than delete them.
func TestSQLiteSinkResumeKeepsRowidAlias(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func(t *testing.T, resume int64) *sqliteSink {
		return openSQLiteSink(t, dir, flow.Config{"path": "ev.db", "table": "ev", "create": false, "columns": []any{"id", "v"}}, resume)
	}
	s := open(t, -1)
	if _, err := s.db.Exec(`CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	b := []*flow.Event{{ID: "1", Data: []byte(`{"id":100,"v":"a"}`)}, {ID: "2", Data: []byte(`{"id":5,"v":"b"}`)}}
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	committed := s.Position() // 5: the last row's id
	ioClose(t, s)

	s = open(t, committed)
	defer ioClose(t, s)
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM ev").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d rows after resuming at the checkpoint, want both committed rows", n)
	}
}

// openSQLiteSink builds a sqlite sink "db" of cfg in dir and opens it,
// resumed at resume when it is not negative.
func openSQLiteSink(t *testing.T, dir string, cfg flow.Config, resume int64) *sqliteSink {
	t.Helper()
	spec, err := NewRegistry().Lookup(flow.RoleSink, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	c, err := spec.New(flow.BuildContext{Name: "db", Config: cfg, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s := c.(*sqliteSink)
	if resume >= 0 {
		if err := s.Resume(resume, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}
