package cli

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// These tests drive the real flowctl binary, built once with `go build`.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func flowctlBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowctl-e2e")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "flowctl")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/flowctl/flowctl/cmd/flowctl").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// writeEvents writes n lines of the benchmark's event rule to path.
func writeEvents(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	kinds := []string{"payment", "trade", "fee"}
	for i := range n {
		fmt.Fprintf(w, `{"id":%d,"ts":"2026-01-01T00:00:00Z","account":"acct-%d","amount":%d,"kind":"%s"}`+"\n", i, i%1000, (i*7919)%10000, kinds[i%3])
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// malformedLines are JSON lines encoding/json accepts but whose values
// would change when read (+Inf, a rounded integer, U+FFFD), and one that
// is not JSON at all.
const malformedLines = "{\"amount\": 1e999}\n" +
	"{\"amount\": 123456789012345678901234567890}\n" +
	"{\"amount\": 6000, \"name\": \"\xff\"}\n" +
	"{\"amount\": oops\n"

func TestRunE2E(t *testing.T) {
	bin := flowctlBinary(t)
	tests := []struct {
		name     string
		pipeline string
		input    string // extra lines appended to 300 generated events
		args     []string
		exit     int
		// lastLine, if set, is what the last line of stderr must say.
		lastLine string
		files    map[string]int // output file → lines
		check    func(t *testing.T, dir string)
		stderr   []string
	}{
		{
			name: "linear filter-map",
			pipeline: `
name: w1
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}
  - name: usd
    type: map
    inputs: [large]
    config: {set: {amount_usd: "double(data.amount) / 100.0", kind: "data.kind.upperAscii()"}}
sinks: [{name: out, type: file, inputs: [usd], config: {path: out.jsonl}}]
`,
			files: map[string]int{"out.jsonl": 151},
			check: func(t *testing.T, dir string) {
				for _, l := range readLines(t, filepath.Join(dir, "out.jsonl")) {
					var v struct {
						Amount    float64 `json:"amount"`
						AmountUSD float64 `json:"amount_usd"`
						Kind      string  `json:"kind"`
					}
					if err := json.Unmarshal([]byte(l), &v); err != nil || v.Amount < 5000 || v.AmountUSD != v.Amount/100 || v.Kind != strings.ToUpper(v.Kind) {
						t.Fatalf("bad output line %s (%v)", l, err)
					}
				}
			},
			stderr: []string{`pipeline "w1" finished`, "300 events in, 151 written"},
		},
		{
			name: "fan-out pass-through keeps bytes",
			pipeline: `
name: w2
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors:
  - {name: payments, type: filter, inputs: [ledger], config: {expr: 'data.kind == "payment"'}}
  - {name: trades, type: filter, inputs: [ledger], config: {expr: 'data.kind == "trade"'}}
sinks:
  - {name: pay, type: file, inputs: [payments], config: {path: pay.jsonl}}
  - {name: trade, type: file, inputs: [trades], config: {path: trade.jsonl}}
  - {name: all, type: file, inputs: [payments, trades], config: {path: all.jsonl}}
`,
			files: map[string]int{"pay.jsonl": 100, "trade.jsonl": 100, "all.jsonl": 200},
			check: func(t *testing.T, dir string) {
				in := map[string]bool{}
				for _, l := range readLines(t, filepath.Join(dir, "in.jsonl")) {
					in[l] = true
				}
				for _, l := range readLines(t, filepath.Join(dir, "all.jsonl")) {
					if !in[l] {
						t.Fatalf("pass-through line changed: %s", l)
					}
				}
			},
		},
		{
			name: "type-routed",
			pipeline: `
name: routed
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors:
  - name: kinds
    type: route
    inputs: [ledger]
    config: {cases: [{type: payment, when: 'data.kind == "payment"'}, {type: trade, when: 'data.kind == "trade"'}], default: other}
sinks:
  - {name: pay, type: file, inputs: [{from: kinds, types: [payment]}], config: {path: pay.jsonl}}
  - {name: rest, type: file, inputs: [{from: kinds, types: [trade, other]}], config: {path: rest.jsonl}}
`,
			files: map[string]int{"pay.jsonl": 100, "rest.jsonl": 200},
		},
		{
			name: "malformed line goes to the dead-letter sink",
			pipeline: `
name: dl
sources: [{name: ledger, type: file, config: {path: in.jsonl, format: lines}}]
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}
sinks: [{name: out, type: file, inputs: [large], config: {path: out.jsonl}}]
dead_letter: {type: file, config: {path: failed.jsonl}}
`,
			input: "{\"amount\": oops\n",
			files: map[string]int{"out.jsonl": 151, "failed.jsonl": 1},
			check: func(t *testing.T, dir string) {
				var rec struct {
					Component string `json:"component"`
					Error     string `json:"error"`
					Attempts  int    `json:"attempts"`
					Event     struct {
						ID   string `json:"id"`
						Data any    `json:"data"`
					} `json:"event"`
				}
				l := readLines(t, filepath.Join(dir, "failed.jsonl"))[0]
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("dead letter %s: %v", l, err)
				}
				if rec.Component != "large" || rec.Attempts != 1 || rec.Event.ID != "ledger:301" || rec.Event.Data != `{"amount": oops` {
					t.Fatalf("dead letter %s", l)
				}
			},
			stderr: []string{"1 dead-lettered"},
		},
		{
			name: "strict JSON: malformed lines go to the dead letter from the source",
			pipeline: `
name: strict
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}
sinks: [{name: out, type: file, inputs: [large], config: {path: out.jsonl}}]
dead_letter: {type: file, config: {path: failed.jsonl}}
`,
			input: malformedLines,
			files: map[string]int{"out.jsonl": 151, "failed.jsonl": 4},
			check: func(t *testing.T, dir string) {
				want := []string{"beyond the range of float64", "does not fit in int64", "invalid UTF-8 byte 0xff", "unexpected"}
				for i, l := range readLines(t, filepath.Join(dir, "failed.jsonl")) {
					var rec struct {
						Component string `json:"component"`
						Error     string `json:"error"`
						Event     struct {
							ID string `json:"id"`
						} `json:"event"`
					}
					if err := json.Unmarshal([]byte(l), &rec); err != nil {
						t.Fatalf("dead letter %s: %v", l, err)
					}
					if rec.Component != "ledger" || rec.Event.ID != fmt.Sprintf("ledger:%d", 301+i) || !strings.Contains(rec.Error, want[i]) {
						t.Errorf("dead letter %d: %s; want the source, line %d and %q", i, l, 301+i, want[i])
					}
				}
			},
			stderr: []string{"4 dead-lettered, 0 dropped"},
		},
		{
			name: "drops without a dead-letter sink fail the run",
			pipeline: `
name: lossy
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}
sinks: [{name: out, type: file, inputs: [large], config: {path: out.jsonl}}]
`,
			input:    malformedLines + "{\"no_amount\": 1}\n",
			files:    map[string]int{"out.jsonl": 151},
			exit:     4,
			lastLine: `flowctl run: pipeline "lossy" dropped 5 events (source "ledger" 4, processor "large" 1) and has no dead_letter sink to keep them: add one to see why, or pass --allow-drops to accept the loss (exit 4)`,
		},
		{
			name: "--allow-drops accepts them",
			pipeline: `
name: lossy
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
sinks: [{name: out, type: file, inputs: [ledger], config: {path: out.jsonl}}]
`,
			input:    malformedLines,
			args:     []string{"--allow-drops"},
			files:    map[string]int{"out.jsonl": 300},
			lastLine: `flowctl run: pipeline "lossy" dropped 4 events (source "ledger" 4); allowed by --allow-drops`,
		},
		{
			name: "lenient JSON emits every line",
			pipeline: `
name: lenient
sources: [{name: ledger, type: file, config: {path: in.jsonl, json: lenient}}]
sinks: [{name: out, type: file, inputs: [ledger], config: {path: out.jsonl}}]
`,
			input: malformedLines,
			files: map[string]int{"out.jsonl": 304},
		},
		{
			name: "stop policy fails the run",
			pipeline: `
name: stopper
sources: [{name: ledger, type: file, config: {path: in.jsonl, format: lines}}]
processors:
  - {name: large, type: filter, inputs: [ledger], on_error: stop, config: {expr: "data.amount >= 5000"}}
sinks: [{name: out, type: file, inputs: [large], config: {path: out.jsonl}}]
`,
			input:  "not json\n",
			exit:   1,
			stderr: []string{`pipeline "stopper" failed: processor "large" failed on event "ledger:301"`},
		},
		{
			name: "invalid file",
			pipeline: `
name: bad
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
sinks: [{name: out, type: file, config: {path: out.jsonl}}]
`,
			exit:   1,
			stderr: []string{"pipeline.yaml:4:", "does not validate"},
		},
		{
			// Nothing is pulled; without Docker the daemon error names it too.
			name: "image component without its image",
			pipeline: `
name: ext
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors: [{name: enrich, image: example/enrich:1, inputs: [ledger]}]
sinks: [{name: out, type: file, inputs: [enrich], config: {path: out.jsonl}}]
`,
			exit:   1,
			stderr: []string{`component "enrich": start enrich`, "example/enrich:1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeEvents(t, filepath.Join(dir, "in.jsonl"), 300)
			if tc.input != "" {
				f, _ := os.OpenFile(filepath.Join(dir, "in.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
				io.WriteString(f, tc.input)
				f.Close()
			}
			pf := filepath.Join(dir, "pipeline.yaml")
			if err := os.WriteFile(pf, []byte(tc.pipeline), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, append([]string{"run", "-f", pf, "--state-dir", t.TempDir()}, tc.args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.exit {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.exit, stderr.String())
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if tc.lastLine != "" {
				lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
				if last := lines[len(lines)-1]; last != tc.lastLine {
					t.Errorf("last line of stderr:\n got %s\nwant %s", last, tc.lastLine)
				}
			}
			for f, n := range tc.files {
				if got := len(readLines(t, filepath.Join(dir, f))); got != n {
					t.Errorf("%s: %d lines, want %d", f, got, n)
				}
			}
			if tc.check != nil {
				tc.check(t, dir)
			}
		})
	}
}

// TestRunE2ESinks: a generator fanned out to SQLite, an HTTP endpoint and
// a drop sink, through a route that sends each type its own way.
func TestRunE2ESinks(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	var mu sync.Mutex
	posted := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		posted += len(batch)
		mu.Unlock()
	}))
	defer srv.Close()
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`
name: sinks
sources: [{name: gen, type: generate, config: {count: 1000, expr: '{"id": i, "amount": (i * 7919) % 10000}'}}]
processors:
  - name: size
    type: route
    inputs: [gen]
    config: {cases: [{type: large, when: "data.amount >= 5000"}], default: small}
sinks:
  - {name: db, type: sqlite, inputs: [{from: size, types: [large]}], config: {path: events.db, table: large}}
  - {name: web, type: http, inputs: [size], config: {url: "`+srv.URL+`"}}
  - {name: bin, type: drop, inputs: [{from: size, types: [small]}]}
`), 0o644)
	cmd := exec.Command(bin, "run", "-f", pf, "--state-dir", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRow("SELECT count(*) FROM large").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if rows != 501 || posted != 1000 {
		t.Fatalf("sqlite has %d rows (want 501), http got %d events (want 1000)\n%s", rows, posted, stderr.String())
	}
	if !strings.Contains(stderr.String(), "1000 events in, 2000 written") {
		t.Errorf("summary:\n%s", stderr.String())
	}
}

var summaryRe = regexp.MustCompile(`pipeline "(\w+)" (finished|stopped) in [^:]+: (\d+) events in, (\d+) written`)

// TestRunDrainSIGTERM: SIGTERM in the middle of a file → file run drains:
// every event the source handed over is in the output file.
func TestRunDrainSIGTERM(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	const total = 400_000
	writeEvents(t, filepath.Join(dir, "in.jsonl"), total)
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`
name: drain
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors: [{name: parse, type: filter, inputs: [ledger], config: {expr: "data.amount >= 0"}}]
sinks: [{name: out, type: file, inputs: [parse], config: {path: out.jsonl}}]
`), 0o644)
	cmd := exec.Command(bin, "run", "-f", pf, "--grace", "30s", "--state-dir", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(out); err == nil && st.Size() > 2<<20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no output within 20s; stderr:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := cmd.Wait()
	m := summaryRe.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no summary in stderr:\n%s", stderr.String())
	}
	// Drained, but the file was not read to its end: 128+SIGTERM, saying
	// so. (If the run finished first, 0.)
	var ee *exec.ExitError
	switch {
	case m[2] == "stopped" && (!errors.As(waitErr, &ee) || ee.ExitCode() != 143 ||
		!strings.Contains(stderr.String(), `stopped by SIGTERM before source "ledger" finished`)):
		t.Fatalf("flowctl run stopped by SIGTERM mid-file: %v, want exit 143 and a message\n%s", waitErr, stderr.String())
	case m[2] != "stopped" && waitErr != nil:
		t.Fatalf("flowctl run that finished: %v\n%s", waitErr, stderr.String())
	}
	emitted, _ := strconv.Atoi(m[3])
	written, _ := strconv.Atoi(m[4])
	lines := readLines(t, out)
	if emitted != written || len(lines) != emitted {
		t.Fatalf("source handed over %d events, sink wrote %d, file has %d lines", emitted, written, len(lines))
	}
	if m[2] != "stopped" || emitted == total {
		t.Logf("the run finished before SIGTERM arrived (%s, %d events)", m[2], emitted)
	} else {
		t.Logf("stopped after %d of %d events; all %d in the output", emitted, total, len(lines))
	}
	// Lines are whole and in order: the drain never cuts one.
	for i, l := range lines {
		if !strings.HasPrefix(l, `{"id":`+strconv.Itoa(i)+`,`) {
			t.Fatalf("line %d is %q", i+1, l)
		}
	}
}

