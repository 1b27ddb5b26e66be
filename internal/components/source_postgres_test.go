package components

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/pgtest"
)

func TestPostgresSourceConfig(t *testing.T) {
	spec, err := NewRegistry().Lookup(flow.RoleSource, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cfg  flow.Config
		want string // "" valid, else a part of the error
	}{
		{"cdc minimal", flow.Config{"dsn": "postgres://u@h/db", "publication": "p"}, ""},
		{"cdc create", flow.Config{"dsn": "postgres://u@h/db", "tables": []any{"public.t", "u"}, "create_publication": true, "slot": "s_1"}, ""},
		{"poll table", flow.Config{"dsn": "postgres://u@h/db", "table": "t", "column": "id"}, ""},
		{"poll query", flow.Config{"dsn": "postgres://u@h/db", "mode": "poll", "query": "SELECT * FROM t", "column": "id", "interval": "5s"}, ""},
		{"no dsn", flow.Config{"publication": "p"}, "dsn: is required"},
		{"bad mode", flow.Config{"dsn": "postgres://u@h/db", "mode": "stream"}, `unknown mode "stream"`},
		{"bad slot", flow.Config{"dsn": "postgres://u@h/db", "slot": "My-Slot"}, "is not a slot name"},
		{"tables without create", flow.Config{"dsn": "postgres://u@h/db", "tables": []any{"t"}}, "create_publication: true"},
		{"bad table", flow.Config{"dsn": "postgres://u@h/db", "tables": []any{"a.b.c"}, "create_publication": true}, "is not a table name"},
		{"poll without table", flow.Config{"dsn": "postgres://u@h/db", "column": "id"}, "table: is required"},
		{"poll table and query", flow.Config{"dsn": "postgres://u@h/db", "column": "id", "table": "t", "query": "SELECT 1"}, "give one of table and query"},
		{"poll with slot", flow.Config{"dsn": "postgres://u@h/db", "column": "id", "table": "t", "slot": "s"}, "slot: is for mode cdc"},
		{"cdc with column", flow.Config{"dsn": "postgres://u@h/db", "mode": "cdc", "column": "id"}, "column: is for mode poll"},
		{"batch range", flow.Config{"dsn": "postgres://u@h/db", "table": "t", "column": "id", "batch": 0}, "batch: 0 is out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := spec.Validate(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
		})
	}
	for in, want := range map[string]string{"flowctl_My-Pipe_src 1": "flowctl_my_pipe_src_1", "a.b": "a_b"} {
		if got := pgSlotName(in); got != want {
			t.Errorf("pgSlotName(%q) = %q, want %q", in, got, want)
		}
	}
}

// pgTestEmitter records events; with hold it keeps their done callbacks
// for the test to call.
type pgTestEmitter struct {
	mu     sync.Mutex
	events []*flow.Event
	dones  []func(error)
	hold   bool
	more   chan struct{}
}

func newPGTestEmitter(hold bool) *pgTestEmitter {
	return &pgTestEmitter{hold: hold, more: make(chan struct{}, 1)}
}

func (e *pgTestEmitter) Emit(_ context.Context, b []*flow.Event, done func(error)) error {
	e.mu.Lock()
	e.events = append(e.events, b...)
	if e.hold {
		e.dones = append(e.dones, done)
	} else if done != nil {
		done(nil)
	}
	e.mu.Unlock()
	select {
	case e.more <- struct{}{}:
	default:
	}
	return nil
}

func (e *pgTestEmitter) EmitAt(ctx context.Context, b []*flow.Event, _ flow.Position) error {
	return e.Emit(ctx, b, nil)
}

// wait returns the first n events once they are there (30 s at most).
func (e *pgTestEmitter) wait(t *testing.T, n int) []*flow.Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		e.mu.Lock()
		if len(e.events) >= n {
			evs := append([]*flow.Event(nil), e.events...)
			e.mu.Unlock()
			return evs
		}
		have := len(e.events)
		e.mu.Unlock()
		select {
		case <-e.more:
		case <-deadline:
			e.mu.Lock()
			var got []string
			for _, ev := range e.events {
				got = append(got, ev.ID+" "+string(ev.Data))
			}
			e.mu.Unlock()
			t.Fatalf("%d events after 30 s, want %d: %v", have, n, got)
		}
	}
}

