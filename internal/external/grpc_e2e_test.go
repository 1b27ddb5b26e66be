package external

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGRPCPipelineSurvivesSIGKILL runs generate → examples/sdk-processor
// (protocol grpc) → file through the real flowctl binary, SIGKILLs the
// processor while events flow, and checks that every event still reaches
// the sink (duplicates allowed: redelivery is at-least-once).
func TestGRPCPipelineSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flowctl and examples/sdk-processor")
	}
	dir := t.TempDir()
	proc := buildSDKProcessor(t, dir)
	flowctl := filepath.Join(dir, "flowctl")
	build := exec.Command("go", "build", "-o", flowctl, "./cmd/flowctl")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build flowctl: %v\n%s", err, out)
	}
	const count = 30000
	out := filepath.Join(dir, "out.jsonl")
	pipeline := `name: grpc-kill
sources:
  - name: gen
    type: generate
    config:
      count: 30000
      rate: 10000
      expr: '{"id": i, "amount": (i * 7919) % 10000, "kind": "fee"}'
processors:
  - name: usd
    command: [` + strconv.Quote(proc) + `]
    protocol: grpc
    parallelism: 2
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [usd]
    config: {path: ` + strconv.Quote(out) + `}
`
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(flowctl, "run", "-f", file, "--state-dir", t.TempDir())
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidRE := regexp.MustCompile(`component started.*component=usd pid=(\d+)`)
	var (
		mu     sync.Mutex
		logs   strings.Builder
		killed bool
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			logs.WriteString(line + "\n")
			first := !killed
			mu.Unlock()
			if m := pidRE.FindStringSubmatch(line); m != nil && first {
				pid, _ := strconv.Atoi(m[1])
				mu.Lock()
				killed = true
				mu.Unlock()
				go func() {
					time.Sleep(time.Second) // events are flowing by then
					if p, err := os.FindProcess(pid); err == nil {
						p.Kill()
					}
				}()
			}
		}
	}()
	<-done
	err = cmd.Wait()
	mu.Lock()
	text := logs.String()
	mu.Unlock()
	if err != nil {
		t.Fatalf("flowctl run: %v\n%s", err, text)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make([]int, count)
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			ID   int
			Kind string
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.ID < 0 || ev.ID >= count || ev.Kind != "FEE" {
			t.Fatalf("bad output %s (%v)", sc.Bytes(), err)
		}
		seen[ev.ID]++
		lines++
	}
	for id, n := range seen {
		if n == 0 {
			t.Fatalf("event %d never reached the sink (%d lines)\n%s", id, lines, text)
		}
	}
	if !strings.Contains(text, "incarnation=2") {
		t.Fatalf("the processor was not restarted after SIGKILL:\n%s", text)
	}
	t.Logf("%d events, %d lines written (%d duplicates)", count, lines, lines-count)
}
