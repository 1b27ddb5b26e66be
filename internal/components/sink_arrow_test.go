//go:build arrow

package components

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/flowctl/flowctl/internal/flow"
)

func arNewSink(t *testing.T, dir string, cfg flow.Config) *tableSink {
	t.Helper()
	cfg["path"] = dir
	s, err := parseTableSink(cfg, "arrow")
	if err != nil {
		t.Fatal(err)
	}
	s.name = "ar"
	s.log = testLogger(t)
	return s
}

// arFile is a finished Arrow file read back with arrow-go's readers.
type arFile struct {
	schema  *arrow.Schema
	batches []int            // rows per record batch
	rows    []map[string]any // column name → Go value (nil for null)
}

// arValue returns row i of column c as a plain Go value.
func arValue(t *testing.T, c arrow.Array, i int) any {
	t.Helper()
	if c.IsNull(i) {
		return nil
	}
	switch a := c.(type) {
	case *array.String:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Timestamp:
		return int64(a.Value(i))
	case array.ExtensionArray: // arrow.json, when its type is registered
		return arValue(t, a.Storage(), i)
	}
	t.Fatalf("unexpected Arrow array %T", c)
	return nil
}

// arReadDir reads every finished file of dir (ext arrow or arrows) in
// name order.
func arReadDir(t *testing.T, dir, ext string) []arFile {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "part-*."+ext))
	slices.Sort(names)
	var files []arFile
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		var af arFile
		add := func(rec arrow.RecordBatch) {
			af.batches = append(af.batches, int(rec.NumRows()))
			for i := range int(rec.NumRows()) {
				row := map[string]any{}
				for j, col := range rec.Columns() {
					row[rec.ColumnName(j)] = arValue(t, col, i)
				}
				af.rows = append(af.rows, row)
			}
		}
		if ext == "arrows" {
			r, err := ipc.NewReader(f)
			if err != nil {
				t.Fatalf("%s is not an Arrow IPC stream: %v", name, err)
			}
			for r.Next() {
				add(r.RecordBatch())
			}
			if r.Err() != nil {
				t.Fatalf("%s: %v", name, r.Err())
			}
			af.schema = r.Schema()
			r.Release()
		} else {
			r, err := ipc.NewFileReader(f)
			if err != nil {
				t.Fatalf("%s is not an Arrow IPC file: %v", name, err)
			}
			for i := range r.NumRecords() {
				rec, err := r.RecordBatchAt(i)
				if err != nil {
					t.Fatalf("%s batch %d: %v", name, i, err)
				}
				add(rec)
				rec.Release()
			}
			af.schema = r.Schema()
			r.Close()
		}
		f.Close()
		files = append(files, af)
	}
	return files
}

