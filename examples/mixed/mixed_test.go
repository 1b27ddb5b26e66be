// Package mixed holds the tests of the mixed example: built-ins, the Go
// SDK processor over gRPC and the Python stdio processor in one pipeline.
package mixed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// repoRoot is two directories up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var builds struct {
	mu  sync.Mutex
	dir string
	bin map[string]string
}

// buildBin compiles the package pkg (relative to the repository root) once
// per test binary and returns the binary's path.
func buildBin(t *testing.T, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if p, ok := builds.bin[pkg]; ok {
		return p
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "flowctl-mixed")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir, builds.bin = dir, map[string]string{}
	}
	out := filepath.Join(builds.dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatal(&buildError{pkg, string(b)})
	}
	builds.bin[pkg] = out
	return out
}

// needPython skips a test when python3 is not on PATH.
func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not on PATH: the mixed example needs it for its stdio processor")
	}
}

// build returns the flowctl binary and the Go SDK processor.
func build(t *testing.T) (flowctl, sdkProcessor string) {
	t.Helper()
	needPython(t)
	return buildBin(t, "./cmd/flowctl"), buildBin(t, "./examples/sdk-processor")
}

type buildError struct{ pkg, out string }

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	os.Exit(code)
}

// checkOutput reads the sink's file and checks every id 0..n-1 is there,
// transformed by both processors and the built-in; it returns how many
// lines repeat an id.
func checkOutput(t *testing.T, path string, n int) (dups int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make([]int, n)
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		lines++
		var v struct {
			ID        *int     `json:"id"`
			AmountUSD *float64 `json:"amount_usd"`
			Band      string   `json:"band"`
			Large     *bool    `json:"large"`
			Kind      string   `json:"kind"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil || v.ID == nil || *v.ID < 0 || *v.ID >= n {
			t.Fatalf("line %d: %s (%v)", lines, sc.Text(), err)
		}
		if v.AmountUSD == nil || v.Band == "" || v.Large == nil || strings.ToUpper(v.Kind) != v.Kind {
			t.Fatalf("line %d was not through every processor: %s", lines, sc.Text())
		}
		seen[*v.ID]++
	}
	missing := 0
	for id, c := range seen {
		switch {
		case c == 0:
			if missing < 5 {
				t.Errorf("event %d never reached the sink", id)
			}
			missing++
		case c > 1:
			dups += c - 1
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d events lost", missing, n)
	}
	return dups
}

// TestMixedExample runs examples/mixed/pipeline.yaml with the real binary.
func TestMixedExample(t *testing.T) {
	flowctl, sdk := build(t)
	out := t.TempDir()
	cmd := exec.Command(flowctl, "run", "-f", "pipeline.yaml")
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir(), "COUNT=20000", "SDK_PROCESSOR="+sdk, "OUT_DIR="+out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("flowctl run: %v\n%s", err, stderr.String())
	}
	if dups := checkOutput(t, filepath.Join(out, "mixed.jsonl"), 20000); dups != 0 {
		t.Errorf("%d duplicates without a crash", dups)
	}
	for _, want := range []string{
		`pipeline "mixed" finished`, "20000 events in, 20000 written",
		"external  restarts", "band      0 ", "usd       0 ",
		"band | processor.py: end of input, exiting",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestCrashRedelivery is the crash test: 100,000 events through
// the Go SDK processor and the Python stdio processor; each is SIGKILLed
// three times, each time while at least two batches are unanswered there.
// Every event must reach the sink, and the redelivered events (which the
// killed component may have handled twice) are counted and reported.
func TestCrashRedelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 100,000 events and six kills")
	}
	needPython(t)
	sdk := buildBin(t, "./examples/sdk-processor")
	const n = 100_000
	out := t.TempDir()
	// RATE paces the source so the six kills and restarts happen mid-run.
	env := map[string]string{"COUNT": "100000", "RATE": "25000", "SDK_PROCESSOR": sdk, "OUT_DIR": out}
	reg := components.NewRegistry()
	p, diags, err := spec.Load("pipeline.yaml", spec.Options{Registry: reg, LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	if err != nil || diags.HasErrors() {
		t.Fatal(err, diags)
	}
	var logBuf syncBuffer
	mgr, err := external.NewManager(p, external.ManagerOptions{Dir: filepath.Dir(p.File), Output: &logBuf})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close(context.Background())
	e, err := engine.New(p, reg, engine.Options{External: func(c *spec.Component, _ flow.BuildContext) (any, error) {
		return mgr.Build(c)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run(ctx) }()

	// The killer: alternately, for each external processor, wait for a new
	// incarnation with >= 2 batches in flight and SIGKILL it.
	kills := map[string]int{}
	lastPID := map[string]int{}
	for round := 0; round < 3; round++ {
		for _, name := range []string{"usd", "band"} {
			s := mgr.Supervisor(name)
			deadline := time.Now().Add(20 * time.Second)
			for {
				pid, inflight := s.PID(), s.InFlight()
				if pid != 0 && pid != lastPID[name] && inflight >= 2 {
					if err := killPID(pid); err != nil {
						t.Fatalf("kill %s (%d): %v", name, pid, err)
					}
					t.Logf("killed %s pid %d with %d batches in flight", name, pid, inflight)
					kills[name]++
					lastPID[name] = pid
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s never had 2 batches in flight on a new incarnation (pid %d, in flight %d, killed %d times)", name, pid, inflight, kills[name])
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
	}
	if err := <-runErr; err != nil {
		t.Fatalf("run: %v\n%s", err, logBuf.String())
	}
	if err := mgr.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}

	checkOutput(t, filepath.Join(out, "mixed.jsonl"), n)
	var summary bytes.Buffer
	external.WriteSummary(&summary, mgr.Stats())
	t.Logf("summary:\n%s", summary.String())
	for _, st := range mgr.Stats() {
		if st.Restarts != 3 || st.RedeliveredBatches < 2 || st.RedeliveredEvents <= 0 {
			t.Errorf("%s: %+v; want 3 restarts and redelivered batches", st.Name, st.Stats)
		}
		if !strings.Contains(summary.String(), st.Name) {
			t.Errorf("summary lacks %s", st.Name)
		}
	}
	for _, c := range e.Stats().Components {
		if c.Dropped+c.DeadLettered+c.Errors > 0 {
			t.Errorf("%s: %d dropped, %d dead-lettered, %d errors", c.Name, c.Dropped, c.DeadLettered, c.Errors)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// children returns the pids of ppid's children whose command line contains
// match.
func children(ppid int, match string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(ppid) || f[0] == "Z" {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if bytes.Contains(cmdline, []byte(match)) {
			out = append(out, pid)
		}
	}
	return out
}

// TestCrashRealBinary kills each external processor of a running flowctl
// binary once, from outside, and checks that nothing is lost and that the
// run summary reports the restarts and redeliveries.
func TestCrashRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	flowctl, sdk := build(t)
	const n = 50_000
	out := t.TempDir()
	cmd := exec.Command(flowctl, "run", "-f", "pipeline.yaml")
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir(), "COUNT="+strconv.Itoa(n), "RATE=20000", "SDK_PROCESSOR="+sdk, "OUT_DIR="+out)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for _, match := range []string{"sdk-processor", "processor.py"} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if pids := children(cmd.Process.Pid, match); len(pids) == 1 && strings.Contains(stderr.String(), "component started") {
				time.Sleep(300 * time.Millisecond) // events are flowing by now
				killPID(pids[0])
				t.Logf("killed %s (pid %d)", match, pids[0])
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s child of flowctl\n%s", match, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("flowctl run: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("flowctl run did not end\n%s", stderr.String())
	}
	checkOutput(t, filepath.Join(out, "mixed.jsonl"), n)
	summary := stderr.String()
	summary = summary[strings.Index(summary, "  external"):]
	t.Logf("summary:\n%s", summary)
	for _, name := range []string{"band", "usd"} {
		var restarts, batches, events int
		for _, l := range strings.Split(summary, "\n") {
			f := strings.Fields(l)
			if len(f) == 4 && f[0] == name {
				restarts, _ = strconv.Atoi(f[1])
				batches, _ = strconv.Atoi(f[2])
				events, _ = strconv.Atoi(f[3])
			}
		}
		if restarts != 1 {
			t.Errorf("%s: %d restarts in the summary, want 1", name, restarts)
		}
		t.Logf("%s: %d batches, %d events redelivered", name, batches, events)
	}
}

// TestCrashLoopFailsRun: a component that always dies fails the run with
// one clear message naming it, its last exit status and its last stderr
// lines.
func TestCrashLoopFailsRun(t *testing.T) {
	flowctl := buildBin(t, "./cmd/flowctl")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte("{\"n\":1}\n{\"n\":2}\n"), 0o644)
	pipeline := `
name: crashy
sources: [{name: in, type: file, config: {path: in.jsonl}}]
processors:
  - name: broken
    command: [sh, -c, "echo cannot open the model file >&2; exit 3"]
    protocol: stdio
    inputs: [in]
sinks: [{name: out, type: drop, inputs: [broken]}]
`
	os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(pipeline), 0o644)
	cmd := exec.Command(flowctl, "run", "-f", filepath.Join(dir, "pipeline.yaml"))
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{
		`flowctl run: pipeline "crashy" failed: processor "broken": component "broken" crashed 6 times within 30s (last: exit status 3): component keeps crashing; fix it and run again; its last stderr lines:`,
		"its last stderr lines:\n    cannot open the model file\n",
		"broken | cannot open the model file",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// killPID kills the process pid at once (SIGKILL on Unix).
func killPID(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
