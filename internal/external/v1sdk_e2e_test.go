//go:build linux

package external

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildTestModule builds test/<name>, a separate module written against
// our flowctl.v1 protobufs only (see buildV1Component).
func buildTestModule(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(repoRoot(t), "test", name)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test/%s: %v\n%s", name, err, out)
	}
	return bin
}

// buildFlowctl builds the flowctl binary.
func buildFlowctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flowctl")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/flowctl")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build flowctl: %v\n%s", err, out)
	}
	return bin
}

// v1sdkCase is one run of generate → test/v1sdkproc → file.
type v1sdkCase struct {
	name  string
	count int
	rate  int // events per second; 0: full speed
	kills int // SIGKILLs of the processor while the run goes on
}

// TestV1SDKProcessorInPipeline is issue #10's done-when test: a processor
// that behaves like the earlier SDK's (answers from per-input goroutines,
// out of order; filters some inputs; returns at end of input without
// waiting) loses nothing through the real flowctl binary, at full speed,
// paced, and when it is SIGKILLed mid-run. Every event not filtered must
// reach the sink exactly once (by id) and no filtered one may.
func TestV1SDKProcessorInPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flowctl and test/v1sdkproc and runs them")
	}
	sdkproc := buildTestModule(t, "v1sdkproc")
	flowctl := buildFlowctl(t)
	cases := []v1sdkCase{
		{name: "2000 at 200 per second", count: 2000, rate: 200},
		{name: "2000 at 200 per second, 5 SIGKILLs", count: 2000, rate: 200, kills: 5},
		{name: "100000 at full speed", count: 100000},
		{name: "100000 at full speed, 5 SIGKILLs", count: 100000, kills: 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runV1SDKCase(t, flowctl, sdkproc, c)
		})
	}
}

func runV1SDKCase(t *testing.T, flowctl, sdkproc string, c v1sdkCase) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	pidFile := filepath.Join(dir, "sdkproc.pid")
	file := filepath.Join(dir, "pipeline.yaml")
	pipeline := fmt.Sprintf(`name: v1sdk
sources:
  - name: gen
    type: generate
    config:
      count: %d
      rate: %d
      expr: '{"n": i, "drop": i %% 10 == 3}'
processors:
  - name: sdk
    command: [%q]
    protocol: flowctl-v1
    inputs: [gen]
    env: {V1SDK_PID_FILE: %q, V1SDK_MAX_DELAY: 2ms}
    # Generous: the race detector on a loaded machine once held an answer
    # past the default 10 s, which fails that event; exactness is tested.
    config: {v1_answer_timeout: 60s}
sinks:
  - name: out
    type: file
    inputs: [sdk]
    config: {path: %q, format: envelope}
`, c.count, c.rate, sdkproc, pidFile, out)
	if err := os.WriteFile(file, []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	cmd := exec.Command(flowctl, "run", "-f", file, "--state-dir", t.TempDir())
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &logs, &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // no-op once it exited
		<-waited
	})

	killed, runErr, ended := killV1SDK(t, c.kills, pidFile, out, exited)
	if !ended {
		select {
		case runErr = <-exited:
		case <-time.After(3 * time.Minute):
			t.Fatalf("flowctl run did not finish within 3 minutes\n%s", logs.String())
		}
	}
	took := time.Since(start)
	if runErr != nil {
		t.Fatalf("flowctl run: %v\n%s", runErr, logs.String())
	}
	if killed < c.kills {
		t.Fatalf("killed the processor %d times, want %d (the run ended first)\n%s", killed, c.kills, logs.String())
	}
	seen := readV1SDKOutput(t, out)
	var missing, dup []int
	for i := range c.count {
		n := seen[i]
		switch {
		case i%10 == 3 && n != 0:
			t.Errorf("filtered event gen:%d reached the sink %d times", i, n)
		case i%10 != 3 && n == 0:
			missing = append(missing, i)
		case n > 1:
			dup = append(dup, i)
		}
	}
	summary := summaryLines(logs.String())
	t.Logf("%d events, %d kills, took %v; summary:\n%s", c.count, killed, took.Round(time.Millisecond), summary)
	// Without kills nothing may be lost. With kills, an input settled
	// without an answer (the SDK answers from goroutines, so on a loaded
	// machine an answer can come after one for a later input, which
	// settles it) whose late answer died with the process is lost: the
	// documented at-most-once case of flowctl.v1 (docs/protocols-v1.md).
	// Those are inputs in flight at a kill, so at most a few batches per
	// kill; anything beyond that is a bug.
	allowed := c.kills * 256
	if len(missing) > allowed || (c.kills == 0 && len(missing) > 0) {
		t.Errorf("%d events lost (allowed %d), first %v\n%s", len(missing), allowed, missing[:min(10, len(missing))], logs.String())
	} else if len(missing) > 0 {
		t.Logf("%d events lost around %d kills: inputs settled without an answer whose late answer died with the processor (at-most-once, docs/protocols-v1.md); first %v", len(missing), killed, missing[:min(10, len(missing))])
	}
	if len(dup) > 0 {
		t.Errorf("%d events written more than once, first %v", len(dup), dup[:min(10, len(dup))])
	}
	if !strings.Contains(summary, "flowctl.v1 processor") {
		t.Errorf("the run summary has no flowctl.v1 processor table:\n%s", summary)
	}
}

// killV1SDK SIGKILLs the processor kills times: each time it waits until
// a new incarnation wrote its pid and the sink grew since the previous
// kill (so every kill hits a processor with work in flight). It returns
// how many kills it made, and the run's result if it ended meanwhile.
func killV1SDK(t *testing.T, kills int, pidFile, out string, exited <-chan error) (n int, runErr error, ended bool) {
	t.Helper()
	last := 0
	grown := int64(0)
	deadline := time.Now().Add(2 * time.Minute)
	for k := 0; k < kills; k++ {
		pid := 0
		for tries := 0; ; tries++ {
			if time.Now().After(deadline) {
				t.Fatalf("no new processor incarnation to kill after %d kills", k)
			}
			select {
			case err := <-exited:
				return k, err, true
			default:
			}
			b, _ := os.ReadFile(pidFile)
			p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			fi, _ := os.Stat(out)
			size := int64(0)
			if fi != nil {
				size = fi.Size()
			}
			if p != 0 && p != last && size > grown+2000 {
				pid, grown = p, size
				break
			}
			time.Sleep(20 * time.Millisecond) // polling a file: no event to wait on
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", pid, err)
		}
		last = pid
	}
	return kills, nil, false
}

// readV1SDKOutput counts the sink's events by generator index, checking
// each is the processor's output.
func readV1SDKOutput(t *testing.T, path string) map[int]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			ID   string
			Type string
			Data struct {
				N   int
				SDK bool
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		if !ev.Data.SDK || !strings.HasPrefix(ev.Type, "sdk.") || ev.ID != fmt.Sprint("gen:", ev.Data.N) {
			t.Fatalf("unexpected output %s", sc.Bytes())
		}
		seen[ev.Data.N]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}

// summaryLines returns the run summary from flowctl's output.
func summaryLines(logs string) string {
	if i := strings.Index(logs, "pipeline \"v1sdk\""); i >= 0 {
		return logs[i:]
	}
	return logs
}
