package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
)

// tagProcessor is a stdio processor that stamps each event with its own
// process id and the value of TAG in its environment, so the output says
// which process, started from which spec, handled it.
const tagProcessor = `import json, os, sys
pid = os.getpid()
tag = os.environ.get("TAG", "")
for line in sys.stdin:
    msg = json.loads(line)
    data = msg["event"].get("data") or {}
    data["pid"] = pid
    data["tag"] = tag
    sys.stdout.write(json.dumps({"seq": msg["seq"], "data": data, "done": True}) + "\n")
    sys.stdout.flush()
`

// taggedLine is a line written by a file sink behind tagProcessor.
type taggedLine struct {
	ID     int    `json:"id"`
	PID    int    `json:"pid"`
	Tag    string `json:"tag"`
	Mapped bool   `json:"mapped"`
}

// readTagged reads the complete lines of a JSON lines file written behind
// tagProcessor; a last line still being written is left out. A missing
// file reads as empty.
func readTagged(t *testing.T, path string) []taggedLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []taggedLine
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var tl taggedLine
		if err := json.Unmarshal(l, &tl); err != nil {
			t.Fatalf("%s: %v: %q", filepath.Base(path), err, l)
		}
		out = append(out, tl)
	}
	return out
}

// checkIDsOnce fails unless lines carry the ids 0..n-1 exactly once each.
func checkIDsOnce(t *testing.T, what string, lines []taggedLine, n int) {
	t.Helper()
	seen := make([]int, n)
	var bad []string
	for _, l := range lines {
		if l.ID < 0 || l.ID >= n {
			bad = append(bad, fmt.Sprintf("unexpected id %d", l.ID))
			continue
		}
		seen[l.ID]++
	}
	for i, c := range seen {
		switch {
		case c == 0:
			bad = append(bad, fmt.Sprintf("id %d lost", i))
		case c > 1:
			bad = append(bad, fmt.Sprintf("id %d written %d times", i, c))
		}
	}
	if len(bad) > 0 {
		if len(bad) > 10 {
			bad = append(bad[:10], fmt.Sprintf("... %d more", len(bad)-10))
		}
		t.Fatalf("%s: want ids 0..%d once each (%d lines): %s", what, n-1, len(lines), strings.Join(bad, "; "))
	}
}

func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed (.ci/run installs it):", err)
	}
}

// applyRevision applies file to the server at addr and waits until its
// revision runs.
func applyRevision(t *testing.T, addr, file string, rev int) {
	t.Helper()
	code, stdout, stderr := runFlowctl(t, "", "apply", "-f", file, "--wait", "--timeout", "30s", "--server", addr)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("(revision %d)", rev)) {
		t.Fatalf("apply revision %d: exit %d\n%s%s", rev, code, stdout, stderr)
	}
}

// drainPipeline is generate → a stdio processor started with TAG=tag →
// a file sink appending to out.jsonl; the source is bounded (count ids).
func drainPipeline(tag string, count int) string {
	return fmt.Sprintf(`name: drain
sources:
  - name: gen
    type: generate
    config: {count: %d, rate: 1000, batch_size: 20, expr: '{"id": i}'}
processors:
  - name: stamp
    command: [python3, stamp.py]
    protocol: stdio
    inputs: [gen]
    env: {TAG: %s}
sinks:
  - name: out
    type: file
    inputs: [stamp]
    config: {path: out.jsonl, append: true}
`, count, tag)
}