// TestArrowSinkTypesAndValues writes every column type, in the file and
// stream formats and with each codec, and reads the files back with
// arrow-go: the Arrow types, nullability, metadata and values must be
// what docs/arrow.md says.
func TestArrowSinkTypesAndValues(t *testing.T) {
	schema := []any{
		map[string]any{"name": "s", "type": "string", "optional": false},
		map[string]any{"name": "n", "type": "int64"},
		map[string]any{"name": "x", "type": "double"},
		map[string]any{"name": "ok", "type": "bool"},
		map[string]any{"name": "at", "type": "timestamp"},
		map[string]any{"name": "obj", "type": "json"},
	}
	data := func(i int) string {
		if i%3 == 2 { // only the required column: the others are null
			return fmt.Sprintf(`{"s":"only-%d"}`, i)
		}
		return fmt.Sprintf(`{"s":"v%d","n":%d,"x":%d.25,"ok":%v,"at":"2026-01-02T03:04:05.%03dZ","obj":{"k": [%d, "a"]}}`, i, i-5, i, i%2 == 0, i, i)
	}
	for _, tt := range []struct{ format, codec string }{
		{"file", "none"}, {"file", "lz4"}, {"file", "zstd"}, {"stream", "none"}, {"stream", "zstd"},
	} {
		t.Run(tt.format+"/"+tt.codec, func(t *testing.T) {
			dir := t.TempDir()
			s := arNewSink(t, dir, flow.Config{"schema": schema, "attributes": []any{"id", "subject", "time"},
				"arrow_format": tt.format, "compression": tt.codec, "batch_rows": 4, "max_rows": 10})
			ctx := context.Background()
			if err := s.Open(ctx); err != nil {
				t.Fatal(err)
			}
			evs := pqEvents(0, 12, data)
			evs[1].Subject = "sub-1"
			if err := s.Write(ctx, evs); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			ext := map[string]string{"file": "arrow", "stream": "arrows"}[tt.format]
			files := arReadDir(t, dir, ext)
			if len(files) != 2 || !slices.Equal(files[0].batches, []int{4, 4, 2}) || !slices.Equal(files[1].batches, []int{2}) {
				t.Fatalf("%d files, batches %v; want 2 files with batches [4 4 2] and [2]", len(files), files)
			}
			wantTypes := map[string]struct {
				typ      string
				nullable bool
			}{
				"_id": {"utf8", false}, "_subject": {"utf8", true}, "_time": {"timestamp[ns, tz=UTC]", true},
				"s": {"utf8", false}, "n": {"int64", true}, "x": {"float64", true}, "ok": {"bool", true},
				"at": {"timestamp[ns, tz=UTC]", true}, "obj": {"utf8", true},
			}
			sch := files[0].schema
			if sch.NumFields() != len(wantTypes) {
				t.Fatalf("schema %v, want %d fields", sch, len(wantTypes))
			}
			for _, f := range sch.Fields() {
				w, ok := wantTypes[f.Name]
				typ := f.Type
				if ext, isExt := typ.(arrow.ExtensionType); isExt {
					typ = ext.StorageType()
				}
				if !ok || typ.String() != w.typ || f.Nullable != w.nullable {
					t.Errorf("field %s: %s nullable=%v, want %s nullable=%v", f.Name, typ, f.Nullable, w.typ, w.nullable)
				}
			}
			obj, _ := sch.FieldsByName("obj")
			if name, _ := obj[0].Metadata.GetValue(ipc.ExtensionTypeKeyName); name != "arrow.json" {
				if ext, ok := obj[0].Type.(arrow.ExtensionType); !ok || ext.ExtensionName() != "arrow.json" {
					t.Errorf("obj is not marked as the arrow.json extension: %v", obj[0])
				}
			}
			if v, ok := sch.Metadata().GetValue(pqSchemaKey); !ok || !strings.Contains(v, `"name":"obj","type":"json"`) {
				t.Errorf("schema metadata %s = %q", pqSchemaKey, v)
			}
			var rows []map[string]any
			for _, f := range files {
				rows = append(rows, f.rows...)
			}
			at := func(i int) int64 { return time.Date(2026, 1, 2, 3, 4, 5, i*1e6, time.UTC).UnixNano() }
			for i, want := range []map[string]any{
				0:  {"_id": "id-0", "_subject": nil, "_time": evs[0].Time.UnixNano(), "s": "v0", "n": int64(-5), "x": 0.25, "ok": true, "at": at(0), "obj": `{"k":[0,"a"]}`},
				1:  {"_id": "id-1", "_subject": "sub-1", "_time": evs[1].Time.UnixNano(), "s": "v1", "n": int64(-4), "x": 1.25, "ok": false, "at": at(1), "obj": `{"k":[1,"a"]}`},
				2:  {"_id": "id-2", "_subject": nil, "_time": evs[2].Time.UnixNano(), "s": "only-2", "n": nil, "x": nil, "ok": nil, "at": nil, "obj": nil},
				11: {"_id": "id-11", "_subject": nil, "_time": evs[11].Time.UnixNano(), "s": "only-11", "n": nil, "x": nil, "ok": nil, "at": nil, "obj": nil},
				10: {"_id": "id-10", "_subject": nil, "_time": evs[10].Time.UnixNano(), "s": "v10", "n": int64(5), "x": 10.25, "ok": true, "at": at(10), "obj": `{"k":[10,"a"]}`},
			} {
				if want == nil {
					continue
				}
				for k, v := range want {
					if rows[i][k] != v {
						t.Errorf("row %d column %s = %#v, want %#v", i, k, rows[i][k], v)
					}
				}
			}
			// Only the index of finished files stays (TestArrowSinkRowIndex).
			left, _ := filepath.Glob(filepath.Join(dir, ".*"))
			if want := []string{filepath.Join(dir, ".part."+ext+".rows")}; !slices.Equal(left, want) {
				t.Fatalf("dot-files left after Close: %v, want only %v", left, want)
			}
		})
	}
}

