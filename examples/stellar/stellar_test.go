// Package stellar holds the tests of the Stellar example: recorded ledgers
// through the token-transfer processor (Go SDK, gRPC) into SQLite, run by
// the real flowctl binary.
package stellar

import (
	"bytes"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

var update = flag.Bool("update", false, "rewrite testdata/summary.golden")

func here(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

var builds struct {
	once             sync.Once
	flowctl, process string
	err              error
}

// build compiles flowctl and the token-transfer processor once per test
// binary.
func build(t *testing.T) (flowctl, processor string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds flowctl and the token-transfer processor")
	}
	builds.once.Do(func() {
		dir, err := os.MkdirTemp("", "flowctl-stellar")
		if err != nil {
			builds.err = err
			return
		}
		root := filepath.Join(here(t), "..", "..")
		for pkg, out := range map[string]*string{"./cmd/flowctl": &builds.flowctl, "./examples/stellar/token-transfer": &builds.process} {
			*out = filepath.Join(dir, filepath.Base(pkg))
			cmd := exec.Command("go", "build", "-o", *out, pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				builds.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if builds.err != nil {
		t.Fatal(builds.err)
	}
	return builds.flowctl, builds.process
}

// run runs `flowctl run` on the pipeline file with its output in out.
func run(t *testing.T, flowctl, processor, pipeline, out, state string) string {
	t.Helper()
	cmd := exec.Command(flowctl, "run", "-f", pipeline, "--state-dir", state)
	cmd.Env = append(os.Environ(), "TOKEN_TRANSFER="+processor, "OUT_DIR="+out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("flowctl run: %v\n%s", err, b)
	}
	return string(b)
}

// summary is what the example's README shows: transfers per kind and asset,
// with their sum in stroops.
func summary(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT event_type, asset, count(*), sum(amount_stroops) FROM token_transfers GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var kind, asset string
		var n, sum int64
		if err := rows.Scan(&kind, &asset, &n, &sum); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s|%s|%d|%d\n", kind, asset, n, sum)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func count(t *testing.T, db *sql.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPipeline runs the example as its README says and checks the table
// against testdata/summary.golden; a second run resumes from its
// checkpoint and adds nothing.
func TestPipeline(t *testing.T) {
	flowctl, processor := build(t)
	out, state := t.TempDir(), t.TempDir()
	pipeline := filepath.Join(here(t), "pipeline.yaml")
	log := run(t, flowctl, processor, pipeline, out, state)
	if !strings.Contains(log, "0 dead-lettered, 0 dropped, 0 errors") {
		t.Errorf("run summary does not say every transfer was written:\n%s", log)
	}

	db, err := sql.Open("sqlite", filepath.Join(out, "transfers.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := summary(t, db)
	golden := filepath.Join(here(t), "testdata", "summary.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("transfers per kind and asset:\n%s\nwant (testdata/summary.golden; -update rewrites it):\n%s", got, want)
	}
	rows := count(t, db, `SELECT count(*) FROM token_transfers`)
	if ids := count(t, db, `SELECT count(DISTINCT id) FROM token_transfers`); ids != rows || rows == 0 {
		t.Errorf("%d rows but %d distinct ids", rows, ids)
	}
	// Every transaction of every ledger pays a fee.
	var txs int
	for _, line := range bytes.Split(mustRead(t, filepath.Join(here(t), "ledgers.jsonl")), []byte("\n")) {
		txs += bytes.Count(line, []byte(`"fee_charged"`))
	}
	if fees := count(t, db, `SELECT count(*) FROM token_transfers WHERE event_type = 'fee'`); fees != txs {
		t.Errorf("%d fee rows for %d transactions", fees, txs)
	}

	run(t, flowctl, processor, pipeline, out, state)
	if again := count(t, db, `SELECT count(*) FROM token_transfers`); again != rows {
		t.Errorf("a second run changed the table from %d to %d rows; it should resume at the end", rows, again)
	}
}

// TestBadLedgerIsDeadLettered appends a ledger whose payment has no
// recipient: it goes to the dead letters with the processor's reason, and
// every other ledger's transfers are written.
func TestBadLedgerIsDeadLettered(t *testing.T) {
	flowctl, processor := build(t)
	dir := t.TempDir()
	ledgers := mustRead(t, filepath.Join(here(t), "ledgers.jsonl"))
	bad := `{"sequence":52999999,"closed_at":"2024-06-01T01:00:00Z","transactions":[{"hash":"ff","index":1,"source_account":"GALICE","fee_charged":100,"successful":true,"operations":[{"index":0,"type":"payment","amount":"1"}]}]}` + "\n"
	must(t, os.WriteFile(filepath.Join(dir, "ledgers.jsonl"), append(ledgers, bad...), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "pipeline.yaml"), mustRead(t, filepath.Join(here(t), "pipeline.yaml")), 0o644))
	out := filepath.Join(dir, "out")
	log := run(t, flowctl, processor, filepath.Join(dir, "pipeline.yaml"), out, t.TempDir())
	if !strings.Contains(log, "1 dead-lettered") {
		t.Errorf("summary does not count the bad ledger as dead-lettered:\n%s", log)
	}
	dl := string(mustRead(t, filepath.Join(out, "dead-letters.jsonl")))
	if strings.Count(dl, "\n") != 1 || !strings.Contains(dl, "ledger 52999999 transaction 1 operation 0 (payment): payment needs to and asset") {
		t.Errorf("dead letters:\n%s", dl)
	}
	db, err := sql.Open("sqlite", filepath.Join(out, "transfers.db"))
	must(t, err)
	defer db.Close()
	if got, want := summary(t, db), string(mustRead(t, filepath.Join(here(t), "testdata", "summary.golden"))); got != want {
		t.Errorf("the good ledgers' transfers changed:\n%s\nwant:\n%s", got, want)
	}
}

// TestLedgersAreGenerated checks that ledgers.jsonl is what mkledgers
// writes, so the recorded data can be remade and reviewed.
func TestLedgersAreGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go run ./examples/stellar/mkledgers")
	}
	cmd := exec.Command("go", "run", "./examples/stellar/mkledgers")
	cmd.Dir = filepath.Join(here(t), "..", "..")
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("mkledgers: %v", err)
	}
	if !bytes.Equal(got, mustRead(t, filepath.Join(here(t), "ledgers.jsonl"))) {
		t.Error("ledgers.jsonl differs from what mkledgers writes: go run ./examples/stellar/mkledgers > examples/stellar/ledgers.jsonl")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
