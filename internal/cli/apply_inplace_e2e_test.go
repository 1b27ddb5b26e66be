package cli

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pidProcessor is a stdio processor that stamps each event with its own
// process id, so the output says which process handled it.
const pidProcessor = `import json, os, sys
pid = os.getpid()
for line in sys.stdin:
    msg = json.loads(line)
    data = msg["event"].get("data") or {}
    data["pid"] = pid
    sys.stdout.write(json.dumps({"seq": msg["seq"], "data": data, "done": True}) + "\n")
    sys.stdout.flush()
`

func inPlacePipeline(tag string, extraSink bool) string {
	s := `name: inplace
sources:
  - name: gen
    type: generate
    config: {rate: 40, data: {tag: ` + tag + `}}
processors:
  - name: stamp
    command: [python3, stamp.py]
    protocol: stdio
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [stamp]
    config: {path: out.jsonl, append: true}
`
	if extraSink {
		s += `  - name: more
    type: file
    inputs: [stamp]
    config: {path: more.jsonl}
`
	}
	return s
}

type stampedLine struct {
	Tag string `json:"tag"`
	PID int    `json:"pid"`
}

func readStamped(t *testing.T, path string) []stampedLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []stampedLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l stampedLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v: %q", path, err, sc.Text())
		}
		out = append(out, l)
	}
	return out
}

// TestApplyChangeKeepsUnchangedComponents applies a pipeline with an
// external stdio processor, then a revision that changes the source's
// config and adds a sink: the run goes on (same run id), the processor
// keeps its process (the same pid stamps events before and after), the new
// data flows and the new sink receives events.
func TestApplyChangeKeepsUnchangedComponents(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed (.ci/run installs it):", err)
	}
	isolateClientConfig(t)
	addr := startServer(t)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "stamp.py"), pidProcessor)
	file := filepath.Join(dir, "inplace.yaml")
	writeFileAt(t, file, inPlacePipeline("one", false))
	if code, out, errb := runFlowctl(t, "", "apply", "-f", file, "--wait", "--timeout", "30s", "--server", addr); code != 0 {
		t.Fatalf("apply: %s%s", out, errb)
	}
	out := filepath.Join(dir, "out.jsonl")
	waitFor(t, 15*time.Second, "events before the change", func() bool { return len(readStamped(t, out)) >= 5 })
	before := readStamped(t, out)
	pid := before[0].PID
	if pid == 0 {
		t.Fatalf("no pid stamped: %+v", before[0])
	}

	writeFileAt(t, file, inPlacePipeline("two", true))
	code, stdout, stderr := runFlowctl(t, "", "apply", "-f", file, "--wait", "--timeout", "30s", "--server", addr)
	if code != 0 || !strings.HasPrefix(stdout, "pipeline/inplace configured (revision 2)") {
		t.Fatalf("apply the change: exit %d\n%s%s", code, stdout, stderr)
	}
	waitFor(t, 15*time.Second, "events of the new revision in both sinks", func() bool {
		lines := readStamped(t, out)
		return len(lines) > 0 && lines[len(lines)-1].Tag == "two" && len(readStamped(t, filepath.Join(dir, "more.jsonl"))) >= 3
	})
	// One process stamped everything, and the new source's data follows
	// the old one's (the new sink, wired first, may get a few of the old
	// source's events still on their way).
	for _, f := range []string{out, filepath.Join(dir, "more.jsonl")} {
		seenTwo := false
		for _, l := range readStamped(t, f) {
			if l.PID != pid {
				t.Fatalf("%s: an event was stamped by process %d, the processor before the change was %d: it was restarted", filepath.Base(f), l.PID, pid)
			}
			if l.Tag == "one" && seenTwo {
				t.Fatalf("%s: an event of the old source after one of the new", filepath.Base(f))
			}
			seenTwo = seenTwo || l.Tag == "two"
		}
	}
	code, stdout, _ = runFlowctl(t, "", "get", "runs", "inplace", "-o", "json", "--server", addr)
	if code != 0 || strings.Count(stdout, `"id"`) != 1 || !strings.Contains(stdout, `"revision": "2"`) {
		t.Errorf("runs after an in-place change: want one run, now at revision 2:\n%s", stdout)
	}
}
