package cli

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tagProcessor stamps each event with a tag and its process id.
func watchTagProcessor(tag string) string {
	return `import json, os, sys
pid = os.getpid()
for line in sys.stdin:
    msg = json.loads(line)
    data = msg["event"].get("data") or {}
    data["tag"] = "` + tag + `"
    data["pid"] = pid
    sys.stdout.write(json.dumps({"seq": msg["seq"], "data": data, "done": True}) + "\n")
    sys.stdout.flush()
`
}

func watchPipeline(kind, input string) string {
	return `name: watchdemo
sources:
  - name: gen
    type: generate
    config: {rate: 50, data: {kind: ` + kind + `}}
processors:
  - name: tag
    command: [python3, tag.py]
    protocol: stdio
    inputs: [` + input + `]
sinks:
  - name: out
    type: file
    inputs: [tag]
    config: {path: out.jsonl, append: true}
`
}

type watchLine struct {
	Kind string `json:"kind"`
	Tag  string `json:"tag"`
	PID  int    `json:"pid"`
}

// readJSONLines decodes the JSON lines of path that decode as T (none
// when the file does not exist yet).
func readJSONLines[T any](path string) []T {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l T
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// watchedRun is a flowctl run --watch started by a test; it is stopped
// (SIGINT, then SIGKILL after 30 s) when the test ends.
type watchedRun struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	// exited is closed when the run ends; err then holds how.
	exited chan struct{}
	err    error
}

func startWatchRun(t *testing.T, bin, pf string) *watchedRun {
	t.Helper()
	r := &watchedRun{
		cmd:    exec.Command(bin, "run", "--watch", "-f", pf, "--state-dir", t.TempDir()),
		stderr: &syncBuffer{},
		exited: make(chan struct{}),
	}
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			r.cmd.Process.Kill()
		}
	})
	return r
}

// TestRunWatch: flowctl run --watch applies a saved pipeline file in place,
// reports an invalid edit with its FILE:LINE:COL and keeps running, and
// restarts only the component whose script changed.
func TestRunWatch(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed (.ci/run installs it):", err)
	}
	bin := flowctlBinary(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "tag.py")
	writeFileAt(t, script, watchTagProcessor("v1"))
	pf := filepath.Join(dir, "watchdemo.yaml")
	writeFileAt(t, pf, watchPipeline("a", "gen"))
	out := filepath.Join(dir, "out.jsonl")
	run := startWatchRun(t, bin, pf)
	cmd, stderr, exited := run.cmd, run.stderr, run.exited
	last := func() watchLine {
		ls := readJSONLines[watchLine](out)
		if len(ls) == 0 {
			return watchLine{}
		}
		return ls[len(ls)-1]
	}
	waitFor(t, 30*time.Second, "events of the first version", func() bool { return last().Kind == "a" && last().Tag == "v1" })
	pid := last().PID

	// A saved change to the file is applied in place: the processor
	// keeps its process.
	writeFileAt(t, pf, watchPipeline("b", "gen"))
	waitFor(t, 30*time.Second, "events of kind b", func() bool { return last().Kind == "b" })
	if l := last(); l.PID != pid || l.Tag != "v1" {
		t.Errorf("after a change of the source, the processor was restarted: %+v (pid before %d)", l, pid)
	}

	// An invalid edit: its errors with FILE:LINE:COL, and the run goes on.
	writeFileAt(t, pf, watchPipeline("c", "nope"))
	waitFor(t, 30*time.Second, "the invalid edit reported", func() bool {
		return strings.Contains(stderr.String(), "watchdemo.yaml:10:") && strings.Contains(stderr.String(), "the run goes on unchanged")
	})
	n := len(readJSONLines[watchLine](out))
	waitFor(t, 30*time.Second, "events after the invalid edit", func() bool { return len(readJSONLines[watchLine](out)) > n+5 })
	if l := last(); l.Kind != "b" {
		t.Errorf("after an invalid edit: %+v, want kind b still", l)
	}

	// A changed script restarts its component (a new process), drained
	// first: nothing is lost or repeated around it.
	writeFileAt(t, pf, watchPipeline("b", "gen"))
	writeFileAt(t, script, watchTagProcessor("v2"))
	waitFor(t, 30*time.Second, "events of the edited script", func() bool { return last().Tag == "v2" })
	if l := last(); l.PID == pid {
		t.Errorf("the edited script runs in the old process %d", pid)
	}
	if !strings.Contains(stderr.String(), "--watch: tag.py changed: restarting tag") {
		t.Errorf("stderr does not say what restarted:\n%s", stderr.String())
	}
	select {
	case <-exited:
		t.Fatalf("the run ended: %v\n%s", run.err, stderr.String())
	default:
	}
	// Stop and count: every event the source emitted was written once.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not stop")
	}
	summary := stderr.String()
	if !strings.Contains(summary, "gen ") {
		t.Logf("summary:\n%s", summary)
	}
}

// watchEditsPipeline is the pipeline of TestRunWatchEdits: keep filters
// the generated numbers with keepExpr; extra, when true, adds a second
// file sink.
func watchEditsPipeline(keepExpr string, extra bool) string {
	s := `name: watchedits
sources:
  - name: gen
    type: generate
    config: {rate: 100, expr: '{"n": i}'}
processors:
  - name: keep
    type: filter
    inputs: [gen]
    config: {expr: "` + keepExpr + `"}
  - name: tag
    command: [python3, tag.py]
    protocol: stdio
    inputs: [keep]
sinks:
  - name: out
    type: file
    inputs: [tag]
    config: {path: out.jsonl, append: true}
`
	if extra {
		s += `  - name: copy
    type: file
    inputs: [tag]
    config: {path: copy.jsonl, append: true}
`
	}
	return s
}

