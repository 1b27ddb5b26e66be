package components

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/flowctl/flowctl/internal/flow"
)

func pqNewSink(t *testing.T, dir string, cfg flow.Config) *tableSink {
	t.Helper()
	cfg["path"] = dir
	s, err := parseTableSink(cfg, "parquet")
	if err != nil {
		t.Fatal(err)
	}
	s.name = "pq"
	s.log = testLogger(t)
	return s
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// pqEvents makes events id-1..id-n whose data is produced by data(i).
func pqEvents(from, n int, data func(i int) string) []*flow.Event {
	evs := make([]*flow.Event, n)
	for k := range evs {
		i := from + k
		evs[k] = &flow.Event{ID: fmt.Sprintf("id-%d", i), Type: "t", Source: "src",
			Time: time.Unix(1700000000, int64(i)).UTC(), Data: []byte(data(i))}
	}
	return evs
}

func pqStdData(i int) string {
	return fmt.Sprintf(`{"n":%d,"x":%d.5,"s":"v%d","ok":%v,"obj":{"k":[%d]}}`, i, i, i, i%2 == 0, i)
}

// pqReadDir reads every finished file of dir: rows as column name →
// value (nil for null), per file, and the row group counts.
func pqReadDir(t *testing.T, dir string) (files [][]map[string]any, groups []int) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "part-*.parquet"))
	slices.Sort(names)
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cols := pf.Schema().Columns()
		groups = append(groups, len(pf.RowGroups()))
		r := parquet.NewReader(pf)
		var rows []map[string]any
		buf := make([]parquet.Row, 64)
		for {
			n, err := r.ReadRows(buf)
			for _, row := range buf[:n] {
				m := map[string]any{}
				for _, v := range row {
					col := cols[v.Column()][0]
					leaf, _ := pf.Schema().Lookup(col)
					switch {
					case v.IsNull():
						m[col] = nil
					case leaf.Node.Type().Kind() == parquet.Int64:
						m[col] = v.Int64()
					case leaf.Node.Type().Kind() == parquet.Double:
						m[col] = v.Double()
					case leaf.Node.Type().Kind() == parquet.Boolean:
						m[col] = v.Boolean()
					default:
						m[col] = string(v.ByteArray())
					}
				}
				rows = append(rows, m)
			}
			if err != nil {
				break
			}
		}
		r.Close()
		f.Close()
		files = append(files, rows)
	}
	return files, groups
}

