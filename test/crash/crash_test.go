//go:build unix

package crash

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver flowctl's sqlite sink uses
)

// Sizes: FLOWCTL_CRASH_EVENTS events and FLOWCTL_CRASH_KILLS kills per
// workload (the defaults are CI's reduced size; the full size is
// 1000000 and 50).
func sizes(t *testing.T) (events, kills int) {
	events, kills = 100_000, 10
	if v := os.Getenv("FLOWCTL_CRASH_EVENTS"); v != "" {
		events, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("FLOWCTL_CRASH_KILLS"); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	if events <= 0 || kills < 0 {
		t.Fatalf("bad FLOWCTL_CRASH_EVENTS/KILLS: %d, %d", events, kills)
	}
	return events, kills
}

var binPath, sdkPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flowctl-crash")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "flowctl")
	out, err := exec.Command("go", "build", "-o", binPath, "github.com/flowctl/flowctl/cmd/flowctl").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build flowctl: %v\n%s", err, out)
		os.Exit(1)
	}
	sdkPath = filepath.Join(dir, "sdk-processor")
	out, err = exec.Command("go", "build", "-o", sdkPath, "github.com/flowctl/flowctl/examples/sdk-processor").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build sdk-processor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// writeInput writes the benchmark input (../shared/bench/gen.sh's rule)
// with n lines.
func writeInput(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	kinds := [3]string{"payment", "trade", "fee"}
	for i := range n {
		fmt.Fprintf(w, `{"id":%d,"ts":"2026-01-01T00:00:00Z","account":"acct-%d","amount":%d,"kind":"%s"}`+"\n", i, i%1000, (i*7919)%10000, kinds[i%3])
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// workload is a pipeline and, per output file, which ids it must hold.
// batchDups is how many ids each kill may repeat: 0 where the file sink
// is exactly-once, one batch where an external hop may replay.
type workload struct {
	name      string
	yaml      string
	outs      map[string]func(id int) bool
	batchDups int
}

var workloads = []workload{
	{
		name: "w1",
		yaml: `name: w1
sources:
  - {name: ledger, type: file, config: {path: in.jsonl}}
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}
  - name: usd
    type: map
    inputs: [large]
    config:
      set:
        amount_usd: "double(data.amount) / 100.0"
        kind: "data.kind.upperAscii()"
sinks:
  - {name: out, type: file, inputs: [usd], config: {path: out.jsonl}}
`,
		outs: map[string]func(int) bool{"out.jsonl": func(id int) bool { return (id*7919)%10000 >= 5000 }},
	},
	{
		name: "w2",
		yaml: `name: w2
sources:
  - {name: ledger, type: file, config: {path: in.jsonl}}
processors:
  - {name: payments, type: filter, inputs: [ledger], config: {expr: 'data.kind == "payment"'}}
  - {name: trades, type: filter, inputs: [ledger], config: {expr: 'data.kind == "trade"'}}
sinks:
  - {name: pay, type: file, inputs: [payments], config: {path: pay.jsonl}}
  - {name: trade, type: file, inputs: [trades], config: {path: trade.jsonl}}
`,
		outs: map[string]func(int) bool{
			"pay.jsonl":   func(id int) bool { return id%3 == 0 },
			"trade.jsonl": func(id int) bool { return id%3 == 1 },
		},
	},
	{
		// W1 with its map step done by an external Go SDK processor over
		// gRPC (examples/sdk-processor), killed with flowctl.
		name: "w1-grpc",
		yaml: `name: w1grpc
sources:
  - {name: ledger, type: file, config: {path: in.jsonl}}
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}
  - {name: usd, command: ["${SDK}"], protocol: grpc, inputs: [large]}
sinks:
  - {name: out, type: file, inputs: [usd], config: {path: out.jsonl}}
`,
		outs:      map[string]func(int) bool{"out.jsonl": func(id int) bool { return (id*7919)%10000 >= 5000 }},
		batchDups: 256,
	},
	{
		// W1 into a SQLite table.
		name: "w1-sqlite",
		yaml: `name: w1sqlite
sources:
  - {name: ledger, type: file, config: {path: in.jsonl}}
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}
sinks:
  - {name: out, type: sqlite, inputs: [large], config: {path: out.db, table: events, columns: [id, amount, kind]}}
`,
		outs: map[string]func(int) bool{"out.db": func(id int) bool { return (id*7919)%10000 >= 5000 }},
	},
}

// TestKill9 runs each workload, SIGKILLs flowctl when its output has
// grown to a random size, runs it again, and so on; then one run to the
// end. Every expected id must be in its file exactly once.
func TestKill9(t *testing.T) {
	events, kills := sizes(t)
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) {
			dir := t.TempDir()
			writeInput(t, filepath.Join(dir, "in.jsonl"), events)
			pf := filepath.Join(dir, "pipeline.yaml")
			if err := os.WriteFile(pf, []byte(strings.ReplaceAll(w.yaml, "${SDK}", sdkPath)), 0o644); err != nil {
				t.Fatal(err)
			}
			stateDir := filepath.Join(dir, "state")
			want := map[string]int{}
			for name, keep := range w.outs {
				for id := range events {
					if keep(id) {
						want[name]++
					}
				}
			}
			// The first output file's final size, estimated from its line
			// count: kill targets are spread over it.
			first := ""
			for name := range w.outs {
				if first == "" || name < first {
					first = name
				}
			}
			approx := int64(want[first]) * 100
			watch := filepath.Join(dir, first)

			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
			landed, finished := 0, 0
			var last int64
			for k := 0; k < kills; k++ {
				// Spread the kills over what is left: on average one
				// step of it further each time.
				step := (approx - last) / int64(kills-k+1)
				target := last + 1 + rng.Int64N(max(2*step, 2))
				done, size := runUntil(t, pf, stateDir, watch, target)
				if done {
					finished++
					break
				}
				landed++
				last = size
			}
			// The final run goes to the end.
			cmd := exec.Command(binPath, "run", "-f", pf, "--state-dir", stateDir, "--checkpoint-interval", "20ms")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("final run: %v\n%s", err, out)
			}
			lost, dup := 0, 0
			for name, keep := range w.outs {
				seen := readIDs(t, filepath.Join(dir, name))
				for id := range events {
					n := seen[id]
					switch {
					case keep(id) && n == 0:
						lost++
					case n > 1:
						dup += n - 1
					case !keep(id) && n > 0:
						t.Errorf("%s: id %d does not belong there", name, id)
					}
				}
				if got := len(seen); got != want[name] {
					t.Errorf("%s: %d distinct ids, want %d", name, got, want[name])
				}
			}
			// CI prints this line; the note quotes the full-size run.
			fmt.Printf("crash %s: %d events, %d SIGKILLs mid-run (%d runs finished before their kill), %d lost, %d duplicated\n",
				w.name, events, landed, finished, lost, dup)
			if lost != 0 || dup > landed*w.batchDups {
				t.Errorf("%d ids lost, %d duplicated (at most %d allowed)", lost, dup, landed*w.batchDups)
			}
		})
	}
}