type editLine struct {
	N   int `json:"n"`
	PID int `json:"pid"`
}

// TestRunWatchEdits is the developer loop's done-when: run --watch, then
// three edits of the file — a filter change, an added sink, an invalid
// edit — each checked in the output, and the components the edit did not
// touch kept running (the external processor keeps its process; the run
// logs only the changed component as reloaded and the new one as
// started).
func TestRunWatchEdits(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed (.ci/run installs it):", err)
	}
	bin := flowctlBinary(t)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "tag.py"), watchTagProcessor("v1"))
	pf := filepath.Join(dir, "watchedits.yaml")
	writeFileAt(t, pf, watchEditsPipeline("data.n % 2 == 0", false))
	out, copyOut := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "copy.jsonl")
	run := startWatchRun(t, bin, pf)
	stderr, exited := run.stderr, run.exited
	running := func() {
		t.Helper()
		select {
		case <-exited:
			t.Fatalf("the run ended: %v\n%s", run.err, stderr.String())
		default:
		}
	}
	lines := func() []editLine { return readJSONLines[editLine](out) }
	waitFor(t, 30*time.Second, "even numbers", func() bool { running(); return len(lines()) > 5 })
	for _, l := range lines() {
		if l.N%2 != 0 {
			t.Fatalf("the filter let %d through", l.N)
		}
	}
	pid := lines()[0].PID
	mark := len(stderr.String())
	since := func() string { return stderr.String()[mark:] }

	// 1. A filter change: from then on odd numbers only; only the filter
	// is reloaded.
	writeFileAt(t, pf, watchEditsPipeline("data.n % 2 == 1", false))
	waitFor(t, 30*time.Second, "odd numbers", func() bool {
		running()
		ls := lines()
		return len(ls) > 0 && ls[len(ls)-1].N%2 == 1
	})
	ls := lines()
	odd := 0
	for i := len(ls) - 1; i >= 0 && ls[i].N%2 == 1; i-- {
		odd++
	}
	waitFor(t, 30*time.Second, "more odd numbers", func() bool { running(); return len(lines()) > len(ls)+5 })
	for _, l := range lines()[len(ls)-odd:] {
		if l.N%2 != 1 || l.PID != pid {
			t.Fatalf("after the filter change: %+v, want odd numbers from pid %d", l, pid)
		}
	}
	if s := since(); !strings.Contains(s, `msg="component reloaded" pipeline=watchedits component=keep`) ||
		strings.Contains(s, "component stopped") || strings.Contains(s, "component started") ||
		strings.Count(s, "component reloaded") != 1 {
		t.Errorf("after the filter change, the log should name keep alone as reloaded:\n%s", s)
	}

	// 2. An added sink: copy.jsonl is written; the others go on.
	mark = len(stderr.String())
	writeFileAt(t, pf, watchEditsPipeline("data.n % 2 == 1", true))
	waitFor(t, 30*time.Second, "events in the added sink", func() bool { running(); return len(readJSONLines[editLine](copyOut)) > 5 })
	for _, l := range readJSONLines[editLine](copyOut) {
		if l.N%2 != 1 || l.PID != pid {
			t.Fatalf("the added sink got %+v, want odd numbers from pid %d", l, pid)
		}
	}
	if s := since(); !strings.Contains(s, `msg="component started" pipeline=watchedits component=copy`) ||
		strings.Contains(s, "component reloaded") || strings.Contains(s, "component stopped") ||
		strings.Contains(s, `msg="component started" pipeline=watchedits component=tag`) {
		t.Errorf("after adding a sink, the log should name copy alone as started (tag only rewired):\n%s", s)
	}

	// 3. An invalid edit (an unknown input, line 22): its FILE:LINE:COL, and both
	// sinks go on receiving from the same processes.
	mark = len(stderr.String())
	writeFileAt(t, pf, strings.Replace(watchEditsPipeline("data.n % 2 == 1", true), "inputs: [tag]\n    config: {path: copy", "inputs: [tga]\n    config: {path: copy", 1))
	waitFor(t, 30*time.Second, "the invalid edit reported", func() bool {
		running()
		return strings.Contains(since(), "watchedits.yaml:22:") && strings.Contains(since(), "the run goes on unchanged")
	})
	n, nc := len(lines()), len(readJSONLines[editLine](copyOut))
	waitFor(t, 30*time.Second, "events after the invalid edit", func() bool {
		running()
		return len(lines()) > n+5 && len(readJSONLines[editLine](copyOut)) > nc+5
	})
	// One read: the sink may finish a line between two reads.
	ls = lines()
	if l := ls[len(ls)-1]; l.N%2 != 1 || l.PID != pid {
		t.Errorf("after the invalid edit: %+v, want odd numbers from pid %d", l, pid)
	}
	if s := since(); strings.Contains(s, "component reloaded") || strings.Contains(s, "component started") || strings.Contains(s, "component stopped") {
		t.Errorf("the invalid edit changed a component:\n%s", s)
	}
}
