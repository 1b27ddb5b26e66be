package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRecordE2E drives `flowctl test --record` through the binary against
// a real `flowctl run`: 20 events leaving a processor are recorded as a
// fixture of its output, --full keeps the attributes, the fixture works
// as a test's input, and without a live run the error says how to start
// one.
func TestRecordE2E(t *testing.T) {
	isolateClientConfig(t)
	bin := flowctlBinary(t)
	dir := t.TempDir()
	pf := filepath.Join(dir, "recdemo.yaml")
	writeFileAt(t, pf, `name: recdemo
sources:
  - name: gen
    type: generate
    config: {rate: 200, expr: '{"n": i}'}
processors:
  - name: double
    type: map
    inputs: [gen]
    config: {set: {doubled: "data.n * 2"}}
sinks:
  - name: out
    type: file
    inputs: [double]
    config: {path: out.jsonl}
`)
	record := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"test", "--record"}, args...)...)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}

	t.Run("no live run", func(t *testing.T) {
		_, errOut, code := record("double", "-f", pf, "--timeout", "5s")
		if code == 0 || !strings.Contains(errOut, `no `+"`flowctl run`"+` of pipeline "recdemo" is live`) || !strings.Contains(errOut, "flowctl run -f "+pf) {
			t.Fatalf("exit %d:\n%s", code, errOut)
		}
	})

	sock := filepath.Join(os.Getenv("XDG_STATE_HOME"), "flowctl", "runs", "recdemo.sock")
	if os.Getenv("XDG_STATE_HOME") == "" {
		t.Fatal("XDG_STATE_HOME is not set by the test main: the run's socket would be shared")
	}
	run := exec.Command(bin, "run", "-f", pf, "--state-dir", t.TempDir())
	var runErr bytes.Buffer
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		run.Process.Signal(syscall.SIGINT)
		run.Wait()
	}()
	waitFor(t, 30*time.Second, "the run's socket "+sock, func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})

	fixture := filepath.Join(dir, "doubled.jsonl")
	t.Run("record a processor's output", func(t *testing.T) {
		_, errOut, code := record("double", "-f", pf, "--limit", "20", "--timeout", "30s", "-o", fixture)
		if code != 0 {
			t.Fatalf("exit %d:\n%s\nrun:\n%s", code, errOut, runErr.String())
		}
		if !strings.Contains(errOut, `recorded 20 events crossing double:out of pipeline "recdemo" into `+fixture) {
			t.Errorf("stderr lacks the summary:\n%s", errOut)
		}
		data, err := os.ReadFile(fixture)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) != 20 {
			t.Fatalf("%d lines, want 20:\n%s", len(lines), data)
		}
		for i, l := range lines {
			var v struct{ N, Doubled *int }
			if err := json.Unmarshal([]byte(l), &v); err != nil || v.N == nil || v.Doubled == nil || *v.Doubled != 2**v.N {
				t.Fatalf("line %d is not the processor's output {n, doubled: 2n}: %s (%v)", i+1, l, err)
			}
		}
	})
	t.Run("full events to stdout", func(t *testing.T) {
		out, errOut, code := record("double", "-f", pf, "-limit", "3", "--full")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d lines, want 3:\n%s", len(lines), out)
		}
		var ev struct {
			ID, Type string
			Data     map[string]any
		}
		if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil || ev.ID == "" || ev.Type == "" || ev.Data["doubled"] == nil {
			t.Fatalf("not a full event: %s (%v)", lines[0], err)
		}
	})
	t.Run("the fixture is a test's input", func(t *testing.T) {
		writeFileAt(t, filepath.Join(dir, "recdemo_test.yaml"), `tests:
  - name: recorded events go through again
    inputs:
      gen: {file: doubled.jsonl}
    expect:
      out:
        count: 20
        where: ["data.doubled == data.n * 2"]
`)
		out, code := runFlowctlTest(t, dir, "recdemo_test.yaml")
		if code != 0 || !strings.Contains(out, "ok  \trecdemo_test.yaml") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
}