// TestArrowSinkInfers checks the inferred schema's Arrow types.
func TestArrowSinkInfers(t *testing.T) {
	dir := t.TempDir()
	s := arNewSink(t, dir, flow.Config{})
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, pqEvents(0, 3, pqStdData)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	files := arReadDir(t, dir, "arrow")
	if len(files) != 1 || len(files[0].rows) != 3 {
		t.Fatalf("files %v", files)
	}
	got := map[string]string{}
	for _, f := range files[0].schema.Fields() {
		got[f.Name] = f.Type.String()
		if ext, ok := f.Type.(arrow.ExtensionType); ok {
			got[f.Name] = ext.StorageType().String()
		}
	}
	want := map[string]string{"_id": "utf8", "_type": "utf8", "_time": "timestamp[ns, tz=UTC]",
		"n": "int64", "x": "float64", "s": "utf8", "ok": "bool", "obj": "utf8"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("inferred %v, want %v", got, want)
	}
	if r := files[0].rows[2]; r["n"] != int64(2) || r["x"] != 2.5 || r["s"] != "v2" || r["ok"] != true || r["obj"] != `{"k":[2]}` || r["_type"] != "t" {
		t.Fatalf("row 2 = %v", r)
	}
}

// TestArrowSinkBadEvents: an event that does not fit the schema fails
// alone, permanently (for the dead-letter sink), and the others are
// written.
func TestArrowSinkBadEvents(t *testing.T) {
	dir := t.TempDir()
	s := arNewSink(t, dir, flow.Config{"schema": []any{map[string]any{"name": "n", "type": "int64", "optional": false}}, "attributes": []any{}})
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	datas := []string{`{"n":1}`, `{"n":"two"}`, `{"n":3.5}`, `not json`, `{"n":5,"extra":true}`, `{}`, `{"n":7}`}
	err := s.Write(ctx, pqEvents(0, len(datas), func(i int) string { return datas[i] }))
	var be *flow.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a BatchError", err)
	}
	for i, want := range map[int]string{1: "not an integer", 2: "not an integer", 3: "not a JSON object (the arrow sink", 4: `"extra" has no column`, 5: "required field"} {
		if be.Failed[i] == nil || !strings.Contains(be.Failed[i].Error(), want) || !errors.Is(be.Failed[i], flow.ErrPermanent) {
			t.Errorf("event %d: %v, want a permanent error with %q", i, be.Failed[i], want)
		}
	}
	if len(be.Failed) != 5 {
		t.Errorf("failed %v, want events 1-5", be.Failed)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	files := arReadDir(t, dir, "arrow")
	if len(files) != 1 || len(files[0].rows) != 2 || files[0].rows[0]["n"] != int64(1) || files[0].rows[1]["n"] != int64(7) {
		t.Fatalf("read back %v, want n=1 and n=7", files)
	}
}

