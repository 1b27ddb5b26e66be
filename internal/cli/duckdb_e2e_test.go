//go:build duckdb && cgo

package cli

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" driver, to count rows
)

// flowctlDuckDBBinary is flowctl built with -tags duckdb (cgo).
func flowctlDuckDBBinary(t *testing.T) string {
	t.Helper()
	return flowctlTaggedBinary(t, "duckdb", "CGO_ENABLED=1")
}

// TestDuckDBVersionE2E: the tagged binary says it has DuckDB.
func TestDuckDBVersionE2E(t *testing.T) {
	out, err := exec.Command(flowctlDuckDBBinary(t), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\noptional: duckdb\n") {
		t.Fatalf("version: %v\n%s", err, out)
	}
}

// TestDuckDBSinkKill9E2E runs `flowctl run` writing 5000 events from a file
// into DuckDB, kills it with SIGKILL midway, runs it again, and counts the
// events lost and stored twice. DuckDB locks the file while flowctl writes
// it, so the test watches a second sink (a file fed the same events) to
// know when to kill, and counts rows once the process is gone.
func TestDuckDBSinkKill9E2E(t *testing.T) {
	bin := flowctlDuckDBBinary(t)
	const total = 5000
	for _, tt := range []struct {
		name string
		key  string // config line, or ""
	}{
		{"insert without key", ""},
		{"upsert on key", "key: [id]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeEvents(t, filepath.Join(dir, "events.jsonl"), total)
			pf := filepath.Join(dir, "pipeline.yaml")
			// The rate limit stretches the run over about 2.5 s, so that
			// the kill lands in the middle of it, after a checkpoint or two.
			os.WriteFile(pf, []byte(fmt.Sprintf(`name: dd
sources:
  - {name: in, type: file, config: {path: events.jsonl}}
processors:
  - {name: slow, type: rate_limit, inputs: [in], config: {rate: 2000, burst: 100}}
sinks:
  - name: store
    type: duckdb
    inputs: [slow]
    config:
      path: data/events.duckdb
      table: payments
      columns: [id, account, amount]
      types: {amount: "DECIMAL(12,2)"}
      %s
  - {name: watch, type: file, inputs: [slow], config: {path: watch.jsonl}}
`, tt.key)), 0o644)
			db := filepath.Join(dir, "data", "events.duckdb")
			state := t.TempDir()
			run := func() *exec.Cmd { return exec.Command(bin, "run", "-f", pf, "--state-dir", state) }
			counts := func() (rows, distinct, inRange, stored int) {
				t.Helper()
				conn, err := sql.Open("duckdb", db)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				if err := conn.QueryRow(fmt.Sprintf("SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE id BETWEEN 0 AND %d) FROM payments", total-1)).Scan(&rows, &distinct, &inRange); err != nil {
					if strings.Contains(err.Error(), "does not exist") {
						return 0, 0, 0, 0
					}
					t.Fatal(err)
				}
				if err := conn.QueryRow(`SELECT position FROM flowctl_sink_positions WHERE pipeline = 'dd' AND sink = 'store' AND "table" = 'payments'`).Scan(&stored); err != nil {
					t.Fatal(err)
				}
				return rows, distinct, inRange, stored
			}

			first := run()
			var out1 bytes.Buffer
			first.Stderr = &out1
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- first.Wait() }()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case err := <-exited:
					t.Fatalf("the first run ended (%v) before the kill:\n%s", err, out1.String())
				case <-ctx.Done():
					first.Process.Kill()
					t.Fatalf("the watch file did not fill after %d polls:\n%s", i, out1.String())
				case <-tick.C:
				}
				if b, _ := os.ReadFile(filepath.Join(dir, "watch.jsonl")); bytes.Count(b, []byte("\n")) >= total/2 {
					break
				}
			}
			if err := first.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-exited
			rowsKilled, _, _, storedKilled := counts()
			if rowsKilled == 0 || rowsKilled >= total {
				t.Fatalf("%d rows when killed: the test proves nothing\n%s", rowsKilled, out1.String())
			}

			second := run()
			var out2 bytes.Buffer
			second.Stderr = &out2
			if err := second.Run(); err != nil {
				t.Fatalf("the resumed run: %v\n%s", err, out2.String())
			}
			rows, distinct, inRange, stored := counts()
			replayed := 0
			if m := replayedRe.FindStringSubmatch(out2.String()); m != nil {
				replayed, _ = strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
			}
			lost, repeated := total-distinct, rows-distinct
			t.Logf("%s: %d rows (position %d) when killed, %d after the resumed run: lost %d, repeated %d; %d events written after the checkpoint were sent again (cut back, or upserted in place with key)",
				tt.name, rowsKilled, storedKilled, rows, lost, repeated, replayed)
			if lost != 0 || repeated != 0 || inRange != rows || stored != total {
				t.Fatalf("lost %d, repeated %d, rows %d (in range %d), stored position %d; want 0, 0, %d, %d, %d\nfirst run:\n%s\nsecond run:\n%s",
					lost, repeated, rows, inRange, stored, total, total, total, out1.String(), out2.String())
			}
		})
	}
}
