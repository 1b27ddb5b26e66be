package components

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

func ioEvents(datas ...string) []*flow.Event {
	out := make([]*flow.Event, len(datas))
	for i, d := range datas {
		out[i] = &flow.Event{ID: fmt.Sprint("in:", i+1), Source: "in", Type: "t", Data: []byte(d)}
	}
	return out
}

// ioQueryRows reads a table back with database/sql as "col=val,..." rows.
func ioQueryRows(t *testing.T, path, query string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query)
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
			parts[i] = fmt.Sprintf("%s=%v", c, vals[i])
		}
		out = append(out, strings.Join(parts, ","))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSQLiteSink(t *testing.T) {
	tests := []struct {
		name       string
		cfg        flow.Config
		batches    [][]string
		failed     []string // per batch: sorted failed indexes, "" = no BatchError
		wantRows   []string
		wantSchema string
	}{
		{
			name: "columns from the first event, typed",
			cfg:  flow.Config{},
			batches: [][]string{{
				`{"id":1,"amount":12.5,"kind":"fee","tags":["a","b"],"meta":{"k":"v"},"ok":true}`,
				`{"id":2,"amount":3,"kind":"trade","extra":"ignored"}`,
			}},
			failed: []string{""},
			wantRows: []string{
				`amount=12.5,id=1,kind=fee,meta={"k":"v"},ok=1,tags=["a","b"]`,
				`amount=3,id=2,kind=trade,meta=<nil>,ok=<nil>,tags=<nil>`,
			},
			wantSchema: `CREATE TABLE "events" ("amount" REAL, "id" INTEGER, "kind" TEXT, "meta" TEXT, "ok" INTEGER, "tags" TEXT)`,
		},
		{
			name:       "given columns",
			cfg:        flow.Config{"columns": []any{"kind", "id"}},
			batches:    [][]string{{`{"id":1,"kind":"fee","amount":1}`}, {`{"id":2}`}},
			failed:     []string{"", ""},
			wantRows:   []string{"kind=fee,id=1", "kind=<nil>,id=2"},
			wantSchema: `CREATE TABLE "events" ("kind" TEXT, "id" INTEGER)`,
		},
		{
			name:       "events that are not objects fail alone",
			cfg:        flow.Config{},
			batches:    [][]string{{`[1,2]`, `{"id":1}`, `{"id":`, `"str"`, `{"id":2}`}},
			failed:     []string{"0,2,3"},
			wantRows:   []string{"id=1", "id=2"},
			wantSchema: `CREATE TABLE "events" ("id" INTEGER)`,
		},
		{
			name:     "odd names are quoted",
			cfg:      flow.Config{"table": `my "table"`},
			batches:  [][]string{{`{"select":1,"a b":"x"}`}},
			failed:   []string{""},
			wantRows: []string{"a b=x,select=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := flow.Config{"path": "db/test.db", "table": "events"}
			for k, v := range tt.cfg {
				cfg[k] = v
			}
			s := ioNewSink(t, "sqlite", dir, cfg)
			for i, b := range tt.batches {
				err := s.Write(context.Background(), ioEvents(b...))
				var be *flow.BatchError
				switch {
				case tt.failed[i] == "" && err != nil:
					t.Fatalf("batch %d: %v", i, err)
				case tt.failed[i] != "":
					if !errors.As(err, &be) {
						t.Fatalf("batch %d: error %v, want *flow.BatchError", i, err)
					}
					var idx []string
					for j := range len(b) {
						if be.Failed[j] != nil {
							idx = append(idx, fmt.Sprint(j))
						}
					}
					if got := strings.Join(idx, ","); got != tt.failed[i] {
						t.Errorf("batch %d: failed %s, want %s (%v)", i, got, tt.failed[i], be.Failed)
					}
				}
			}
			ioClose(t, s)
			path := filepath.Join(dir, "db", "test.db")
			table := ioQuoteIdent(cfg["table"].(string))
			got := ioQueryRows(t, path, "SELECT * FROM "+table+" ORDER BY rowid")
			if strings.Join(got, "\n") != strings.Join(tt.wantRows, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantRows, "\n"))
			}
			if tt.wantSchema != "" {
				schema := ioQueryRows(t, path, "SELECT sql FROM sqlite_master WHERE name = 'events'")
				if len(schema) != 1 || schema[0] != "sql="+tt.wantSchema {
					t.Errorf("schema %v, want %s", schema, tt.wantSchema)
				}
			}
			if mode := ioQueryRows(t, path, "PRAGMA journal_mode"); len(mode) != 1 || mode[0] != "journal_mode=wal" {
				t.Errorf("journal mode %v, want wal", mode)
			}
		})
	}
}

// Rows written by one Write are committed together; a second sink on the
// same table (create: false, existing table) appends.
func TestSQLiteSinkExistingTable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := ioNewSink(t, "sqlite", dir, flow.Config{"path": "x.db", "table": "t", "create": false, "columns": []any{"id", "name"}})
	err = s.Write(context.Background(), ioEvents(`{"id":1,"name":"a"}`, `{"id":1,"name":"dup"}`, `{"id":2}`, `{"id":3,"name":"c"}`))
	var be *flow.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 || be.Failed[1] == nil || be.Failed[2] == nil {
		t.Fatalf("Write = %v, want constraint failures for events 1 and 2", err)
	}
	ioClose(t, s)
	got := ioQueryRows(t, path, "SELECT id, name FROM t ORDER BY id")
	if strings.Join(got, ";") != "id=1,name=a;id=3,name=c" {
		t.Errorf("rows %v", got)
	}

	// A table without the configured columns fails the whole batch with
	// a message naming them.
	s = ioNewSink(t, "sqlite", dir, flow.Config{"path": "x.db", "table": "t", "create": false, "columns": []any{"nope"}})
	defer ioClose(t, s)
	err = s.Write(context.Background(), ioEvents(`{"nope":1}`))
	if err == nil || errors.As(err, &be) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Write = %v, want a whole-batch error naming the column", err)
	}
}

func TestSQLiteSinkValidate(t *testing.T) {
	spec, _ := NewRegistry().Lookup(flow.RoleSink, "sqlite")
	err := spec.Validate(flow.Config{"columns": []any{"a", "a", 3}})
	for _, want := range []string{"path: is required", "table: is required", "columns[2]: must be a string"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want %q", err, want)
		}
	}
	if err := spec.Validate(flow.Config{"path": "x.db", "table": "t", "columns": []any{"a", "a"}}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("duplicate column: %v", err)
	}
}
