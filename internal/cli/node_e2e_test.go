package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nodeProc is one `flowctl node` process started by a test.
type nodeProc struct {
	name string
	cmd  *exec.Cmd
	addr string // where it listens; "" for a source node

	mu  sync.Mutex
	out bytes.Buffer
	// done is closed once the process exited and its output was read.
	done chan struct{}
	err  error
}

var listeningLine = regexp.MustCompile(`flowctl node: \S+ listening on (\S+)`)

// startNodeProc starts `flowctl node` and, when listens, waits for the
// line that gives its address (the readiness signal).
func startNodeProc(t *testing.T, bin, dir, name string, listens bool, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"node", "--component", name}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OUT_DIR="+filepath.Join(dir, "out"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{name: name, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listeningLine.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	if !listens {
		return p
	}
	select {
	case p.addr = <-addr:
	case <-p.done:
		t.Fatalf("node %s exited before it listened: %v\n%s", name, p.err, p.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s did not listen within 30s\n%s", name, p.output())
	}
	return p
}

func (p *nodeProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// wait waits for the node to exit 0 within a minute.
func (p *nodeProc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("node %s did not end within 60s\n%s", p.name, p.output())
	}
	if p.err != nil {
		t.Fatalf("node %s: %v\n%s", p.name, p.err, p.output())
	}
	if !strings.Contains(p.output(), "finished (End sent downstream)") {
		t.Fatalf("node %s exited 0 without finishing\n%s", p.name, p.output())
	}
}

