package cli

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shoutProcessor is a stdio processor that passes events on and says so
// on its stderr, which the run captures as the component's output.
const shoutProcessor = `import json, sys
n = 0
for line in sys.stdin:
    msg = json.loads(line)
    n += 1
    sys.stderr.write("shout saw event %d\n" % n)
    sys.stderr.flush()
    sys.stdout.write(json.dumps({"seq": msg["seq"], "data": msg["event"].get("data"), "done": True}) + "\n")
    sys.stdout.flush()
`

func logsPipeline(withShout bool) string {
	s := `name: logsdemo
sources:
  - name: gen
    type: generate
    config: {rate: 40, data: {kind: ping}}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: out.jsonl, append: true}
`
	if withShout {
		s += `  - name: loud
    type: file
    inputs: [shout]
    config: {path: loud.jsonl}
processors:
  - name: shout
    command: [python3, shout.py]
    protocol: stdio
    inputs: [gen]
`
	}
	return s
}

// TestLogsOfComponentAddedInPlace: a component added by an in-place apply
// gets its own lines under `flowctl logs NAME/COMPONENT` (its stderr,
// attributed from the run's JSON records, not guessed from text), with
// --level and -o json; an unknown component is an error naming the ones
// that exist.
func TestLogsOfComponentAddedInPlace(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed (.ci/run installs it):", err)
	}
	isolateClientConfig(t)
	addr := startServer(t)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "shout.py"), shoutProcessor)
	file := filepath.Join(dir, "logsdemo.yaml")
	writeFileAt(t, file, logsPipeline(false))
	if code, out, errb := runFlowctl(t, "", "apply", "-f", file, "--wait", "--timeout", "30s", "--server", addr); code != 0 {
		t.Fatalf("apply: %s%s", out, errb)
	}
	writeFileAt(t, file, logsPipeline(true))
	code, stdout, stderr := runFlowctl(t, "", "apply", "-f", file, "--wait", "--timeout", "30s", "--server", addr)
	if code != 0 || !strings.HasPrefix(stdout, "pipeline/logsdemo configured (revision 2)") {
		t.Fatalf("apply the change: exit %d\n%s%s", code, stdout, stderr)
	}
	var logs string
	waitFor(t, 20*time.Second, "the added component's lines in flowctl logs logsdemo/shout", func() bool {
		code, logs, _ = runFlowctl(t, "", "logs", "logsdemo/shout", "--server", addr)
		return code == 0 && strings.Contains(logs, "shout saw event 3")
	})
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(l, "component=out") || strings.Contains(l, "component=gen") {
			t.Errorf("logs of shout hold another component's line: %q", l)
		}
	}
	// Every line, unfiltered: the component's output says whose it is.
	if code, all, errb := runFlowctl(t, "", "logs", "logsdemo", "--server", addr); code != 0 || !strings.Contains(all, "shout | shout saw event 1") {
		t.Errorf("logs logsdemo: exit %d, want a line \"shout | shout saw event 1\":\n%s%s", code, all, errb)
	}

	code, js, errb := runFlowctl(t, "", "logs", "logsdemo/shout", "-o", "json", "--tail", "2", "--server", addr)
	if code != 0 {
		t.Fatalf("logs -o json: exit %d %s", code, errb)
	}
	lines := strings.Split(strings.TrimSpace(js), "\n")
	if len(lines) != 2 {
		t.Fatalf("logs -o json --tail 2 printed %d lines:\n%s", len(lines), js)
	}
	for _, l := range lines {
		var rec struct {
			Time, Pipeline, Component, Level, Source, Stream, Text string
			Run                                                    int64
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("logs -o json: %v: %q", err, l)
		}
		if rec.Pipeline != "logsdemo" || rec.Component != "shout" || rec.Source != "component" || rec.Level != "INFO" ||
			!strings.HasPrefix(rec.Text, "shout saw event ") || rec.Run == 0 {
			t.Errorf("logs -o json line: %+v", rec)
		}
		if ts, err := time.Parse(time.RFC3339Nano, rec.Time); err != nil || time.Since(ts) > time.Hour {
			t.Errorf("logs -o json time %q: %v", rec.Time, err)
		}
	}

	// A component's own output counts as info: --level warn leaves none of it.
	if code, warn, errb := runFlowctl(t, "", "logs", "logsdemo/shout", "--level", "warn", "--server", addr); code != 0 || strings.Contains(warn, "shout saw") {
		t.Errorf("logs --level warn: exit %d, want no info lines:\n%s%s", code, warn, errb)
	}
	// --since in the future keeps nothing; in the past everything.
	if code, none, _ := runFlowctl(t, "", "logs", "logsdemo/shout", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--server", addr); code != 0 || none != "" {
		t.Errorf("logs --since (a future time): exit %d, want nothing:\n%s", code, none)
	}
	if code, recent, _ := runFlowctl(t, "", "logs", "logsdemo/shout", "--since", "1h", "--server", addr); code != 0 || !strings.Contains(recent, "shout saw event 1") {
		t.Errorf("logs --since 1h: exit %d, want the lines:\n%s", code, recent)
	}

	// The server taps the component added in place, through its run.
	code, tapped, errb := runFlowctl(t, "", "tap", "logsdemo/shout:in", "--limit", "3", "-o", "json", "--server", addr)
	if code != 0 || strings.Count(tapped, `"point":"shout:in"`) != 3 || !strings.Contains(errb, "watching shout:in") {
		t.Errorf("tap through the server: exit %d\n%s%s", code, tapped, errb)
	}
	if code, _, errb := runFlowctl(t, "", "tap", "logsdemo/nosuch", "--server", addr); code == 0 || !strings.Contains(errb, `no component "nosuch"`) {
		t.Errorf("tap of an unknown component through the server: exit %d: %s", code, errb)
	}
	if code, _, errb := runFlowctl(t, "", "tap", "never", "--server", addr); code == 0 || !strings.Contains(errb, `pipeline "never" not found`) {
		t.Errorf("tap of an unknown pipeline through the server: exit %d: %s", code, errb)
	}

	code, _, errb = runFlowctl(t, "", "logs", "logsdemo/nosuch", "--server", addr)
	want := `pipeline "logsdemo" has no component "nosuch": its components are gen, loud, out, shout`
	if code == 0 || !strings.Contains(errb, want) {
		t.Errorf("logs of an unknown component: exit %d, want an error %q, got:\n%s", code, want, errb)
	}
	if code, _, errb := runFlowctl(t, "", "logs", "logsdemo", "--level", "loud", "--server", addr); code == 0 || !strings.Contains(errb, `--level "loud": use debug, info, warn or error`) {
		t.Errorf("logs --level loud: exit %d: %s", code, errb)
	}
}