// TestArrowSinkResume plays a crash as TestParquetSinkResume does: rows
// written, a checkpoint at P, the sink abandoned; a new sink resumes at P
// while the source sends everything after P again.
func TestArrowSinkResume(t *testing.T) {
	tests := []struct {
		name      string
		format    string
		written   int
		committed int
	}{
		{"file: checkpoint inside the open file", "file", 650, 620},
		{"file: checkpoint before a finished file's end", "file", 650, 550},
		{"file: checkpoint at a file boundary", "file", 600, 600},
		{"stream: checkpoint inside the open file", "stream", 650, 620},
		{"stream: checkpoint before a finished file's end", "stream", 650, 550},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			cfg := func() flow.Config {
				return flow.Config{"max_rows": 300, "batch_rows": 64, "arrow_format": tt.format, "compression": "lz4"}
			}
			s1 := arNewSink(t, dir, cfg())
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
			close(s1.stop)
			<-s1.done

			s2 := arNewSink(t, dir, cfg())
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
			ext := map[string]string{"file": "arrow", "stream": "arrows"}[tt.format]
			seen := map[int64]int{}
			total := 0
			files := arReadDir(t, dir, ext)
			for _, f := range files {
				for _, r := range f.rows {
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

// TestArrowSinkRowIndex: a resumed arrow sink counts its finished files'
// rows from the index beside them (.PREFIX.arrow.rows), not by reading
// the files; a file the index does not list as it is now is read.
func TestArrowSinkRowIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := func() flow.Config { return flow.Config{"max_rows": 300, "batch_rows": 64} }
	s1 := arNewSink(t, dir, cfg())
	if err := s1.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s1.Write(ctx, pqEvents(0, 1000, pqStdData)); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, ".part.arrow.rows")
	b, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for l := range strings.Lines(string(b)) {
		var e rowIndexEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("index line %q: %v", l, err)
		}
		rows = append(rows, fmt.Sprintf("%s=%d", e.File, e.Rows))
	}
	if want := []string{"part-000001.arrow=300", "part-000002.arrow=300", "part-000003.arrow=300", "part-000004.arrow=100"}; !slices.Equal(rows, want) {
		t.Fatalf("index lists %v, want %v", rows, want)
	}

	// Spoil the body of file 2 but keep its size and time: a resume that
	// reads it fails, one that trusts the index does not.
	f2 := filepath.Join(dir, "part-000002.arrow")
	fi, err := os.Stat(f2)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(f2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 16; i < len(body)-16; i++ {
		body[i] = 0xff
	}
	if err := os.WriteFile(f2, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f2, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	resume := func() error {
		s := arNewSink(t, dir, cfg())
		if err := s.Resume(1000, false); err != nil {
			t.Fatal(err)
		}
		err := s.Open(ctx)
		if err == nil {
			if got := s.Position(); got != 1000 {
				t.Errorf("resumed at %d rows, want 1000", got)
			}
			close(s.stop)
			<-s.done
		}
		return err
	}
	if err := resume(); err != nil {
		t.Fatalf("resume with the index: %v", err)
	}

	// A torn last line and a file listed with another time: that file is
	// read (and, spoiled, refused with the reason).
	torn := append(slices.Clone(b), []byte(`{"file":"part-0000`)...)
	if err := os.WriteFile(index, torn, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f2, fi.ModTime().Add(time.Second), fi.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := resume(); err == nil || !strings.Contains(err.Error(), "part-000002.arrow is unreadable") {
		t.Fatalf("resume with file 2 changed since the index: %v, want it read and refused", err)
	}

	// The index never stands in for a file that is gone: without file 2
	// the finished files hold fewer rows than committed, and the resume
	// is refused as before.
	if err := os.WriteFile(index, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f2); err != nil {
		t.Fatal(err)
	}
	if err := resume(); err == nil || !strings.Contains(err.Error(), "fewer than the 1000 committed") {
		t.Fatalf("resume without file 2 and the index: %v, want the row count refused", err)
	}
}

// TestArrowSinkBesideParquet: an arrow and a parquet sink with the same
// prefix in one directory keep apart: own files, journals and positions.
func TestArrowSinkBesideParquet(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	pq := pqNewSink(t, dir, flow.Config{})
	ar := arNewSink(t, dir, flow.Config{})
	for _, s := range []*tableSink{pq, ar} {
		if err := s.Open(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if pq.OutputKey() == ar.OutputKey() {
		t.Fatalf("both sinks have the output key %q", pq.OutputKey())
	}
	if err := pq.Write(ctx, pqEvents(0, 4, pqStdData)); err != nil {
		t.Fatal(err)
	}
	if err := ar.Write(ctx, pqEvents(0, 6, pqStdData)); err != nil {
		t.Fatal(err)
	}
	if pq.journalName(1) == ar.journalName(1) {
		t.Fatalf("shared journal %s", pq.journalName(1))
	}
	for _, s := range []*tableSink{pq, ar} {
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ar2 := arNewSink(t, dir, flow.Config{})
	if err := ar2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer ar2.Close(ctx)
	pqFiles, _ := pqReadDir(t, dir)
	if arFiles := arReadDir(t, dir, "arrow"); len(arFiles) != 1 || len(arFiles[0].rows) != 6 || len(pqFiles) != 1 || len(pqFiles[0]) != 4 || ar2.Position() != 6 {
		t.Fatalf("arrow files %v, parquet files %v, arrow position on reopening %d", arFiles, pqFiles, ar2.Position())
	}
}

func TestArrowSinkConfigErrors(t *testing.T) {
	tests := []struct {
		cfg    flow.Config
		errHas string
	}{
		{flow.Config{}, "path"},
		{flow.Config{"path": "d", "compression": "snappy"}, "Arrow IPC knows lz4 and zstd"},
		{flow.Config{"path": "d", "arrow_format": "feather"}, "arrow_format"},
		{flow.Config{"path": "d", "batch_rows": 0}, "batch_rows"},
		{flow.Config{"path": "d", "schema": []any{map[string]any{"name": "a", "type": "decimal"}}}, "unknown type"},
	}
	for _, tt := range tests {
		_, err := parseTableSink(tt.cfg, "arrow")
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%v: err = %v, want %q", tt.cfg, err, tt.errHas)
		}
	}
}

// TestArrowSinkWriteSurvivesKill: see TestParquetSinkWriteSurvivesKill.
func TestArrowSinkWriteSurvivesKill(t *testing.T) {
	tableSinkWriteSurvivesKill(t, arNewSink, func(dir string) int {
		rows := 0
		for _, f := range arReadDir(t, dir, "arrow") {
			rows += len(f.rows)
		}
		return rows
	})
}