// eventIDs reads the "id" attribute (envelope lines) or data.id of every
// line of a JSON lines file, sorted.
func eventIDs(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, line := range readLines(t, path) {
		var v struct {
			ID   any `json:"id"`
			Data struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		id := fmt.Sprint(v.ID)
		if v.Data.Event.ID != "" {
			id = v.Data.Event.ID
		}
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// TestNodeFanoutFaninE2E splits examples/fanout-fanin.yaml over one node
// per component on loopback and checks its output equals flowctl run's.
func TestNodeFanoutFaninE2E(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "fanout-fanin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "data", "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "events.jsonl"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	// flowctl run first, writing into run/.
	run := exec.Command(bin, "run", "-f", "p.yaml", "--state-dir", t.TempDir())
	run.Dir = dir
	run.Env = append(os.Environ(), "OUT_DIR="+filepath.Join(dir, "run"))
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("flowctl run: %v\n%s", err, out)
	}

	// Nodes, downstream first so that each upstream knows its peers.
	common := func(more ...string) []string {
		return append([]string{"-f", "p.yaml", "--listen", "127.0.0.1:0", "--state-dir", t.TempDir()}, more...)
	}
	failed := startNodeProc(t, bin, dir, "failed", true, common()...)
	dl := "failed=" + failed.addr
	review := startNodeProc(t, bin, dir, "review", true, common("--peer", dl)...)
	flag := startNodeProc(t, bin, dir, "flag", true, common("--peer", "review="+review.addr, "--peer", dl)...)
	negate := startNodeProc(t, bin, dir, "negate", true, common("--peer", "review="+review.addr, "--peer", dl)...)
	large := startNodeProc(t, bin, dir, "large", true, common("--peer", "flag="+flag.addr, "--peer", dl)...)
	refunds := startNodeProc(t, bin, dir, "refunds", true, common("--peer", "negate="+negate.addr, "--peer", dl)...)
	events := startNodeProc(t, bin, dir, "events", false, common("--peer", "large="+large.addr, "--peer", "refunds="+refunds.addr, "--peer", dl)...)
	for _, p := range []*nodeProc{events, large, refunds, flag, negate, review, failed} {
		p.wait(t)
	}
	for _, f := range []string{"review.jsonl", "failed.jsonl"} {
		want := eventIDs(t, filepath.Join(dir, "run", f))
		got := eventIDs(t, filepath.Join(dir, "out", f))
		if len(want) == 0 || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: nodes wrote %v, flowctl run %v", f, got, want)
		}
	}
}

// TestNodeKillProcessorE2E SIGKILLs the processor's node mid-run and
// starts it again on the same address: every event arrives, none is
// invented, and duplicates are at most what was redelivered.
func TestNodeKillProcessorE2E(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	const n = 12000
	pipeline := fmt.Sprintf(`name: killed
sources:
  - name: gen
    type: generate
    config: {count: %d, rate: 4000, batch_size: 100, expr: '{"id": i}'}
processors:
  - name: work
    type: map
    inputs: [gen]
    config: {set: {seen: "'yes'"}}
sinks:
  - name: out
    type: file
    inputs: [work]
    config: {path: out.jsonl}
`, n)
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(state string, more ...string) []string {
		return append([]string{"-f", "p.yaml", "--state-dir", state}, more...)
	}
	outState, workState, genState := t.TempDir(), t.TempDir(), t.TempDir()
	out := startNodeProc(t, bin, dir, "out", true, args(outState, "--listen", "127.0.0.1:0")...)
	work := startNodeProc(t, bin, dir, "work", true, args(workState, "--listen", "127.0.0.1:0", "--peer", "out="+out.addr)...)
	gen := startNodeProc(t, bin, dir, "gen", false, args(genState, "--peer", "work="+work.addr)...)

	// Wait until some events went through, then kill the processor.
	outFile := filepath.Join(dir, "out.jsonl")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := os.Stat(outFile); err == nil && st.Size() > 20_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no output within 30s\n%s\n%s", work.output(), gen.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := work.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-work.done
	before := len(readLines(t, outFile))
	if before >= n {
		t.Fatalf("the run finished (%d lines) before the kill; the kill tests nothing", before)
	}
	work2 := startNodeProc(t, bin, dir, "work", true, args(workState, "--listen", work.addr, "--peer", "out="+out.addr)...)
	gen.wait(t)
	work2.wait(t)
	out.wait(t)

	seen := map[string]int{}
	dups := 0
	for _, id := range eventIDs(t, outFile) {
		seen[id]++
		if seen[id] > 1 {
			dups++
		}
	}
	for i := range n {
		if seen[fmt.Sprint(i)] == 0 {
			t.Fatalf("id %d lost (killed after %d lines)", i, before)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct ids, want %d", len(seen), n)
	}
	m := regexp.MustCompile(`(\d+) redelivered \((\d+) events`).FindStringSubmatch(work2.output())
	if m == nil {
		t.Fatalf("no summary line in\n%s", work2.output())
	}
	var redelivered int
	fmt.Sscan(m[2], &redelivered)
	if dups > redelivered {
		t.Fatalf("%d duplicates, but only %d events were redelivered", dups, redelivered)
	}
	t.Logf("killed after %d lines; %d events redelivered to the new processor node, %d duplicates written", before, redelivered, dups)
}

// TestNodeRefusesPlaintext: a node refuses to listen in plaintext off
// loopback, before binding anything.
func TestNodeRefusesPlaintext(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`name: plain
sources:
  - name: gen
    type: generate
    config: {count: 1, data: {a: 1}}
sinks:
  - name: out
    type: stdout
    inputs: [gen]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"listen", []string{"--component", "out", "--listen", "0.0.0.0:0"}, "--listen 0.0.0.0:0"},
		{"peer", []string{"--component", "gen", "--peer", "out=out.example:7000"}, "--peer out=out.example:7000"},
		{"unknown component", []string{"--component", "nope"}, "no component of that name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"node", "-f", "p.yaml", "--state-dir", t.TempDir()}, c.args...)...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("output lacks %q:\n%s", c.want, out)
			}
			// A node that did not start drained nothing.
			if strings.Contains(string(out), "drained") {
				t.Fatalf("a node refused at start says it drained:\n%s", out)
			}
		})
	}
}

// TestNodeGCTarget checks that a node takes flowctl run's collector
// target (or the user's GOGC), and refuses a bad --memory-limit as run does.
func TestNodeGCTarget(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`name: gc
sources:
  - name: gen
    type: generate
    config: {count: 3, data: {a: 1}}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: out.jsonl}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ gogc, want string }{
		{"", `target="GC percent 400, memory limit 24MiB (flowctl's defaults)"`},
		{"100", `target="GC percent 100, memory limit none (from GOGC)"`},
	} {
		t.Run("GOGC="+c.gogc, func(t *testing.T) {
			t.Setenv("GOGC", c.gogc)
			t.Setenv("GOMEMLIMIT", "")
			common := []string{"-f", "p.yaml", "--log-level", "debug", "--state-dir", t.TempDir()}
			out := startNodeProc(t, bin, dir, "out", true, append(common, "--listen", "127.0.0.1:0")...)
			gen := startNodeProc(t, bin, dir, "gen", false, append(common, "--peer", "out="+out.addr)...)
			gen.wait(t)
			out.wait(t)
			for _, p := range []*nodeProc{gen, out} {
				if !strings.Contains(p.output(), c.want) {
					t.Errorf("node %s's log lacks %s:\n%s", p.name, c.want, p.output())
				}
			}
		})
	}
	cmd := exec.Command(bin, "node", "-f", "p.yaml", "--component", "out", "--state-dir", t.TempDir(), "--memory-limit", "lots")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `--memory-limit "lots": no number; write a size such as 64MiB`) {
		t.Errorf("--memory-limit lots: %v\n%s", err, out)
	}
}

