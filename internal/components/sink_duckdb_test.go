//go:build duckdb && cgo

package components

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

// duckQuery reads rows with the sink's own connection (DuckDB lets one
// instance hold a file) as "col=val,..." strings.
func duckQuery(t *testing.T, conn interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) []string {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(cols))
		for i, c := range cols {
			switch v := vals[i].(type) {
			case map[string]any, []any: // a JSON column
				b, _ := json.Marshal(v)
				vals[i] = string(b)
			}
			parts[i] = fmt.Sprintf("%s=%v", c, vals[i])
		}
		out = append(out, strings.Join(parts, ","))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// duckReopen opens the database file after the sink closed it.
func duckReopen(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func duckFailed(t *testing.T, err error, n int) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var be *flow.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("error %v, want *flow.BatchError", err)
	}
	var idx []string
	for j := range n {
		if be.Failed[j] != nil {
			if !errors.Is(be.Failed[j], flow.ErrPermanent) {
				t.Errorf("event %d: %v is not permanent", j, be.Failed[j])
			}
			idx = append(idx, fmt.Sprint(j))
		}
	}
	return strings.Join(idx, ",")
}

func TestDuckDBSink(t *testing.T) {
	tests := []struct {
		name      string
		cfg       flow.Config
		batches   [][]string
		failed    []string // per batch: sorted failed indexes
		wantRows  []string
		wantTypes string
	}{
		{
			name: "columns and types from the first event",
			batches: [][]string{{
				`{"id":1,"amount":12.5,"kind":"fee","tags":["a","b"],"meta":{"k":"v"},"ok":true}`,
				`{"id":2,"amount":3,"kind":"trade","extra":"ignored"}`,
			}},
			failed: []string{""},
			wantRows: []string{
				`amount=12.5,id=1,kind=fee,meta={"k":"v"},ok=true,tags=["a","b"]`,
				`amount=3,id=2,kind=trade,meta=<nil>,ok=<nil>,tags=<nil>`,
			},
			wantTypes: "amount DOUBLE,id BIGINT,kind VARCHAR,meta JSON,ok BOOLEAN,tags JSON",
		},
		{
			name:      "given columns and types",
			cfg:       flow.Config{"columns": []any{"kind", "id", "amount"}, "types": map[string]any{"amount": "DECIMAL(12,2)", "id": "INTEGER"}},
			batches:   [][]string{{`{"id":1,"kind":"fee","amount":1.25}`}, {`{"id":2}`}},
			failed:    []string{"", ""},
			wantRows:  []string{"kind=fee,id=1,amount=1.25", "kind=<nil>,id=2,amount=<nil>"},
			wantTypes: "kind VARCHAR,id INTEGER,amount DECIMAL(12,2)",
		},
		{
			name:     "events that are not objects, and values the column cannot take, fail alone",
			cfg:      flow.Config{"columns": []any{"id"}, "types": map[string]any{"id": "INTEGER"}},
			batches:  [][]string{{`[1,2]`, `{"id":1}`, `{"id":`, `{"id":"x"}`, `{"id":2}`, `{"id":99999999999}`, `{"id":3}`}},
			failed:   []string{"0,2,3,5"},
			wantRows: []string{"id=1", "id=2", "id=3"},
		},
		{
			name:     "odd names are quoted",
			cfg:      flow.Config{"table": `my "table"`},
			batches:  [][]string{{`{"select":1,"a b":"x"}`}},
			failed:   []string{""},
			wantRows: []string{"a b=x,select=1"},
		},
		{
			name:     "upsert on key, the batch's last row per key wins",
			cfg:      flow.Config{"key": []any{"id"}},
			batches:  [][]string{{`{"id":1,"v":"a"}`, `{"id":2,"v":"b"}`, `{"id":1,"v":"c"}`}, {`{"id":2,"v":"d"}`}},
			failed:   []string{"", ""},
			wantRows: []string{"id=1,v=c", "id=2,v=d"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := flow.Config{"path": "db/test.duckdb", "table": "events"}
			for k, v := range tt.cfg {
				cfg[k] = v
			}
			s := ioNewSink(t, "duckdb", dir, cfg)
			events := 0
			for i, b := range tt.batches {
				err := s.Write(context.Background(), ioEvents(b...))
				if got := duckFailed(t, err, len(b)); got != tt.failed[i] {
					t.Errorf("batch %d: failed %q, want %q (%v)", i, got, tt.failed[i], err)
				}
				events += len(b)
			}
			if got := s.(flow.CheckpointSink).Position(); got != int64(events) {
				t.Errorf("position %d, want %d (every event consumed)", got, events)
			}
			ioClose(t, s)
			db := duckReopen(t, filepath.Join(dir, "db", "test.duckdb"))
			table := ioQuoteIdent(cfg["table"].(string))
			order := "rowid"
			if tt.cfg["key"] != nil {
				order = "id"
			}
			got := duckQuery(t, db, "SELECT * FROM "+table+" ORDER BY "+order)
			if strings.Join(got, "\n") != strings.Join(tt.wantRows, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantRows, "\n"))
			}
			if tt.wantTypes != "" {
				var types []string
				for _, r := range duckQuery(t, db, "SELECT column_name || ' ' || data_type FROM duckdb_columns() WHERE table_name = 'events' ORDER BY column_index") {
					types = append(types, r[strings.Index(r, "=")+1:])
				}
				if got := strings.Join(types, ","); got != tt.wantTypes {
					t.Errorf("types %s, want %s", got, tt.wantTypes)
				}
			}
			pos := duckQuery(t, db, `SELECT position FROM flowctl_sink_positions WHERE sink = 'out'`)
			if len(pos) != 1 || pos[0] != fmt.Sprintf("position=%d", events) {
				t.Errorf("stored position %v, want %d", pos, events)
			}
		})
	}
}

