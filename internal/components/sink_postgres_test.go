package components

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/pgtest"
)

func TestPostgresSinkValidate(t *testing.T) {
	spec, err := NewRegistry().Lookup(flow.RoleSink, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	const dsn = "postgres://u@127.0.0.1:5432/db?sslmode=disable"
	tests := []struct {
		name string
		cfg  flow.Config
		want []string // substrings of the error; none: valid
	}{
		{"minimal", flow.Config{"dsn": dsn, "table": "t"}, nil},
		{"key=value dsn and schema", flow.Config{"dsn": "host=127.0.0.1 port=5432 dbname=db user=u", "table": "public.payments"}, nil},
		{"everything", flow.Config{"dsn": dsn, "table": "p", "columns": []any{"id", "amount"}, "types": map[string]any{"amount": "numeric(12, 2)", "id": "bigint"}, "key": []any{"id"}, "create": false}, nil},
		{"array and two-word types", flow.Config{"dsn": dsn, "table": "p", "types": map[string]any{"a": "text[]", "b": "double precision"}}, nil},
		{"missing dsn and table", flow.Config{}, []string{"dsn: is required", "table: is required"}},
		{"bad dsn", flow.Config{"dsn": "postgres://u@[::1/db", "table": "t"}, []string{"dsn: is not a PostgreSQL connection string"}},
		{"bad dsn hides the password", flow.Config{"dsn": "postgres://u:s3cret@host:notaport/db", "table": "t"}, []string{"dsn: is not a PostgreSQL connection string: invalid port"}},
		{"bad sslmode", flow.Config{"dsn": "host=h password=s3cret sslmode=bogus", "table": "t"}, []string{"sslmode is invalid"}},
		{"three-part table", flow.Config{"dsn": dsn, "table": "a.b.c"}, []string{`table: "a.b.c" is not a table name`}},
		{"empty schema", flow.Config{"dsn": dsn, "table": ".t"}, []string{"is not a table name"}},
		{"columns twice, empty, not strings", flow.Config{"dsn": dsn, "table": "t", "columns": []any{"a", "a", ""}}, []string{"columns[1]: \"a\" is listed twice", "columns[2]: is empty"}},
		{"columns not strings", flow.Config{"dsn": dsn, "table": "t", "columns": []any{"a", 3}}, []string{"columns[1]: must be a string"}},
		{"key outside columns", flow.Config{"dsn": dsn, "table": "t", "columns": []any{"a"}, "key": []any{"id"}}, []string{`key[0]: "id" is not one of the columns`}},
		{"type outside columns", flow.Config{"dsn": dsn, "table": "t", "columns": []any{"a"}, "types": map[string]any{"b": "text"}}, []string{`types.b: "b" is not one of the columns`}},
		{"injection in a type", flow.Config{"dsn": dsn, "table": "t", "types": map[string]any{"a": "text); DROP TABLE x; --"}}, []string{"types.a: ", "is not a column type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := spec.Validate(tt.cfg)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v\nwant it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestPostgresTypeAndValue(t *testing.T) {
	tests := []struct {
		in       any
		typ      string
		text     any
		describe string
	}{
		{int64(42), "bigint", "42", "integer"},
		{-1.5, "double precision", "-1.5", "number"},
		{1e21, "double precision", "1e+21", "large number"},
		{"x", "text", "x", "string"},
		{true, "boolean", "true", "bool"},
		{map[string]any{"a": int64(1)}, "jsonb", `{"a":1}`, "object"},
		{[]any{int64(1), "b"}, "jsonb", `[1,"b"]`, "array"},
		{nil, "", nil, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.describe, func(t *testing.T) {
			if got := pgType(tt.in); got != tt.typ {
				t.Errorf("pgType(%v) = %q, want %q", tt.in, got, tt.typ)
			}
			got, err := pgValue(tt.in)
			if err != nil || got != tt.text {
				t.Errorf("pgValue(%v) = %v, %v; want %v", tt.in, got, err, tt.text)
			}
		})
	}
}

// pgOpen builds and opens a postgres sink of pipeline "p" named "db";
// resume >= 0 resumes it there first.
func pgOpen(t *testing.T, cfg flow.Config, resume int64) (*pgSink, error) {
	t.Helper()
	spec, err := NewRegistry().Lookup(flow.RoleSink, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	c, err := spec.New(flow.BuildContext{Name: "db", Pipeline: "p", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	s := c.(*pgSink)
	if resume >= 0 {
		if err := s.Resume(resume, false); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		// Like the engine: a component whose Open failed is not closed.
		return nil, err
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, nil
}

func pgMustOpen(t *testing.T, cfg flow.Config, resume int64) *pgSink {
	t.Helper()
	s, err := pgOpen(t, cfg, resume)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pgRows reads a query's rows as "v1|v2|..." strings (NULL as "∅").
func pgRows(t *testing.T, dsn, query string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				parts[i] = "∅"
			} else {
				parts[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func pgExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestPostgresSinkWrite(t *testing.T) {
	tests := []struct {
		name   string
		setup  []string // statements run first
		cfg    flow.Config
		events []string
		query  string
		want   []string
		failed []int // events refused, each for itself
	}{
		{
			name:   "create from the first event, typed by value",
			cfg:    flow.Config{"table": "ev"},
			events: []string{`{"id":1,"amount":2.5,"who":"a","ok":true,"tags":["x"]}`, `{"id":2,"who":"b","extra":1}`},
			query:  `SELECT id, amount, who, ok, tags, (SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = 'ev') FROM ev ORDER BY id`,
			want: []string{
				"1|2.5|a|true|[x]|amount:double precision,id:bigint,ok:boolean,tags:jsonb,who:text",
				"2|∅|b|∅|∅|amount:double precision,id:bigint,ok:boolean,tags:jsonb,who:text",
			},
		},
		{
			name:   "columns subset with a declared type, schema-qualified",
			setup:  []string{"CREATE SCHEMA ledger"},
			cfg:    flow.Config{"table": "ledger.payments", "columns": []any{"id", "amount"}, "types": map[string]any{"amount": "numeric(12,2)"}},
			events: []string{`{"id":1,"amount":10.005,"note":"not stored"}`, `{"id":2,"amount":"7"}`},
			query:  `SELECT id, amount::text, (SELECT count(*) FROM information_schema.columns WHERE table_schema = 'ledger' AND table_name = 'payments') FROM ledger.payments ORDER BY id`,
			want:   []string{"1|10.01|2", "2|7.00|2"},
		},
		{
			name:   "upsert with key",
			cfg:    flow.Config{"table": "acct", "key": []any{"id"}},
			events: []string{`{"id":1,"bal":10}`, `{"id":2,"bal":5}`, `{"id":1,"bal":11}`},
			query:  `SELECT id, bal FROM acct ORDER BY id`,
			want:   []string{"1|11", "2|5"},
		},
		{
			name:   "rows refused for their data fail alone",
			setup:  []string{"CREATE TABLE strict (id bigint NOT NULL, amount numeric CHECK (amount >= 0))"},
			cfg:    flow.Config{"table": "strict", "columns": []any{"id", "amount"}, "create": false},
			events: []string{`{"id":1,"amount":1}`, `{"id":"x","amount":2}`, `{"id":3,"amount":3}`, `{"amount":4}`, `{"id":5,"amount":-1}`, `[1]`, `{"id":7,"amount":7}`},
			query:  `SELECT id, amount::text FROM strict ORDER BY id`,
			want:   []string{"1|1", "3|3", "7|7"},
			failed: []int{1, 3, 4, 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			pgExec(t, dsn, tt.setup...)
			cfg := flow.Config{"dsn": dsn, "create": true}
			for k, v := range tt.cfg {
				cfg[k] = v
			}
			s := pgMustOpen(t, cfg, -1)
			err := s.Write(context.Background(), ioEvents(tt.events...))
			var got []int
			if err != nil {
				var be *flow.BatchError
				if !errors.As(err, &be) {
					t.Fatalf("Write = %v, want nil or a *flow.BatchError", err)
				}
				for i, e := range be.Failed {
					got = append(got, i)
					if !errors.Is(e, flow.ErrPermanent) {
						t.Errorf("event %d: %v is not permanent (would be retried for ever)", i, e)
					}
					t.Logf("event %d refused: %v", i, e)
				}
				slices.Sort(got)
			}
			if !slices.Equal(got, tt.failed) {
				t.Fatalf("failed events %v, want %v (err %v)", got, tt.failed, err)
			}
			if rows := pgRows(t, dsn, tt.query); !slices.Equal(rows, tt.want) {
				t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(tt.want, "\n"))
			}
			if p := s.Position(); p != int64(len(tt.events)) {
				t.Errorf("Position = %d, want every event consumed (%d)", p, len(tt.events))
			}
		})
	}
}

func TestPostgresSinkDeadLetterReason(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pgExec(t, dsn, "CREATE TABLE n (id bigint PRIMARY KEY, v integer NOT NULL)")
	s := pgMustOpen(t, flow.Config{"dsn": dsn, "table": "n", "columns": []any{"id", "v"}, "create": false}, -1)
	err := s.Write(context.Background(), ioEvents(`{"id":1,"v":1}`, `{"id":2,"v":"many"}`, `{"id":3}`, `{"id":1,"v":2}`))
	var be *flow.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 3 {
		t.Fatalf("Write = %v, want events 1, 2, 3 failed", err)
	}
	for i, want := range map[int]string{
		1: `invalid input syntax for type integer: "many" [SQLSTATE 22P02]`,
		2: `null value in column "v" of relation "n" violates not-null constraint`,
		3: `duplicate key value violates unique constraint "n_pkey" (Key (id)=(1) already exists.) [SQLSTATE 23505]`,
	} {
		if e := be.Failed[i]; e == nil || !strings.Contains(e.Error(), want) {
			t.Errorf("event %d: %v, want %q", i, e, want)
		}
	}
}

func TestPostgresSinkSetupErrors(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pgExec(t, dsn, "CREATE TABLE two (a bigint, b text)")
	srv := pgtest.Shared(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close() // nothing listens there now

	tests := []struct {
		name string
		cfg  flow.Config
		want []string
	}{
		{"missing table, create false", flow.Config{"dsn": dsn, "table": "nope", "create": false},
			[]string{"table nope does not exist", "create it, or set create: true"}},
		{"missing columns", flow.Config{"dsn": dsn, "table": "two", "columns": []any{"a", "c", "d"}, "create": false},
			[]string{"table two has no column c, d", `ALTER TABLE "two" ADD COLUMN "c"`}},
		{"connection refused", flow.Config{"dsn": "postgres://u@" + closed + "/db?sslmode=disable&connect_timeout=5", "table": "t"},
			[]string{"cannot connect to PostgreSQL at " + closed, "is the server running"}},
		{"wrong password", flow.Config{"dsn": strings.Replace(dsn, pgtest.Password, "wrong", 1), "table": "t"},
			[]string{"authentication failed", "check the user and password in config.dsn"}},
		{"no such database", flow.Config{"dsn": srv.URL("nodb"), "table": "t"},
			[]string{`database "nodb" does not exist`, "createdb nodb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pgOpen(t, tt.cfg, -1)
			if err == nil {
				t.Fatal("Open = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open = %v\nwant it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), pgtest.Password) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}

	// A failed Open left no connection behind (a closed one leaves the
	// server's list a moment later: poll, bounded).
	left := "?"
	for i := 0; i < 100 && left != "0"; i++ {
		if i > 0 {
			<-time.After(50 * time.Millisecond)
		}
		left = pgRows(t, dsn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")[0]
	}
	if left != "0" {
		t.Errorf("%s connections left after the failed opens", left)
	}

	// Columns taken from the first event, missing in an existing table:
	// the run stops (no retry can fix it), naming the column.
	s := pgMustOpen(t, flow.Config{"dsn": dsn, "table": "two", "create": false}, -1)
	err = s.Write(context.Background(), ioEvents(`{"a":1,"z":2}`))
	if !errors.Is(err, flow.ErrStopRun) || !strings.Contains(err.Error(), "table two has no column z") {
		t.Errorf("Write = %v, want a stop naming column z", err)
	}
	// A key without a unique constraint.
	s = pgMustOpen(t, flow.Config{"dsn": dsn, "table": "two", "key": []any{"a"}, "create": false}, -1)
	err = s.Write(context.Background(), ioEvents(`{"a":1,"b":"x"}`))
	if !errors.Is(err, flow.ErrStopRun) || !strings.Contains(err.Error(), "has no unique constraint on (a)") {
		t.Errorf("Write = %v, want a stop saying the key needs a unique constraint", err)
	}
}

func pgBatch(from, n int) []*flow.Event {
	var b []*flow.Event
	for i := from; i < from+n; i++ {
		b = append(b, &flow.Event{ID: strconv.Itoa(i), Data: []byte(`{"n":` + strconv.Itoa(i) + `}`)})
	}
	return b
}

// TestPostgresSinkResume plays a crash: rows written after the committed
// position are in the table; the resumed run deletes them and inserts the
// replayed events, in whatever order they come.
func TestPostgresSinkResume(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		setup  []string
		replay [][2]int // batches sent again: from, count
	}{
		{"replayed in order, in other batches", nil, [][2]int{{5, 2}, {7, 4}}},
		// Fan-in of two sources interleaves differently on replay.
		{"replayed in another order", nil, [][2]int{{9, 2}, {5, 4}}},
		{"a partitioned table", []string{"CREATE TABLE ev (n bigint) PARTITION BY RANGE (n)",
			"CREATE TABLE ev_low PARTITION OF ev FOR VALUES FROM (0) TO (6)", "CREATE TABLE ev_high PARTITION OF ev FOR VALUES FROM (6) TO (100)"},
			[][2]int{{5, 6}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			pgExec(t, dsn, tt.setup...)
			cfg := flow.Config{"dsn": dsn, "table": "ev"}
			count := func() string {
				return strings.Join(pgRows(t, dsn, "SELECT count(*), count(DISTINCT n), coalesce(max(n), -1) FROM ev"), "")
			}
			s := pgMustOpen(t, cfg, -1)
			if err := s.Write(ctx, pgBatch(0, 5)); err != nil {
				t.Fatal(err)
			}
			committed := s.Position()
			if committed != 5 {
				t.Fatalf("Position = %d after 5 events", committed)
			}
			// After the checkpoint: a batch with a row refused (its event
			// goes to on_error), and one more.
			bad := append(pgBatch(5, 1), &flow.Event{ID: "x", Data: []byte(`{"n":"x"}`)})
			if err := s.Write(ctx, bad); err == nil {
				t.Fatal("a row with n = x was accepted into a bigint column")
			}
			if err := s.Write(ctx, pgBatch(6, 2)); err != nil {
				t.Fatal(err)
			}
			s.Close(ctx) // the crash: the checkpoint says 5, the table holds 8 rows

			s = pgMustOpen(t, cfg, committed)
			if p, r, c := s.Position(), s.Replayed(), count(); p != 5 || r != 3 || c != "5|5|4" {
				t.Fatalf("resumed at %d, %d rows cut back, count/distinct/max %s; want 5, 3, 5|5|4", p, r, c)
			}
			for _, b := range tt.replay {
				if err := s.Write(ctx, pgBatch(b[0], b[1])); err != nil {
					t.Fatal(err)
				}
			}
			if got := count(); got != "11|11|10" {
				t.Fatalf("count, distinct, max = %s; want 11|11|10 (nothing lost or twice)", got)
			}
			if p := s.Position(); p != 11 {
				t.Fatalf("Position %d, want 11", p)
			}
			s.Close(ctx)

			// A first run (no checkpoint) over the table continues the count
			// and deletes nothing.
			s = pgMustOpen(t, cfg, -1)
			if p := s.Position(); p != 11 {
				t.Fatalf("a first run starts at %d, want 11", p)
			}
			if err := s.Write(ctx, pgBatch(0, 1)); err != nil {
				t.Fatal(err)
			}
			if got := count(); got != "12|11|10" {
				t.Fatalf("count, distinct, max = %s; want 12|11|10 (a fresh run appends)", got)
			}
			s.Close(ctx)

			// A checkpoint beyond what the table recorded: changed outside flowctl.
			if _, err := pgOpen(t, cfg, 100); err == nil || !strings.Contains(err.Error(), "changed outside flowctl") {
				t.Fatalf("Open = %v, want it to say the table was changed outside flowctl", err)
			}
		})
	}
}

// TestPostgresSinkResumeCannotCut: when the rows to cut are not what the
// batches recorded, the sink deletes nothing (at-least-once), and with
// key it never deletes: replays are upserts.
func TestPostgresSinkResumeCannotCut(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		cfg     flow.Config
		meddle  string // run after the crash
		wantRow string // count, distinct, max after the replay
	}{
		{"a row deleted by someone else", flow.Config{"table": "ev"}, "DELETE FROM ev WHERE n = 6", "13|11|10"},
		{"batches not recorded", flow.Config{"table": "ev"}, "DELETE FROM flowctl_sink_batches", "14|11|10"},
		{"upsert on key", flow.Config{"table": "ev", "key": []any{"n"}}, "", "11|11|10"},
		{"a view", flow.Config{"table": "v", "create": false}, "", "14|11|10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			pgExec(t, dsn, "CREATE TABLE vt (n bigint)", "CREATE VIEW v AS SELECT n FROM vt")
			cfg := flow.Config{"dsn": dsn}
			for k, v := range tt.cfg {
				cfg[k] = v
			}
			s := pgMustOpen(t, cfg, -1)
			if err := s.Write(ctx, pgBatch(0, 5)); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctx, pgBatch(5, 3)); err != nil {
				t.Fatal(err)
			}
			s.Close(ctx)
			if tt.meddle != "" {
				pgExec(t, dsn, tt.meddle)
			}
			s = pgMustOpen(t, cfg, 5)
			if err := s.Write(ctx, pgBatch(5, 6)); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(pgRows(t, dsn, fmt.Sprintf("SELECT count(*), count(DISTINCT n), max(n) FROM %s", tt.cfg["table"])), "")
			if got != tt.wantRow {
				t.Fatalf("count, distinct, max = %s; want %s", got, tt.wantRow)
			}
		})
	}
}

// TestPostgresSinkReconnect: a lost connection fails the batch (the engine
// retries it) and the next Write connects again.
func TestPostgresSinkReconnect(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	s := pgMustOpen(t, flow.Config{"dsn": dsn, "table": "ev"}, -1)
	if err := s.Write(ctx, ioEvents(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	pgExec(t, dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	err := s.Write(ctx, ioEvents(`{"n":2}`))
	if err == nil || errors.Is(err, flow.ErrStopRun) {
		t.Fatalf("Write on a killed connection = %v, want a retryable error", err)
	}
	if err := s.Write(ctx, ioEvents(`{"n":2}`)); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if got := pgRows(t, dsn, "SELECT n FROM ev ORDER BY n"); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("rows %v, want 1 and 2", got)
	}
}

// TestPostgresSinkLostCommitAnswer: a commit that went through though its
// answer was lost (the connection broke right after COMMIT) is not written
// twice when the engine sends the batch again.
func TestPostgresSinkLostCommitAnswer(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	s := pgMustOpen(t, flow.Config{"dsn": dsn, "table": "ev"}, -1)
	if err := s.Write(ctx, pgBatch(0, 3)); err != nil {
		t.Fatal(err)
	}
	// What the sink knows when COMMIT's answer is lost: the batch is not
	// counted, and the connection is gone.
	s.pos.Add(-3)
	s.stored -= 3
	s.conn.Close(ctx)
	if err := s.Write(ctx, pgBatch(0, 4)); err != nil {
		t.Fatal(err)
	}
	if got := pgRows(t, dsn, "SELECT count(*), count(DISTINCT n) FROM ev"); got[0] != "4|4" {
		t.Fatalf("count, distinct = %s, want 4|4", got[0])
	}
	if p := s.Position(); p != 4 {
		t.Fatalf("Position %d, want 4", p)
	}
}