// TestRunMetricsEndpoint: --http serves /healthz, /readyz and Prometheus
// metrics while a following file source keeps the run alive; SIGINT then
// ends it cleanly.
func TestRunMetricsEndpoint(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 1000)
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`
name: live
sources: [{name: ledger, type: file, config: {path: in.jsonl, follow: true, poll_interval: 20ms}}]
processors: [{name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}]
sinks: [{name: out, type: file, inputs: [large], config: {path: out.jsonl}}]
`), 0o644)
	addr := freeAddr(t)
	cmd := exec.Command(bin, "run", "-f", pf, "--http", addr, "--state-dir", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get("/metrics")
		if code == 200 && strings.Contains(body, `flowctl_events_out_total{component="out",pipeline="live",role="sink"} 501`) {
			for _, want := range []string{
				`flowctl_events_in_total{component="large",pipeline="live",role="processor"} 1000`,
				`flowctl_events_filtered_total{component="large",pipeline="live",role="processor"} 499`,
				`flowctl_queue_depth{component="out",pipeline="live",role="sink"} 0`,
				`flowctl_batch_latency_seconds_bucket{component="out",pipeline="live",role="sink",le="+Inf"}`,
				`flowctl_errors_total{component="large",pipeline="live",role="processor"} 0`,
				`flowctl_ready{pipeline="live"} 1`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the events: %d %s\nstderr:\n%s", code, body, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d", code)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), `pipeline "live" stopped`) {
		t.Errorf("summary missing:\n%s", stderr.String())
	}
}

// TestRunSecondSignal: a drain stuck behind a sink that never answers
// ends at once on the second SIGTERM, non-zero, saying so.
func TestRunSecondSignal(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`
name: stuck
sources: [{name: gen, type: generate, config: {count: 0, expr: '{"id": i}'}}]
sinks: [{name: web, type: http, inputs: [gen], config: {url: "`+srv.URL+`", timeout: 60s}}]
`), 0o644)
	cmd := exec.Command(bin, "run", "-f", pf, "--grace", "60s", "--state-dir", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	t.Logf("stopped %s after the second signal", time.Since(start))
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("second signal took %s to stop the run", took)
	}
	for _, want := range []string{"stopping: draining", "second signal: stopping now", "run aborted"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