// The position is committed with each batch's rows, and a resumed run
// cuts the table back to the checkpoint it is given: the rows of later
// batches are deleted (their events come again), earlier ones kept.
func TestDuckDBSinkResume(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name         string
		cfg          flow.Config
		resume       int64
		keepTail     bool
		wantRows     int
		wantReplayed int64
	}{
		{name: "cut back to a checkpoint", resume: 4, wantRows: 3, wantReplayed: 2}, // batches 2+2(1 failed)+2: rows 2+1+2
		{name: "cut back to the start", resume: 0, wantRows: 0, wantReplayed: 5},    //
		{name: "checkpoint at the end", resume: 6, wantRows: 5, wantReplayed: 0},    //
		{name: "keep tail keeps every row", resume: 2, keepTail: true, wantRows: 5}, //
		{name: "with key nothing is deleted", cfg: flow.Config{"key": []any{"id"}}, resume: 2, wantRows: 5, wantReplayed: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := flow.Config{"path": "t.duckdb", "table": "events", "columns": []any{"id"}}
			for k, v := range tt.cfg {
				cfg[k] = v
			}
			s := ioNewSink(t, "duckdb", dir, cfg)
			for i, b := range [][]string{{`{"id":1}`, `{"id":2}`}, {`{"id":3}`, `"bad"`}, {`{"id":4}`, `{"id":5}`}} {
				err := s.Write(ctx, ioEvents(b...))
				if (err != nil) != (i == 1) {
					t.Fatalf("batch %d: %v", i, err)
				}
				ds := s.(*duckdbSink)
				want := fmt.Sprintf("position=%d", 2*(i+1))
				if got := duckQuery(t, ds.conn, "SELECT position FROM flowctl_sink_positions"); len(got) != 1 || got[0] != want {
					t.Fatalf("batch %d: stored %v, want %s", i, got, want)
				}
			}
			ioClose(t, s)

			spec, _ := NewRegistry().Lookup(flow.RoleSink, "duckdb")
			c, err := spec.New(flow.BuildContext{Name: "out", Config: cfg, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			r := c.(*duckdbSink)
			if err := r.Resume(tt.resume, tt.keepTail); err != nil {
				t.Fatal(err)
			}
			if err := r.Open(ctx); err != nil {
				t.Fatal(err)
			}
			if got := duckQuery(t, r.conn, "SELECT count(*) AS n FROM events"); got[0] != fmt.Sprintf("n=%d", tt.wantRows) {
				t.Errorf("rows after resume: %v, want %d", got, tt.wantRows)
			}
			if got := r.Replayed(); got != tt.wantReplayed {
				t.Errorf("replayed %d, want %d", got, tt.wantReplayed)
			}
			wantPos := tt.resume
			if tt.keepTail {
				wantPos = 6
			}
			if got := r.Position(); got != wantPos {
				t.Errorf("position after resume %d, want %d", got, wantPos)
			}
			// The replayed events come again: nothing lost, nothing twice.
			if !tt.keepTail {
				all := [][]string{{`{"id":1}`, `{"id":2}`}, {`{"id":3}`, `"bad"`}, {`{"id":4}`, `{"id":5}`}}
				for _, b := range all[tt.resume/2:] {
					r.Write(ctx, ioEvents(b...))
				}
				if got := duckQuery(t, r.conn, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM events"); got[0] != "n=5,d=5" {
					t.Errorf("after the replay: %v, want 5 distinct rows", got)
				}
				if got := r.Position(); got != 6 {
					t.Errorf("position after the replay %d, want 6", got)
				}
			}
			ioClose(t, r)
		})
	}
}

func TestDuckDBSinkValidate(t *testing.T) {
	spec, err := NewRegistry().Lookup(flow.RoleSink, "duckdb")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cfg  flow.Config
		want string
	}{
		{flow.Config{"table": "t"}, "path"},
		{flow.Config{"path": "x.duckdb"}, "table"},
		{flow.Config{"path": "x.duckdb", "table": "a.b.c"}, "not a table name"},
		{flow.Config{"path": "x.duckdb", "table": "t", "columns": []any{"a"}, "key": []any{"b"}}, "key[0]"},
		{flow.Config{"path": "x.duckdb", "table": "t", "types": map[string]any{"a": "INT; DROP TABLE t"}}, "not a column type"},
		{flow.Config{"path": "x.duckdb", "table": "t", "columns": []any{"a", "a"}}, "listed twice"},
	}
	for _, tt := range tests {
		err := spec.Validate(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("validate %v: %v, want an error with %q", tt.cfg, err, tt.want)
		}
	}
	if err := spec.Validate(flow.Config{"path": "x.duckdb", "table": "main.t", "key": []any{"id"}}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// create: false with no table stops Open with what to do.
func TestDuckDBSinkNoTable(t *testing.T) {
	spec, _ := NewRegistry().Lookup(flow.RoleSink, "duckdb")
	c, err := spec.New(flow.BuildContext{Name: "out", Config: flow.Config{"path": "t.duckdb", "table": "missing", "create": false}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.(flow.Opener).Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "create: true") {
		t.Fatalf("open: %v, want a missing table error", err)
	}
}
