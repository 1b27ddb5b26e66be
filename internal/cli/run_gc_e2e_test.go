package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestRunGCTargetE2E runs the real binary on W1 (filter, map) with
// GODEBUG=gctrace=1: flowctl's default target collects fewer times than Go's
// (GOGC=100 in the environment, which flowctl must keep), says which is in
// force at --log-level debug, and the output is the same.
func TestRunGCTargetE2E(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	const n = 200000
	writeEvents(t, in, n)
	pf := filepath.Join(dir, "w1.yaml")
	pipeline := `name: w1
sources:
  - {name: ledger, type: file, config: {path: in.jsonl}}
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}
  - name: usd
    type: map
    inputs: [large]
    config: {set: {amount_usd: "double(data.amount) / 100.0", kind: "data.kind.upperAscii()"}}
sinks:
  - {name: out, type: file, inputs: [usd], config: {path: OUT}}
`
	run := func(out string, env ...string) (gcs int, stderr string) {
		t.Helper()
		if err := os.WriteFile(pf, []byte(strings.Replace(pipeline, "OUT", out, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "-f", pf, "--state-dir", t.TempDir(), "--log-level", "debug")
		cmd.Env = append(os.Environ(), "GOGC=", "GOMEMLIMIT=", "GODEBUG=gctrace=1")
		cmd.Env = append(cmd.Env, env...)
		var se strings.Builder
		cmd.Stderr = &se
		if err := cmd.Run(); err != nil {
			t.Fatalf("flowctl run %v: %v\n%s", env, err, tail(se.String()))
		}
		for _, l := range strings.Split(se.String(), "\n") {
			if strings.HasPrefix(l, "gc ") {
				gcs++
			}
		}
		return gcs, se.String()
	}
	defGCs, defErr := run("def.jsonl")
	goGCs, goErr := run("go.jsonl", "GOGC=100")
	if want := `target="GC percent 400, memory limit 24MiB (flowctl's defaults)"`; !strings.Contains(defErr, want) {
		t.Errorf("default run's log lacks %s:\n%s", want, tail(defErr))
	}
	if want := `target="GC percent 100, memory limit none (from GOGC)"`; !strings.Contains(goErr, want) {
		t.Errorf("GOGC=100 run's log lacks %s:\n%s", want, tail(goErr))
	}
	t.Logf("collections for %d events: %d with flowctl's target, %d with GOGC=100", n, defGCs, goGCs)
	if goGCs == 0 || defGCs*4 > goGCs*3 {
		t.Errorf("collections: %d with flowctl's target, %d with GOGC=100; want at most 3/4", defGCs, goGCs)
	}
	a, b := readLines(t, filepath.Join(dir, "def.jsonl")), readLines(t, filepath.Join(dir, "go.jsonl"))
	if len(a) != n/2 || len(a) != len(b) {
		t.Fatalf("outputs: %d and %d lines, want %d", len(a), len(b), n/2)
	}
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("line %d differs:\n%s\n%s", i, a[i], b[i])
		}
	}

	// A bad --memory-limit is refused with what to write instead.
	out, err := exec.Command(bin, "run", "-f", pf, "--state-dir", t.TempDir(), "--memory-limit", "lots").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `--memory-limit "lots": no number; write a size such as 64MiB`) {
		t.Errorf("--memory-limit lots: %v\n%s", err, out)
	}
}

// tail is the last 2,000 bytes of s, for failure messages.
func tail(s string) string {
	if len(s) > 2000 {
		return fmt.Sprintf("...%s", s[len(s)-2000:])
	}
	return s
}