func TestParquetSinkRollsAndInfers(t *testing.T) {
	dir := t.TempDir()
	s := pqNewSink(t, dir, flow.Config{"max_rows": 300, "row_group_rows": 100})
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i += 250 {
		if err := s.Write(ctx, pqEvents(i, 250, pqStdData)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Position(); got != 1000 {
		t.Fatalf("position %d, want 1000", got)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	files, groups := pqReadDir(t, dir)
	var sizes []int
	for _, f := range files {
		sizes = append(sizes, len(f))
	}
	if !slices.Equal(sizes, []int{300, 300, 300, 100}) || !slices.Equal(groups, []int{3, 3, 3, 1}) {
		t.Fatalf("rows per file %v, row groups %v; want [300 300 300 100], [3 3 3 1]", sizes, groups)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) > 0 {
		t.Fatalf("temporary files left after Close: %v", left)
	}
	row := files[1][7] // event 307
	want := map[string]any{"_id": "id-307", "_type": "t", "_time": time.Unix(1700000000, 307).UnixNano(),
		"n": int64(307), "x": 307.5, "s": "v307", "ok": false, "obj": `{"k":[307]}`}
	for k, v := range want {
		if row[k] != v {
			t.Errorf("column %s = %#v, want %#v", k, row[k], v)
		}
	}
	if len(row) != len(want) {
		t.Errorf("row has columns %v, want %d", row, len(want))
	}
}

func TestParquetSinkConversions(t *testing.T) {
	tests := []struct {
		name   string
		schema []any
		data   string
		want   any    // value of column v
		errHas string // else: dead-lettered with this reason
	}{
		{"int", []any{"int64"}, `{"v":42}`, int64(42), ""},
		{"int from integral float", []any{"int64"}, `{"v":42.0}`, int64(42), ""},
		{"int from fraction", []any{"int64"}, `{"v":4.5}`, nil, "not an integer"},
		{"int from string", []any{"int64"}, `{"v":"42"}`, nil, "not an integer"},
		{"double from int", []any{"double"}, `{"v":3}`, 3.0, ""},
		{"double from huge int", []any{"double"}, `{"v":9007199254740993}`, nil, "exactly"},
		{"string", []any{"string"}, `{"v":"a\"b"}`, `a"b`, ""},
		{"string from number", []any{"string"}, `{"v":1}`, nil, "not a string"},
		{"bool", []any{"bool"}, `{"v":true}`, true, ""},
		{"timestamp", []any{"timestamp"}, `{"v":"2024-01-02T03:04:05.5Z"}`, time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC).UnixNano(), ""},
		{"timestamp garbage", []any{"timestamp"}, `{"v":"yesterday"}`, nil, "RFC 3339"},
		{"json", []any{"json"}, `{"v": [1, {"a": 2}]}`, `[1,{"a":2}]`, ""},
		{"null optional", []any{"string"}, `{"v":null}`, nil, ""},
		{"missing required", []any{"string", false}, `{}`, nil, "required field"},
		{"unknown field", []any{"string"}, `{"v":"a","w":1}`, nil, `"w" has no column`},
		{"not an object", []any{"string"}, `[1]`, nil, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			col := map[string]any{"name": "v", "type": tt.schema[0]}
			if len(tt.schema) > 1 {
				col["optional"] = tt.schema[1]
			}
			s := pqNewSink(t, dir, flow.Config{"schema": []any{col}, "attributes": []any{}})
			ctx := context.Background()
			if err := s.Open(ctx); err != nil {
				t.Fatal(err)
			}
			err := s.Write(ctx, pqEvents(0, 1, func(int) string { return tt.data }))
			var be *flow.BatchError
			if tt.errHas != "" {
				if !errors.As(err, &be) || be.Failed[0] == nil || !strings.Contains(be.Failed[0].Error(), tt.errHas) {
					t.Fatalf("err = %v, want the event failed with %q", err, tt.errHas)
				}
				t.Logf("dead-letter reason: %v", be.Failed[0])
			} else if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			files, _ := pqReadDir(t, dir)
			if tt.errHas != "" {
				if len(files) != 0 {
					t.Fatalf("a failed event made a file: %v", files)
				}
				return
			}
			if len(files) != 1 || len(files[0]) != 1 || files[0][0]["v"] != tt.want {
				t.Fatalf("read back %v, want v=%#v", files, tt.want)
			}
		})
	}
}

// TestParquetSinkResume plays what the engine does around a crash: rows
// are written, a checkpoint syncs at position P, the process dies (the
// sink is abandoned, never closed), and a new sink resumes at P while the
// source sends everything after P again.
func TestParquetSinkResume(t *testing.T) {
	tests := []struct {
		name      string
		written   int // rows written before the crash
		committed int // position of the last checkpoint
	}{
		{"checkpoint inside the open file", 650, 620},
		{"checkpoint before a finished file's end", 650, 550},
		{"checkpoint at a file boundary", 600, 600},
		{"nothing committed in the open file", 650, 600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			cfg := func() flow.Config { return flow.Config{"max_rows": 300, "row_group_rows": 64} }
			s1 := pqNewSink(t, dir, cfg())
			if err := s1.Open(ctx); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tt.written; i += 10 {
				if err := s1.Write(ctx, pqEvents(i, 10, pqStdData)); err != nil {
					t.Fatal(err)
				}
				if i+10 == tt.committed {
					if err := s1.Sync(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Crash: s1 is never closed. Its roll timer is stopped so it
			// cannot finish the file behind the new run's back.
			close(s1.stop)
			<-s1.done

			s2 := pqNewSink(t, dir, cfg())
			if err := s2.Resume(int64(tt.committed), false); err != nil {
				t.Fatal(err)
			}
			if err := s2.Open(ctx); err != nil {
				t.Fatal(err)
			}
			for i := tt.committed; i < 1000; i += 10 {
				if err := s2.Write(ctx, pqEvents(i, 10, pqStdData)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s2.Close(ctx); err != nil {
				t.Fatal(err)
			}
			files, _ := pqReadDir(t, dir)
			seen := map[int64]int{}
			total := 0
			for _, f := range files {
				for _, r := range f {
					seen[r["n"].(int64)]++
					total++
				}
			}
			lost, repeated := 0, 0
			for i := int64(0); i < 1000; i++ {
				switch c := seen[i]; {
				case c == 0:
					lost++
				case c > 1:
					repeated += c - 1
				}
			}
			t.Logf("%d rows in %d files; lost %d, repeated %d; replayed rows skipped %d", total, len(files), lost, repeated, s2.Replayed())
			if lost != 0 || repeated != 0 || total != 1000 {
				t.Fatalf("lost %d, repeated %d, total %d", lost, repeated, total)
			}
		})
	}
}

func TestParquetSinkMaxAge(t *testing.T) {
	dir := t.TempDir()
	s := pqNewSink(t, dir, flow.Config{"max_age": "50ms"})
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if err := s.Write(ctx, pqEvents(0, 5, pqStdData)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		names, _ := filepath.Glob(filepath.Join(dir, "part-*.parquet"))
		if len(names) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the file was not finished after max_age")
		}
		time.Sleep(20 * time.Millisecond)
	}
	files, _ := pqReadDir(t, dir)
	if len(files) != 1 || len(files[0]) != 5 {
		t.Fatalf("read back %v", files)
	}
}

func TestParquetSinkConfigErrors(t *testing.T) {
	tests := []struct {
		cfg    flow.Config
		errHas string
	}{
		{flow.Config{}, "path"},
		{flow.Config{"path": "d", "schema": []any{map[string]any{"name": "a", "type": "float"}}}, "unknown type"},
		{flow.Config{"path": "d", "schema": []any{map[string]any{"name": "_a", "type": "string"}}}, "starts with _"},
		{flow.Config{"path": "d", "attributes": []any{"color"}}, "unknown attribute"},
		{flow.Config{"path": "d", "max_rows": 0}, "max_rows"},
		{flow.Config{"path": "d", "compression": "lzo"}, "codec"},
		{flow.Config{"path": "d", "file_prefix": "a/b"}, "file_prefix"},
	}
	for _, tt := range tests {
		_, err := parseTableSink(tt.cfg, "parquet")
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%v: err = %v, want %q", tt.cfg, err, tt.errHas)
		}
	}
}

// TestParquetSinkNextRun checks a run without a checkpoint for the
// output: it numbers its files after the existing ones, never touches
// them, goes on with the inferred schema they carry, and discards an
// unfinished file and journal of a run that committed nothing.
func TestParquetSinkNextRun(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s1 := pqNewSink(t, dir, flow.Config{})
	if err := s1.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s1.Write(ctx, pqEvents(0, 10, pqStdData)); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A crashed run's leftovers, never synced by a checkpoint.
	os.WriteFile(filepath.Join(dir, ".part-000002.parquet.tmp"), []byte("PAR1"), 0o644)
	os.WriteFile(filepath.Join(dir, ".part-000002.journal"), []byte(`{"start":10,"columns":[]}`+"\n[1]\n"), 0o644)

	s2 := pqNewSink(t, dir, flow.Config{})
	if err := s2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if s2.cols == nil || pqDescribe(s2.cols) != pqDescribe(s1.cols) {
		t.Fatalf("schema %q, want the first run's %q", pqDescribe(s2.cols), pqDescribe(s1.cols))
	}
	if s2.Position() != 10 {
		t.Fatalf("position %d, want the 10 rows already there", s2.Position())
	}
	// Only n: the other columns are null, the schema stays.
	if err := s2.Write(ctx, pqEvents(10, 5, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	files, _ := pqReadDir(t, dir)
	if len(files) != 2 || len(files[0]) != 10 || len(files[1]) != 5 {
		t.Fatalf("files %v", files)
	}
	if r := files[1][0]; r["n"] != int64(10) || r["s"] != nil || r["_id"] != "id-10" {
		t.Fatalf("row %v", r)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) > 0 {
		t.Fatalf("leftovers not removed: %v", left)
	}
}

// BenchmarkParquetSinkWrite measures the write path (conversion, journal,
// Parquet writer) of batches of 256 events, files rolled every 100,000 rows.
func BenchmarkParquetSinkWrite(b *testing.B) {
	s, err := parseTableSink(flow.Config{"path": b.TempDir(), "max_rows": 100000}, "parquet")
	if err != nil {
		b.Fatal(err)
	}
	s.name, s.log = "pq", slog.New(slog.DiscardHandler)
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		b.Fatal(err)
	}
	batch := pqEvents(0, 256, pqStdData)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

// TestParquetSinkWriteSurvivesKill: a source that cannot be replayed
// (http with sync, kafka, nats, postgres cdc) answers its client or
// commits its offset as soon as the sink's Write returns, before any
// checkpoint. So what Write returned from must be in the journal on disk,
// not in a buffer of the process: after a SIGKILL right then, a resumed
// run that keeps the journal's tail must hold every row.
func TestParquetSinkWriteSurvivesKill(t *testing.T) {
	tableSinkWriteSurvivesKill(t, pqNewSink, func(dir string) int {
		files, _ := pqReadDir(t, dir)
		rows := 0
		for _, f := range files {
			rows += len(f)
		}
		return rows
	})
}

// tableSinkWriteSurvivesKill writes 30 rows with one sink, abandons it as
// a SIGKILL would (no Sync, no Close), resumes another on the same
// directory from the position committed at open, fed by a source that
// cannot be replayed, and counts the rows (read back by rows).
func tableSinkWriteSurvivesKill(t *testing.T, newSink func(*testing.T, string, flow.Config) *tableSink, rows func(dir string) int) {
	dir := t.TempDir()
	ctx := context.Background()
	s1 := newSink(t, dir, flow.Config{})
	if err := s1.Open(ctx); err != nil {
		t.Fatal(err)
	}
	start := s1.Position() // what the engine commits once the sink is open
	for i := 0; i < 30; i += 10 {
		if err := s1.Write(ctx, pqEvents(i, 10, pqStdData)); err != nil {
			t.Fatal(err)
		}
	}
	close(s1.stop)
	<-s1.done

	s2 := newSink(t, dir, flow.Config{})
	if err := s2.Resume(start, true); err != nil {
		t.Fatal(err)
	}
	if err := s2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rows(dir); n != 30 {
		t.Fatalf("%d rows after the kill and the resumed run, want the 30 that Write returned from", n)
	}
}