// TestNodeCommandComponentE2E runs examples/python-stdio split over
// three nodes: the processor node starts the Python child itself.
func TestNodeCommandComponentE2E(t *testing.T) {
	bin := flowctlBinary(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed: the example's processor is a Python script")
	}
	dir := t.TempDir()
	for src, dst := range map[string]string{
		filepath.Join("..", "..", "examples", "python-stdio", "pipeline.yaml"): filepath.Join(dir, "py", "pipeline.yaml"),
		filepath.Join("..", "..", "examples", "python-stdio", "processor.py"):  filepath.Join(dir, "py", "processor.py"),
		filepath.Join("..", "..", "examples", "data", "events.jsonl"):          filepath.Join(dir, "data", "events.jsonl"),
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	py := filepath.Join(dir, "py")
	args := func(more ...string) []string {
		return append([]string{"-f", "pipeline.yaml", "--state-dir", t.TempDir()}, more...)
	}
	out := startNodeProc(t, bin, py, "out", true, args("--listen", "127.0.0.1:0")...)
	band := startNodeProc(t, bin, py, "band", true, args("--listen", "127.0.0.1:0", "--peer", "out="+out.addr)...)
	payments := startNodeProc(t, bin, py, "payments", false, args("--peer", "band="+band.addr)...)
	for _, p := range []*nodeProc{payments, band, out} {
		p.wait(t)
	}
	got := readLines(t, filepath.Join(py, "out", "banded.jsonl"))
	want := readLines(t, filepath.Join(dir, "data", "events.jsonl"))
	if len(got) != len(want) {
		t.Fatalf("%d events through the Python node, want %d", len(got), len(want))
	}
}

// TestNodeReplicasE2E runs a processor with replicas: 2 as two node
// processes behind one --peer list: both take batches, every event
// arrives once, and all four nodes end by themselves.
func TestNodeReplicasE2E(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	const n = 5000
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(fmt.Sprintf(`name: replicated
sources:
  - name: gen
    type: generate
    config: {count: %d, batch_size: 50, expr: '{"id": i}'}
processors:
  - name: work
    type: map
    replicas: 2
    inputs: [gen]
    config: {set: {seen: "'yes'"}}
sinks:
  - name: out
    type: file
    inputs: [work]
    config: {path: out.jsonl}
`, n)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(more ...string) []string {
		return append([]string{"-f", "p.yaml", "--state-dir", t.TempDir()}, more...)
	}
	out := startNodeProc(t, bin, dir, "out", true, args("--listen", "127.0.0.1:0")...)
	w1 := startNodeProc(t, bin, dir, "work", true, args("--listen", "127.0.0.1:0", "--peer", "out="+out.addr)...)
	w2 := startNodeProc(t, bin, dir, "work", true, args("--listen", "127.0.0.1:0", "--peer", "out="+out.addr)...)
	gen := startNodeProc(t, bin, dir, "gen", false, args("--peer", "work="+w1.addr+","+w2.addr)...)
	for _, p := range []*nodeProc{gen, w1, w2, out} {
		p.wait(t)
	}
	received := regexp.MustCompile(`from upstream nodes (\d+) batches`)
	for i, w := range []*nodeProc{w1, w2} {
		m := received.FindStringSubmatch(w.output())
		if m == nil || m[1] == "0" {
			t.Errorf("replica %d took no batch:\n%s", i+1, w.output())
		}
	}
	ids := eventIDs(t, filepath.Join(dir, "out.jsonl"))
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("id %s written twice", id)
		}
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct ids, want %d", len(seen), n)
	}
}