// pgSourceRun builds a postgres source for pipeline p, opens it and runs
// it until the returned stop.
func pgSourceRun(t *testing.T, cfg flow.Config, em flow.Emitter) (src any, stop func()) {
	t.Helper()
	spec, err := NewRegistry().Lookup(flow.RoleSource, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(cfg); err != nil {
		t.Fatalf("validate: %v", err)
	}
	c, err := spec.New(flow.BuildContext{Name: "in", Pipeline: "p", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return c, pgStart(t, c, em)
}

func pgStart(t *testing.T, c any, em flow.Emitter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
	defer ocancel()
	if err := c.(flow.Opener).Open(octx); err != nil {
		cancel()
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.(flow.Source).Run(ctx, em) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("run did not end within 30 s of its cancellation")
			}
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			if err := c.(flow.Closer).Close(cctx); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// pgDropSlot drops the slot at the test's end: a slot keeps WAL.
func pgDropSlot(t *testing.T, dsn, slot string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		// The walsender may take a moment to let go of the slot.
		for i := 0; i < 100; i++ {
			_, err = conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
			if err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("drop slot %s: %v", slot, err)
	})
}

func pgSlotConfirmed(t *testing.T, dsn, slot string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var lsn string
	if err := conn.QueryRow(ctx, "SELECT coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	return lsn
}

func TestPostgresCDCTypes(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pgExec(t, dsn, `CREATE TABLE kinds (id bigint PRIMARY KEY, small smallint, i int, f double precision, n numeric(20,5), nan numeric,
		b boolean, s text, j jsonb, js json, ts timestamptz, tsl timestamp, d date, by bytea, u uuid, arr int[], nul text)`)
	cfg := flow.Config{"dsn": dsn, "tables": []any{"kinds"}, "create_publication": true, "slot": "types_slot"}
	pgDropSlot(t, dsn, "types_slot")
	em := newPGTestEmitter(false)
	_, stop := pgSourceRun(t, cfg, em)
	pgExec(t, dsn, `INSERT INTO kinds VALUES (1, -2, 3, 1.5, 12345678901234.56789, 'NaN', true, 'a "quoted"
line', '{"k": [1, {"x": null}]}', '[1,2]', '2024-05-06 07:08:09.123456+02', '2024-05-06 07:08:09', '2024-05-06', '\x00ff10',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,2}', NULL)`)
	evs := em.wait(t, 1)
	stop()
	ev := evs[0]
	var got map[string]any
	if err := json.Unmarshal(ev.Data, &got); err != nil {
		t.Fatalf("data %s: %v", ev.Data, err)
	}
	want := map[string]any{
		"id": 1.0, "small": -2.0, "i": 3.0, "f": 1.5, "n": 12345678901234.56789, "nan": "NaN", "b": true, "s": "a \"quoted\"\nline",
		"j": map[string]any{"k": []any{1.0, map[string]any{"x": nil}}}, "js": []any{1.0, 2.0},
		"ts": "2024-05-06T05:08:09.123456Z", "tsl": "2024-05-06T07:08:09", "d": "2024-05-06", "by": "AP8Q",
		"u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "arr": "{1,2}", "nul": nil,
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	if !strings.Contains(string(ev.Data), `"n":12345678901234.56789`) {
		t.Errorf("numeric lost digits: %s", ev.Data)
	}
	if ev.Type != "postgres.insert" || ev.Metadata["pg_table"] != "kinds" || ev.Metadata["pg_schema"] != "public" || ev.Subject != "public.kinds" ||
		!strings.HasSuffix(ev.ID, "/0") || ev.Metadata["pg_lsn"] == "" || ev.Time.IsZero() {
		t.Errorf("event attributes: id %q type %q subject %q time %v metadata %v", ev.ID, ev.Type, ev.Subject, ev.Time, ev.Metadata)
	}
}

func TestPostgresCDCUpdateDeleteTruncate(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pgExec(t, dsn,
		"CREATE TABLE acc (id int PRIMARY KEY, owner text, amount int)",
		"CREATE TABLE full_acc (id int, note text)",
		"ALTER TABLE full_acc REPLICA IDENTITY FULL",
		"INSERT INTO acc VALUES (1, 'ann', 10), (2, 'bob', 20)",
		"INSERT INTO full_acc VALUES (7, 'x')",
		"CREATE PUBLICATION pub FOR TABLE acc, full_acc",
	)
	pgDropSlot(t, dsn, "udt")
	em := newPGTestEmitter(false)
	_, stop := pgSourceRun(t, flow.Config{"dsn": dsn, "publication": "pub", "slot": "udt", "event_type": "db"}, em)
	pgExec(t, dsn,
		"UPDATE acc SET amount = 11 WHERE id = 1",
		"UPDATE acc SET id = 3 WHERE id = 2",
		"DELETE FROM acc WHERE id = 1",
		"UPDATE full_acc SET note = 'y'",
		"DELETE FROM full_acc",
		"TRUNCATE acc",
	)
	evs := em.wait(t, 6)
	stop()
	type row struct{ typ, data, old string }
	want := []row{
		{"db.update", `{"id":1,"owner":"ann","amount":11}`, ""},
		{"db.update", `{"id":3,"owner":"bob","amount":20}`, `{"id":2}`},
		{"db.delete", `{"id":1}`, ""},
		{"db.update", `{"id":7,"note":"y"}`, `{"id":7,"note":"x"}`},
		{"db.delete", `{"id":7,"note":"y"}`, ""},
		{"db.truncate", `{"cascade":false,"restart_identity":false,"schema":"public","table":"acc"}`, ""},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	for i, w := range want {
		got := row{evs[i].Type, string(evs[i].Data), evs[i].Metadata["pg_old"]}
		if got != w {
			t.Errorf("event %d = %+v, want %+v", i, got, w)
		}
	}
}

// TestPostgresCDCSlotResume: the slot's confirmed position moves only
// over transactions whose events were acknowledged, and a new run gets
// the others again, not the acknowledged ones.
func TestPostgresCDCSlotResume(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pgExec(t, dsn, "CREATE TABLE t (id int PRIMARY KEY)")
	cfg := flow.Config{"dsn": dsn, "tables": []any{"t"}, "create_publication": true, "status_interval": "50ms"}
	slot := "flowctl_p_in"
	pgDropSlot(t, dsn, slot)
	em := newPGTestEmitter(true)
	src, stop := pgSourceRun(t, cfg, em)
	pgExec(t, dsn, "INSERT INTO t VALUES (1), (2)", "INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)")
	em.wait(t, 4)
	before := pgSlotConfirmed(t, dsn, slot)
	t.Logf("before %s", before)
	// Acknowledge the first transaction and the third, not the second.
	em.mu.Lock()
	if len(em.dones) != 3 {
		t.Fatalf("%d batches, want one per transaction (3)", len(em.dones))
	}
	em.dones[0](nil)
	em.dones[2](nil)
	em.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for pgSlotConfirmed(t, dsn, slot) == before {
		if time.Now().After(deadline) {
			t.Fatalf("the slot's confirmed position did not move within 30 s (the source has %s; events %v)", src.(*pgCDCSource).confirmed(), em.events[0].ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()

	em2 := newPGTestEmitter(false)
	_, stop2 := pgSourceRun(t, cfg, em2)
	pgExec(t, dsn, "INSERT INTO t VALUES (5)")
	evs := em2.wait(t, 3)
	stop2()
	var ids []string
	for _, e := range evs {
		ids = append(ids, string(e.Data))
	}
	if got := strings.Join(ids, " "); got != `{"id":3} {"id":4} {"id":5}` {
		t.Fatalf("second run got %s; want transactions 2 and 3 again (3 not acknowledged, 4 after it) and then 5", got)
	}
}

func TestPostgresCDCOpenErrors(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	spec, _ := NewRegistry().Lookup(flow.RoleSource, "postgres")
	open := func(cfg flow.Config) error {
		c, err := spec.New(flow.BuildContext{Name: "in", Pipeline: "p", Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = c.(flow.Opener).Open(ctx)
		c.(flow.Closer).Close(ctx)
		return err
	}
	if err := open(flow.Config{"dsn": dsn, "publication": "nope"}); err == nil || !strings.Contains(err.Error(), `publication "nope" does not exist`) || !strings.Contains(err.Error(), "create_publication") {
		t.Errorf("missing publication: %v", err)
	}
	pgExec(t, dsn, "DO $$BEGIN CREATE ROLE plain LOGIN PASSWORD 'pw'; EXCEPTION WHEN duplicate_object THEN NULL; END$$", "CREATE PUBLICATION pub FOR ALL TABLES")
	u := strings.Replace(dsn, pgtest.User+":"+pgtest.Password, "plain:pw", 1)
	if err := open(flow.Config{"dsn": u, "publication": "pub"}); err == nil || !strings.Contains(err.Error(), "REPLICATION") {
		t.Errorf("user without REPLICATION: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := pgtest.StartWith(ctx, "wal_level=replica")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := open(flow.Config{"dsn": srv.URL("postgres"), "publication": "pub"}); err == nil || !strings.Contains(err.Error(), "wal_level = replica") || !strings.Contains(err.Error(), "wal_level = logical") {
		t.Errorf("wal_level replica: %v", err)
	}
}

func TestPostgresPoll(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pgExec(t, dsn, "CREATE TABLE ev (id serial, grp int, v text)")
	// Values 1..10 of grp, three rows share 4 and five share 8: with
	// batch 3 a fetch ends inside both groups.
	pgExec(t, dsn, "INSERT INTO ev (grp, v) SELECT g, 'r' || g FROM unnest(ARRAY[1,2,3,4,4,4,5,6,7,8,8,8,8,8,9,10]) g")
	em := &posEmitter{}
	src, stop := pgSourceRun(t, flow.Config{"dsn": dsn, "table": "ev", "column": "grp", "batch": 3, "interval": "20ms"}, em)
	deadline := time.Now().Add(30 * time.Second)
	for {
		em.mu.Lock()
		n := len(em.events)
		em.mu.Unlock()
		if n >= 16 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows after 30 s, want 16", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	_ = src
	var grps []string
	for _, e := range em.events {
		var r map[string]any
		if err := json.Unmarshal(e.Data, &r); err != nil {
			t.Fatal(err)
		}
		grps = append(grps, fmt.Sprint(r["grp"]))
	}
	if got := strings.Join(grps, ","); got != "1,2,3,4,4,4,5,6,7,8,8,8,8,8,9,10" {
		t.Fatalf("rows by grp: %s", got)
	}
	if em.events[4].ID != "in:4:1" || em.events[0].Type != "postgres.row" {
		t.Errorf("event 4: id %q type %q", em.events[4].ID, em.events[4].Type)
	}
	// Every position is the end of a group.
	var last string
	for _, p := range em.pos {
		if p.Value != nil {
			last = string(p.Value)
		}
	}
	if last != `{"value":"10"}` {
		t.Fatalf("last position %s", last)
	}

	// Resumed after 8: rows 9, 10 and new ones come.
	pgExec(t, dsn, "INSERT INTO ev (grp, v) VALUES (11, 'new')")
	spec, _ := NewRegistry().Lookup(flow.RoleSource, "postgres")
	c, err := spec.New(flow.BuildContext{Name: "in", Pipeline: "p", Config: flow.Config{"dsn": dsn, "table": "ev", "column": "grp", "interval": "20ms"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.(flow.Resumer).Resume(map[string][]byte{"": []byte(`{"value":"8"}`)}); err != nil {
		t.Fatal(err)
	}
	em2 := &posEmitter{}
	stop2 := pgStart(t, c, em2)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		em2.mu.Lock()
		n := len(em2.events)
		em2.mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
	}
	stop2()
	if got := strings.Join(em2.ids(), " "); got != "in:9:0 in:10:0 in:11:0" {
		t.Fatalf("resumed ids: %s", got)
	}
}

func TestPostgresPollOpenErrors(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pgExec(t, dsn, "CREATE TABLE ev (id int)")
	spec, _ := NewRegistry().Lookup(flow.RoleSource, "postgres")
	for _, tt := range []struct {
		cfg  flow.Config
		want string
	}{
		{flow.Config{"dsn": dsn, "table": "ev", "column": "nope"}, "config.column must name a column"},
		{flow.Config{"dsn": dsn, "table": "missing", "column": "id"}, "check config.table"},
	} {
		c, err := spec.New(flow.BuildContext{Name: "in", Pipeline: "p", Config: tt.cfg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.(flow.Opener).Open(ctx)
		c.(flow.Closer).Close(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// pgGatedEmitter is a pgTestEmitter whose Emit waits while gate is set.
// waiting receives once each time an Emit starts to wait.
type pgGatedEmitter struct {
	*pgTestEmitter
	gate    atomic.Pointer[chan struct{}]
	waiting chan struct{}
}

func (e *pgGatedEmitter) Emit(ctx context.Context, b []*flow.Event, done func(error)) error {
	if g := e.gate.Load(); g != nil {
		select {
		case e.waiting <- struct{}{}:
		default:
		}
		select {
		case <-*g:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return e.pgTestEmitter.Emit(ctx, b, done)
}

// lockedBuffer is a bytes.Buffer for a logger written from goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPostgresCDCReconnect: when an administrator ends the walsender, the
// source connects again and goes on; the server sends again everything
// after the slot's confirmed position (here: everything, as nothing is
// acknowledged), and the source drops what it had queued, whole
// transactions and the queued part of one cut in the middle, so that
// every change comes exactly once.
func TestPostgresCDCReconnect(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pgExec(t, dsn, "CREATE TABLE t (id int PRIMARY KEY, pad text)")
	cfg := flow.Config{"dsn": dsn, "tables": []any{"t"}, "create_publication": true, "status_interval": "50ms", "batch": 50}
	slot := "flowctl_p_in"
	pgDropSlot(t, dsn, slot)
	spec, err := NewRegistry().Lookup(flow.RoleSource, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	c, err := spec.New(flow.BuildContext{Name: "in", Pipeline: "p", Config: cfg,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	em := &pgGatedEmitter{pgTestEmitter: newPGTestEmitter(true), waiting: make(chan struct{}, 1)}
	stop := pgStart(t, c, em)
	defer stop()

	terminate := func() {
		t.Helper()
		q := "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name = '" + slot + "' AND active_pid IS NOT NULL"
		if got := pgRows(t, dsn, q); len(got) != 1 || got[0] != "1" {
			t.Fatalf("terminate the walsender: %v ended, want 1", got)
		}
	}
	check := func(want int) {
		t.Helper()
		evs := em.wait(t, want)
		seen := map[string]bool{}
		ids := map[int]bool{}
		for _, e := range evs {
			if seen[e.ID] {
				t.Fatalf("event %s came twice", e.ID)
			}
			seen[e.ID] = true
			var row struct{ ID int }
			if err := json.Unmarshal(e.Data, &row); err != nil {
				t.Fatalf("event %s: %s: %v", e.ID, e.Data, err)
			}
			if ids[row.ID] {
				t.Fatalf("row %d came twice (event %s)", row.ID, e.ID)
			}
			ids[row.ID] = true
		}
		if len(evs) != want {
			t.Fatalf("%d events, want %d", len(evs), want)
		}
	}

	// Whole transactions: two before the cut, one after.
	pgExec(t, dsn, "INSERT INTO t VALUES (1, ''), (2, ''), (3, '')", "INSERT INTO t VALUES (4, ''), (5, '')")
	em.wait(t, 5)
	terminate()
	pgExec(t, dsn, "INSERT INTO t VALUES (6, '')")
	// Row 6 comes after the server sent transactions 1 and 2 again: had
	// they been emitted again, they would be here.
	check(6)

	// A transaction cut in the middle: the pipeline holds the source
	// (Emit waits) while it is in its first batches of 50, the
	// walsender is ended, then the pipeline goes on.
	gate := make(chan struct{})
	em.gate.Store(&gate)
	const big = 60000
	pgExec(t, dsn, fmt.Sprintf("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(7, %d) g", 6+big))
	select {
	case <-em.waiting: // the big transaction's first batch is at the gate
	case <-time.After(60 * time.Second):
		t.Fatal("the big transaction did not reach the pipeline within 60 s")
	}
	terminate()
	em.gate.Store(nil)
	close(gate)
	pgExec(t, dsn, fmt.Sprintf("INSERT INTO t VALUES (%d, '')", 7+big))
	check(7 + big)
	l := logs.String()
	if got := strings.Count(l, "replication connection lost"); got < 2 {
		t.Errorf("%d reconnections logged, want 2 or more:\n%s", got, l)
	}
	if !strings.Contains(l, "whole=true") {
		t.Errorf("no whole transaction was dropped as sent again:\n%s", l)
	}
	if !strings.Contains(l, "whole=false") {
		// Possible only if the socket's buffers held all of it.
		t.Logf("the big transaction was not cut in the middle this time:\n%s", l)
	} else {
		i := strings.Index(l, "whole=false")
		line := l[strings.LastIndex(l[:i], "\n")+1:]
		t.Logf("cut in the middle: %s", line[:strings.Index(line, "\n")])
	}
}