// TestApplyChangedExternalDrainsFirst applies a bounded pipeline whose
// stdio processor stamps its pid and TAG, then a revision changing only
// the processor's environment: the run goes on (one run, now at revision
// 2), the old process drains before the new one starts (no event of the
// old one after the first of the new one; a second pid), and every event
// is written exactly once.
func TestApplyChangedExternalDrainsFirst(t *testing.T) {
	needPython(t)
	isolateClientConfig(t)
	addr := startServer(t)
	c := dialControl(t, addr)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "stamp.py"), tagProcessor)
	file := filepath.Join(dir, "drain.yaml")
	out := filepath.Join(dir, "out.jsonl")
	const n = 3000

	writeFileAt(t, file, drainPipeline("a", n))
	applyRevision(t, addr, file, 1)
	waitFor(t, 15*time.Second, "output of revision 1", func() bool { return len(readTagged(t, out)) >= 20 })

	oldPID := onePID(t, "out.jsonl before the change", readTagged(t, out))
	writeFileAt(t, file, drainPipeline("b", n))
	applyRevision(t, addr, file, 2)
	waitFor(t, 15*time.Second, fmt.Sprintf("the old processor (pid %d) to exit", oldPID), func() bool { return !pidAlive(oldPID) })

	var runs []*controlv1.Run
	waitFor(t, 30*time.Second, "the run to complete", func() bool {
		runs = listRuns(t, c, "drain")
		return len(runs) != 1 || runs[0].GetState() != controlv1.RunState_RUN_STATE_RUNNING
	})
	if len(runs) != 1 || runs[0].GetRevision() != 2 || runs[0].GetState() != controlv1.RunState_RUN_STATE_COMPLETED {
		t.Fatalf("runs = %v, want one COMPLETED run, at revision 2 (applied in place, not restarted)", runs)
	}

	lines := readTagged(t, out)
	checkIDsOnce(t, "out.jsonl", lines, n)
	pids := map[string]map[int]int{"a": {}, "b": {}}
	firstB := -1
	for i, l := range lines {
		m, ok := pids[l.Tag]
		if !ok {
			t.Fatalf("line %d: tag %q, want a or b: %+v", i, l.Tag, l)
		}
		m[l.PID]++
		if l.Tag == "b" && firstB < 0 {
			firstB = i
		}
		if l.Tag == "a" && firstB >= 0 {
			t.Fatalf("line %d (id %d) was stamped by the old process (TAG a) after line %d by the new one (TAG b): the old one did not drain first", i, l.ID, firstB)
		}
	}
	if len(pids["a"]) != 1 || len(pids["b"]) != 1 {
		t.Fatalf("pids by tag = %v, want one process per tag", pids)
	}
	var pa, pb int
	for p := range pids["a"] {
		pa = p
	}
	for p := range pids["b"] {
		pb = p
	}
	if pa == pb {
		t.Fatalf("TAG a and TAG b were stamped by the same process %d: the processor was not started again", pa)
	}
	if pa != oldPID {
		t.Fatalf("TAG a was stamped by pid %d, the processor before the change was %d", pa, oldPID)
	}
	t.Logf("%d ids once each; %d by pid %d (TAG a), then %d by pid %d (TAG b)", n, pids["a"][pa], pa, pids["b"][pb], pb)
}

// fanOutPipeline is generate → {stdio processor pa (TAG a) → a.jsonl,
// stdio processor pb (TAG b) → b.jsonl}; without withB, pb and its sink
// are left out.
func fanOutPipeline(withB bool) string {
	s := `name: fanout
sources:
  - name: gen
    type: generate
    config: {rate: 100, batch_size: 5, expr: '{"id": i}'}
processors:
  - {name: pa, command: [python3, stamp.py], protocol: stdio, inputs: [gen], env: {TAG: a}}
`
	if withB {
		s += "  - {name: pb, command: [python3, stamp.py], protocol: stdio, inputs: [gen], env: {TAG: b}}\n"
	}
	s += `sinks:
  - {name: outa, type: file, inputs: [pa], config: {path: a.jsonl, append: true}}
`
	if withB {
		s += "  - {name: outb, type: file, inputs: [pb], config: {path: b.jsonl, append: true}}\n"
	}
	return s
}