// waitLines polls a growing output file until it has more than min lines
// (bounded: 30 s).
func waitLines(t *testing.T, path string, min int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if data, err := os.ReadFile(path); err == nil && bytes.Count(data, []byte("\n")) > min {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %d lines within 30s", path, min)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNodeSIGTERME2E: SIGTERM drains a node (exit 0, no End); the next
// instance on the same address gets what it had not acknowledged; its
// /readyz and /metrics answer; an unbounded source's node stopped last
// leaves a gapless output.
func TestNodeSIGTERME2E(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`name: drained
sources:
  - name: gen
    type: generate
    config: {rate: 2000, batch_size: 20, expr: '{"id": i}'}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: out.jsonl}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	outState := t.TempDir()
	out := startNodeProc(t, bin, dir, "out", true, "-f", "p.yaml", "--state-dir", outState, "--listen", "127.0.0.1:0")
	gen := startNodeProc(t, bin, dir, "gen", false, "-f", "p.yaml", "--state-dir", t.TempDir(), "--peer", "out="+out.addr)
	outFile := filepath.Join(dir, "out.jsonl")
	waitLines(t, outFile, 200)
	if err := out.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-out.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("out did not drain within 30s\n%s", out.output())
	}
	if out.err != nil || !strings.Contains(out.output(), "stopped (drained; no End sent)") {
		t.Fatalf("SIGTERM: %v\n%s", out.err, out.output())
	}
	before := len(readLines(t, outFile))

	httpLine := regexp.MustCompile(`serving http on (\S+)`)
	out2 := startNodeProc(t, bin, dir, "out", true, "-f", "p.yaml", "--state-dir", outState, "--listen", out.addr, "--http", "127.0.0.1:0")
	m := httpLine.FindStringSubmatch(out2.output())
	if m == nil {
		t.Fatalf("no http line:\n%s", out2.output())
	}
	waitLines(t, outFile, before+200)
	for path, want := range map[string]string{"/readyz": "ready", "/healthz": "ok", "/metrics": "flowctl_node_received_batches_total"} {
		resp, err := http.Get("http://" + m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %.200s, want 200 with %q", path, resp.StatusCode, body, want)
		}
	}

	// Stop the source first (it drains into out2), then out2.
	for _, p := range []*nodeProc{gen, out2} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not drain within 30s\n%s", p.name, p.output())
		}
		if p.err != nil {
			t.Fatalf("%s: %v\n%s", p.name, p.err, p.output())
		}
	}
	seen := map[string]bool{}
	for _, id := range eventIDs(t, outFile) {
		seen[id] = true
	}
	for i := range len(seen) {
		if !seen[fmt.Sprint(i)] {
			t.Fatalf("id %d missing among %d ids (stopped after %d lines)", i, len(seen), before)
		}
	}
	t.Logf("%d lines before SIGTERM, %d distinct ids in all", before, len(seen))
}
