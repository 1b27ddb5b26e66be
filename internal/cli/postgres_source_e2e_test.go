package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowctl/flowctl/internal/pgtest"
)

// TestPostgresCDCKill9E2E: 5000 rows inserted in 10 transactions, half
// before `flowctl run` (postgres cdc → rate limit → file) starts and half
// while it runs; SIGKILL when some but not all are in the file; a second
// run until every row is there, stopped with SIGTERM. Lost must be 0;
// repeated is measured (at-least-once: what was written after the slot's
// last confirmation comes again), and a repeated event must carry the
// same id as the first time.
func TestPostgresCDCKill9E2E(t *testing.T) {
	pgSourceKill9(t, "cdc", `{dsn: "${PG_URL}", publication: e2e_pub, slot: e2e_slot}`)
}

// TestPostgresPollKill9E2E is the same with mode poll on the id column:
// its position is in flowctl's checkpoint, so the file sink cuts back
// what it wrote after it, and nothing is lost or repeated.
func TestPostgresPollKill9E2E(t *testing.T) {
	pgSourceKill9(t, "poll", `{dsn: "${PG_URL}", table: items, column: id, interval: 50ms}`)
}

func pgSourceKill9(t *testing.T, mode, config string) {
	if runtime.GOOS == "windows" {
		t.Skip("stops flowctl with SIGTERM")
	}
	bin := flowctlBinary(t)
	const total, txs = 5000, 10
	dsn := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	exec1 := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec1("CREATE TABLE items (id int PRIMARY KEY, amount int NOT NULL)")
	if mode == "cdc" {
		// The slot exists before the first rows, so that it holds them
		// all; flowctl takes it over. Dropped at the end (after the
		// runs' cleanups, which kill flowctl): a slot keeps WAL.
		exec1("CREATE PUBLICATION e2e_pub FOR TABLE items")
		exec1("SELECT pg_create_logical_replication_slot('e2e_slot', 'pgoutput')")
		t.Cleanup(func() {
			c, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close(context.Background())
			for i := 0; i < 100; i++ {
				if _, err = c.Exec(context.Background(), "SELECT pg_drop_replication_slot('e2e_slot')"); err == nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Errorf("drop slot: %v", err)
		})
	}
	insertTx := func(k int) {
		t.Helper()
		per := total / txs
		exec1("INSERT INTO items SELECT g, (g * 7919) % 10000 FROM generate_series($1::int, $2::int) g", k*per, (k+1)*per-1)
	}
	for k := 0; k < txs/2; k++ {
		insertTx(k)
	}

	dir := t.TempDir()
	pf := filepath.Join(dir, "pipeline.yaml")
	out := filepath.Join(dir, "out.jsonl")
	os.WriteFile(pf, []byte(`name: pgsrc
sources:
  - {name: in, type: postgres, config: `+config+`}
processors:
  - {name: slow, type: rate_limit, inputs: [in], config: {rate: 2000, burst: 100}}
sinks:
  - {name: out, type: file, inputs: [slow], config: {path: out.jsonl, format: envelope}}
`), 0o644)
	state := t.TempDir()
	run := func() *flowctlProc {
		return startFlowctl(t, bin, []string{"PG_URL=" + dsn}, "run", "-f", pf, "--state-dir", state)
	}
	ids := map[int]string{} // the first id each row's event had
	badIDs := 0
	count := func() (lines, distinct int) {
		data, err := os.ReadFile(out)
		if os.IsNotExist(err) {
			return 0, 0
		}
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.LastIndexByte(data, '\n')
		if i < 0 {
			return 0, 0
		}
		seen := make([]bool, total)
		for _, l := range strings.Split(string(data[:i]), "\n") {
			var ev struct {
				ID   string `json:"id"`
				Data struct {
					ID     *int `json:"id"`
					Amount int  `json:"amount"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Data.ID == nil || *ev.Data.ID < 0 || *ev.Data.ID >= total || ev.Data.Amount != (*ev.Data.ID*7919)%10000 {
				t.Fatalf("output line %d is not one of the rows: %q", lines+1, l)
			}
			n := *ev.Data.ID
			if first, ok := ids[n]; !ok {
				ids[n] = ev.ID
			} else if first != ev.ID && !seen[n] {
				badIDs++ // the same row came again under another id
			}
			lines++
			if !seen[n] {
				seen[n] = true
				distinct++
			}
		}
		return lines, distinct
	}
	first := run()
	first.waitOutput(t, ctx, "a first event", count, func(lines, _ int) bool { return lines > 0 })
	for k := txs / 2; k < txs; k++ { // the other half while it runs
		insertTx(k)
	}
	first.waitOutput(t, ctx, "half the events", count, func(lines, _ int) bool { return lines >= total/2 })
	first.kill9(t)
	killedLines, _ := count()
	if killedLines >= total {
		t.Fatalf("every event was written before the kill (%d lines): the test proves nothing", killedLines)
	}

	second := run()
	second.waitOutput(t, ctx, "every event", count, func(_, distinct int) bool { return distinct == total })
	second.stop(t, ctx)
	lines, distinct := count()
	lost, repeated := total-distinct, lines-distinct
	t.Logf("postgres %s → file: %d lines when killed; after the resumed run %d lines: lost %d, repeated %d, repeated under another id %d",
		mode, killedLines, lines, lost, repeated, badIDs)
	if lost != 0 || badIDs != 0 {
		t.Fatalf("lost %d events, %d repeated under another id\nfirst run:\n%s\nsecond run:\n%s", lost, badIDs, first.stderr.String(), second.stderr.String())
	}
	if mode == "poll" && repeated != 0 {
		t.Fatalf("poll: repeated %d events; the file sink should have cut back to the checkpoint\nsecond run:\n%s", repeated, second.stderr.String())
	}
	if mode == "cdc" {
		// The slot confirmed everything the runs wrote: a third run would
		// get nothing again.
		var lag int64
		if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'e2e_slot'").Scan(&lag); err != nil {
			t.Fatal(err)
		}
		t.Logf("slot e2e_slot: confirmed %d bytes of WAL behind the current position after SIGTERM", lag)
	}
}