// onePID returns the single pid stamped on lines, failing when there are
// several.
func onePID(t *testing.T, what string, lines []taggedLine) int {
	t.Helper()
	pid := 0
	for _, l := range lines {
		if l.PID == 0 || (pid != 0 && l.PID != pid) {
			t.Fatalf("%s: stamped by pid %d and %d, want one process", what, pid, l.PID)
		}
		pid = l.PID
	}
	return pid
}

// TestApplyRemovedExternalStops applies a fan-out to two stdio processors,
// then a revision without the second one and its sink: the removed
// process exits after handing on what it held (its file has every id up
// to where it stopped, once), the kept one goes on with the same pid, and
// the run is the same, now at revision 2.
func TestApplyRemovedExternalStops(t *testing.T) {
	needPython(t)
	isolateClientConfig(t)
	addr := startServer(t)
	c := dialControl(t, addr)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "stamp.py"), tagProcessor)
	file := filepath.Join(dir, "fanout.yaml")
	fa, fb := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")

	writeFileAt(t, file, fanOutPipeline(true))
	applyRevision(t, addr, file, 1)
	waitFor(t, 15*time.Second, "output of both processors", func() bool {
		return len(readTagged(t, fa)) >= 10 && len(readTagged(t, fb)) >= 10
	})
	runs := listRuns(t, c, "fanout")
	if len(runs) != 1 {
		t.Fatalf("runs = %v, want one", runs)
	}
	runID := runs[0].GetId()
	pidA := onePID(t, "a.jsonl", readTagged(t, fa))
	pidB := onePID(t, "b.jsonl", readTagged(t, fb))
	if pidA == pidB || !pidAlive(pidA) || !pidAlive(pidB) {
		t.Fatalf("processors: pid %d (alive %v) and %d (alive %v), want two running processes", pidA, pidAlive(pidA), pidB, pidAlive(pidB))
	}

	writeFileAt(t, file, fanOutPipeline(false))
	applyRevision(t, addr, file, 2)
	waitFor(t, 15*time.Second, fmt.Sprintf("the removed processor (pid %d) to exit", pidB), func() bool { return !pidAlive(pidB) })
	n := len(readTagged(t, fa))
	waitFor(t, 15*time.Second, "a.jsonl to keep growing", func() bool { return len(readTagged(t, fa)) >= n+20 })
	stoppedB, n := len(readTagged(t, fb)), len(readTagged(t, fa))
	waitFor(t, 15*time.Second, "a.jsonl to keep growing", func() bool { return len(readTagged(t, fa)) >= n+20 })

	linesA, linesB := readTagged(t, fa), readTagged(t, fb)
	if len(linesB) != stoppedB {
		t.Fatalf("b.jsonl grew from %d to %d lines after its processor was removed", stoppedB, len(linesB))
	}
	if got := onePID(t, "a.jsonl", linesA); got != pidA || !pidAlive(pidA) {
		t.Fatalf("the kept processor: pid %d stamped a.jsonl (alive %v), want the same %d as before the change", got, pidAlive(pidA), pidA)
	}
	checkIDsOnce(t, "b.jsonl", linesB, len(linesB))
	// a.jsonl: every id once up to the last complete line (ordered, so its
	// length says which ids are in).
	checkIDsOnce(t, "a.jsonl", linesA, len(linesA))
	for _, l := range linesB {
		if l.Tag != "b" {
			t.Fatalf("b.jsonl: line with tag %q: %+v", l.Tag, l)
		}
	}
	runs = listRuns(t, c, "fanout")
	if len(runs) != 1 || runs[0].GetId() != runID || runs[0].GetRevision() != 2 || runs[0].GetState() != controlv1.RunState_RUN_STATE_RUNNING {
		t.Fatalf("runs = %v, want the same RUNNING run %d, at revision 2", runs, runID)
	}
	t.Logf("pb (pid %d) stopped after %d events; pa (pid %d) went on to %d", pidB, len(linesB), pidA, len(linesA))
}