// runUntil starts a run and SIGKILLs it once out has reached target bytes.
// It reports whether the run ended by itself first, and out's size when
// it was killed.
func runUntil(t *testing.T, pf, stateDir, out string, target int64) (finished bool, size int64) {
	t.Helper()
	cmd := exec.Command(binPath, "run", "-f", pf, "--state-dir", stateDir, "--checkpoint-interval", "20ms")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("run failed before it was killed: %v\n%s", err, stderr.String())
			}
			return true, 0
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("the output did not reach %d bytes in 2 minutes\n%s", target, stderr.String())
		case <-tick.C:
			if progress(out) < target {
				continue
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err := <-exited
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return false, progress(out)
			}
			if err != nil {
				t.Fatalf("run failed: %v\n%s", err, stderr.String())
			}
			return true, 0
		}
	}
}

// progress is how far the output got: a file's size, or 100 bytes a row
// of a SQLite table (about a JSON line's size, so that one estimate
// serves both).
func progress(path string) int64 {
	if strings.HasSuffix(path, ".db") {
		db, err := sql.Open("sqlite", path+"?mode=ro")
		if err != nil {
			return 0
		}
		defer db.Close()
		var n int64
		if db.QueryRow("SELECT count(*) FROM events").Scan(&n) != nil {
			return 0
		}
		return n * 100
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readIDs counts the "id" of every line of path (of every row of the
// events table, for a .db file).
func readIDs(t *testing.T, path string) map[int]int {
	t.Helper()
	if strings.HasSuffix(path, ".db") {
		return readRowIDs(t, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for i, line := range bytes.Split(b, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var v struct {
			ID *int `json:"id"`
		}
		if err := json.Unmarshal(line, &v); err != nil || v.ID == nil {
			t.Fatalf("%s line %d is not a whole event: %q", path, i+1, line)
		}
		seen[*v.ID]++
	}
	return seen
}

func readRowIDs(t *testing.T, path string) map[int]int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id FROM events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[int]int{}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		seen[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}
