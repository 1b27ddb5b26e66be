package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upperProcessor is a stdio processor that adds a field to each event.
const upperProcessor = `import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    data = msg["event"].get("data") or {}
    data["seen"] = True
    sys.stdout.write(json.dumps({"seq": msg["seq"], "data": data, "done": True}) + "\n")
    sys.stdout.flush()
`

// TestTapRun drives `flowctl tap` against a real `flowctl run` through the
// run's own socket: the edges into and out of an external stdio
// component, filters, limits, the whole pipeline, and the errors.
func TestTapRun(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed (.ci/run installs it):", err)
	}
	isolateClientConfig(t)
	bin := flowctlBinary(t)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "upper.py"), upperProcessor)
	pf := filepath.Join(dir, "tapdemo.yaml")
	writeFileAt(t, pf, `name: tapdemo
sources:
  - name: gen
    type: generate
    config: {rate: 200, expr: '{"n": i, "big": i % 2 == 0}'}
processors:
  - name: upper
    command: [python3, upper.py]
    protocol: stdio
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [upper]
    config: {path: out.jsonl}
`)
	sock := filepath.Join(os.Getenv("XDG_STATE_HOME"), "flowctl", "runs", "tapdemo.sock")
	cmd := exec.Command(bin, "run", "-f", pf, "--state-dir", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("the run left its socket %s behind", sock)
		}
	}()
	waitFor(t, 30*time.Second, "the run's socket "+sock, func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode: %v %v, want 0700", fi.Mode(), err)
	}

	type tapped struct {
		Point string         `json:"point"`
		ID    string         `json:"id"`
		Data  map[string]any `json:"data"`
	}
	tapJSON := func(args ...string) []tapped {
		t.Helper()
		code, out, errb := runFlowctl(t, "", append([]string{"tap"}, args...)...)
		if code != 0 {
			t.Fatalf("tap %v: exit %d\n%s%s\nrun's stderr:\n%s", args, code, out, errb, stderr.String())
		}
		var evs []tapped
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev tapped
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("tap %v: %v: %q", args, err, l)
			}
			evs = append(evs, ev)
		}
		return evs
	}

	// Into the external component, and out of it: its answer is there.
	in := tapJSON("tapdemo/upper:in", "--limit", "5", "-o", "json")
	if len(in) != 5 {
		t.Fatalf("tap upper:in --limit 5 gave %d events", len(in))
	}
	for _, ev := range in {
		if ev.Point != "upper:in" || ev.ID == "" || ev.Data["seen"] != nil || ev.Data["n"] == nil {
			t.Errorf("upper:in event: %+v", ev)
		}
	}
	out := tapJSON("tapdemo/upper", "--limit", "3", "-o", "json")
	for _, ev := range out {
		if ev.Point != "upper:out" || ev.Data["seen"] != true {
			t.Errorf("upper:out event: %+v", ev)
		}
	}
	// --where over the data.
	for _, ev := range tapJSON("tapdemo/out:in", "--where", "data.big", "--limit", "4", "-o", "json") {
		if ev.Point != "out:in" || ev.Data["big"] != true {
			t.Errorf("out:in --where data.big: %+v", ev)
		}
	}
	// The pipeline as a whole: every source's and processor's output.
	seen := map[string]bool{}
	for _, ev := range tapJSON("tapdemo", "--limit", "40", "-o", "json") {
		seen[ev.Point] = true
	}
	if !seen["gen:out"] || !seen["upper:out"] || len(seen) != 2 {
		t.Errorf("tap tapdemo watched %v, want gen:out and upper:out", seen)
	}
	// Text output: point, id and the data.
	code, text, errb := runFlowctl(t, "", "tap", "tapdemo/gen", "--limit", "2")
	if code != 0 || strings.Count(text, "\n") != 2 || !strings.HasPrefix(text, "gen:out  ") || !strings.Contains(text, `"n":`) ||
		!strings.Contains(errb, "flowctl tap: watching gen:out") {
		t.Errorf("tap text: exit %d\n%s%s", code, text, errb)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tapdemo/nosuch"}, `no component "nosuch" in the pipeline: its components are gen, out, upper`},
		{[]string{"tapdemo/gen:in"}, `source "gen" has no input`},
		{[]string{"tapdemo/out:out"}, `sink "out" has no output: tap out:in`},
		{[]string{"tapdemo/gen", "--where", "data.n +"}, "--where"},
		{[]string{"tapdemo/gen", "--socket", filepath.Join(dir, "none.sock")}, "tap tapdemo:"},
	} {
		code, _, errb := runFlowctl(t, "", append([]string{"tap"}, tc.args...)...)
		if code == 0 || !strings.Contains(errb, tc.want) {
			t.Errorf("tap %v: exit %d, want an error with %q:\n%s", tc.args, code, tc.want, errb)
		}
	}
}

// TestTapEndsWithTheRun: a tap of a pipeline whose run ends by itself (a
// counted generator) ends too, with exit 0 and a line saying why, after
// every event it was handed; it is not cut off mid-stream ("unexpected
// EOF", exit 1), and it does not hold the run's exit up.
func TestTapEndsWithTheRun(t *testing.T) {
	isolateClientConfig(t)
	bin := flowctlBinary(t)
	dir := t.TempDir()
	pf := filepath.Join(dir, "tapend.yaml")
	writeFileAt(t, pf, `name: tapend
sources:
  - name: gen
    type: generate
    config: {count: 100, rate: 25, expr: '{"n": i}'}
sinks:
  - name: out
    type: drop
    inputs: [gen]
`)
	sock := filepath.Join(os.Getenv("XDG_STATE_HOME"), "flowctl", "runs", "tapend.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, bin, "run", "-f", pf, "--state-dir", t.TempDir())
	var runErr bytes.Buffer
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer run.Wait()
	waitFor(t, 30*time.Second, "the run's socket "+sock, func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	tapCmd := exec.CommandContext(ctx, bin, "tap", "tapend/gen", "-o", "json")
	var out, errb bytes.Buffer
	tapCmd.Stdout, tapCmd.Stderr = &out, &errb
	tapErr := tapCmd.Run()
	if tapErr != nil || !strings.Contains(errb.String(), `flowctl tap: the run of pipeline "tapend" ended`) {
		t.Errorf("tap of a run that ends: %v, want exit 0 and a line saying the run ended\nstderr:\n%s", tapErr, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last struct {
		Data struct{ N int } `json:"data"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Data.N != 99 {
		t.Errorf("the tap's last event is %q (%v), want the generator's last, n 99", lines[len(lines)-1], err)
	}
	if err := run.Wait(); err != nil {
		t.Errorf("run: %v\n%s", err, runErr.String())
	}
}