// sighupPipeline is generate → stdio processor → file sink; with mapped,
// a built-in map setting mapped: true sits between the processor and the
// sink.
func sighupPipeline(mapped bool) string {
	s := `name: hup
sources:
  - name: gen
    type: generate
    config: {rate: 100, batch_size: 5, expr: '{"id": i}'}
processors:
  - {name: stamp, command: [python3, stamp.py], protocol: stdio, inputs: [gen], env: {TAG: a}}
`
	into := "stamp"
	if mapped {
		s += "  - {name: mark, type: map, inputs: [stamp], config: {set: {mapped: \"true\"}}}\n"
		into = "mark"
	}
	return s + `sinks:
  - {name: out, type: file, inputs: [` + into + `], config: {path: out.jsonl, append: true}}
`
}

// TestRunSIGHUPInsertsProcessor runs `flowctl run` (no server) with a
// stdio processor, rewrites the file with a built-in map between that
// processor and the sink and sends SIGHUP: the run goes on, the external
// process keeps its pid, later lines carry the map's field and no event
// is lost or written twice, up to a clean stop.
func TestRunSIGHUPInsertsProcessor(t *testing.T) {
	needPython(t)
	bin := flowctlBinary(t)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "stamp.py"), tagProcessor)
	pf := filepath.Join(dir, "hup.yaml")
	out := filepath.Join(dir, "out.jsonl")
	writeFileAt(t, pf, sighupPipeline(false))

	cmd := exec.Command(bin, "run", "-f", pf, "--grace", "5s", "--state-dir", t.TempDir())
	cmd.Dir = dir
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})
	stillRunning := func(when string) {
		t.Helper()
		select {
		case err := <-exited:
			t.Fatalf("%s: the run ended: %v", when, err)
		default:
		}
	}

	waitFor(t, 15*time.Second, "output before the change", func() bool { return len(readTagged(t, out)) >= 10 })
	pid := onePID(t, "out.jsonl", readTagged(t, out))
	if kids := childrenOf(cmd.Process.Pid); len(kids) != 1 || kids[0] != pid {
		t.Fatalf("children of flowctl run = %v, want the processor %d", kids, pid)
	}

	writeFileAt(t, pf, sighupPipeline(true))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the reload to be logged", func() bool { return strings.Contains(stderr.String(), `msg="pipeline reloaded"`) })
	stillRunning("after SIGHUP")
	var firstMapped int
	waitFor(t, 15*time.Second, "lines from the map", func() bool {
		lines := readTagged(t, out)
		firstMapped = -1
		for i, l := range lines {
			if l.Mapped {
				firstMapped = i
				break
			}
		}
		return firstMapped >= 0 && len(lines) >= firstMapped+20
	})
	stillRunning("after output through the map")
	if kids := childrenOf(cmd.Process.Pid); len(kids) != 1 || kids[0] != pid {
		t.Fatalf("children of flowctl run after the reload = %v, want the same processor %d", kids, pid)
	}

	// A clean stop drains everything: every id once, one pid, and no line
	// without the map's field after the first with it.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("flowctl run after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("flowctl run did not stop within 20s of SIGTERM")
	}
	lines := readTagged(t, out)
	checkIDsOnce(t, "out.jsonl", lines, len(lines))
	if got := onePID(t, "out.jsonl", lines); got != pid {
		t.Fatalf("lines stamped by pid %d, want %d throughout", got, pid)
	}
	for i, l := range lines[firstMapped:] {
		if !l.Mapped {
			t.Fatalf("line %d (id %d) has no mapped field, after line %d which has it", firstMapped+i, l.ID, firstMapped)
		}
	}
	if pidAlive(pid) {
		t.Errorf("the processor (pid %d) outlived flowctl run", pid)
	}
	t.Logf("pid %d throughout; the map from line %d of %d", pid, firstMapped, len(lines))
}
