package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildTagSource is a stdio processor in Go (standard library only) that
// stamps each event with a version and its process id.
func buildTagSource(version string) string {
	return `package main

import (
	"bufio"
	"encoding/json"
	"os"
)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	enc := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		var msg struct {
			Seq   json.RawMessage ` + "`json:\"seq\"`" + `
			Event struct {
				Data map[string]any ` + "`json:\"data\"`" + `
			} ` + "`json:\"event\"`" + `
		}
		if json.Unmarshal(sc.Bytes(), &msg) != nil {
			continue
		}
		d := msg.Event.Data
		if d == nil {
			d = map[string]any{}
		}
		d["tag"] = "` + version + `"
		d["pid"] = os.Getpid()
		enc.Encode(map[string]any{"seq": msg.Seq, "data": d, "done": true})
	}
}
`
}

// buildPyProcessor is a second external component, left alone by the
// rebuilds: it stamps its own process id.
const buildPyProcessor = `import json, os, sys
pid = os.getpid()
for line in sys.stdin:
    msg = json.loads(line)
    data = msg["event"].get("data") or {}
    data["pypid"] = pid
    sys.stdout.write(json.dumps({"seq": msg["seq"], "data": data, "done": True}) + "\n")
    sys.stdout.flush()
`

const buildPipeline = `name: buildwatch
sources:
  - name: gen
    type: generate
    config: {rate: 50, data: {kind: a}}
processors:
  - name: tag
    command: bin/tag
    protocol: stdio
    build: go build -o bin/tag .
    watch: ["*.go", go.mod]
    inputs: [gen]
  - name: py
    command: [python3, py.py]
    protocol: stdio
    inputs: [tag]
sinks:
  - name: out
    type: file
    inputs: [py]
    config: {path: out.jsonl, append: true}
`

type buildLine struct {
	Tag   string `json:"tag"`
	PID   int    `json:"pid"`
	PyPID int    `json:"pypid"`
}

// TestRunWatchBuild: a component with build/watch. Plain flowctl run does
// not build and says how to; run --watch builds it before starting,
// rebuilds it when its Go source changes and restarts only it (once), and
// a broken edit prints the compiler's errors and keeps the running
// version.
func TestRunWatchBuild(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed (.ci/run installs it):", err)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is needed (.ci/run installs it):", err)
	}
	bin := flowctlBinary(t)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "go.mod"), "module watchdemo\n\ngo 1.22\n")
	src := filepath.Join(dir, "main.go")
	writeFileAt(t, src, buildTagSource("go-v1"))
	writeFileAt(t, filepath.Join(dir, "py.py"), buildPyProcessor)
	pf := filepath.Join(dir, "pipeline.yaml")
	writeFileAt(t, pf, buildPipeline)
	out := filepath.Join(dir, "out.jsonl")

	// Plain run: no build, an error that says how to get the program.
	plain := exec.Command(bin, "run", "-f", pf, "--state-dir", t.TempDir())
	b, err := plain.CombinedOutput()
	if err == nil {
		t.Fatalf("flowctl run without the program succeeded:\n%s", b)
	}
	if want := "run `flowctl run --watch`, or build it: go build -o bin/tag ."; !strings.Contains(string(b), want) {
		t.Fatalf("flowctl run without the program: want %q in:\n%s", want, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "tag")); err == nil {
		t.Fatal("plain flowctl run built the program")
	}

	run := startWatchRun(t, bin, pf)
	cmd, stderr, exited := run.cmd, run.stderr, run.exited
	defer func() {
		if t.Failed() {
			t.Logf("flowctl's stderr:\n%s", stderr.String())
		}
	}()
	last := func() buildLine {
		ls := readJSONLines[buildLine](out)
		if len(ls) == 0 {
			return buildLine{}
		}
		return ls[len(ls)-1]
	}
	running := func() {
		t.Helper()
		select {
		case <-exited:
			t.Fatalf("the run ended: %v\n%s", run.err, stderr.String())
		default:
		}
	}
	waitFor(t, 90*time.Second, "events of the first build", func() bool { running(); return last().Tag == "go-v1" })
	first := last()
	if !strings.Contains(stderr.String(), "--watch: building tag: go build -o bin/tag .") {
		t.Errorf("stderr does not say the first build ran:\n%s", stderr.String())
	}

	// An edit of the source: rebuilt, and only tag restarted.
	writeFileAt(t, src, buildTagSource("go-v2"))
	waitFor(t, 90*time.Second, "events of the rebuilt program", func() bool { running(); return last().Tag == "go-v2" })
	second := last()
	if second.PID == first.PID {
		t.Errorf("the rebuilt program runs in the old process %d", first.PID)
	}
	if second.PyPID != first.PyPID {
		t.Errorf("the python processor was restarted too: pid %d, then %d", first.PyPID, second.PyPID)
	}
	if !strings.Contains(stderr.String(), "--watch: main.go changed: building tag") ||
		!strings.Contains(stderr.String(), "--watch: tag rebuilt: restarting tag") {
		t.Errorf("stderr does not say what was built and restarted:\n%s", stderr.String())
	}

	// A broken edit: the compiler's errors, prefixed with the component,
	// and the rebuilt version goes on.
	writeFileAt(t, src, buildTagSource("go-v3")+"\nfunc broken( {\n")
	waitFor(t, 90*time.Second, "the failed build reported", func() bool {
		running()
		return strings.Contains(stderr.String(), "tag goes on running its previous version")
	})
	if s := stderr.String(); !strings.Contains(s, "build of tag failed") || !strings.Contains(s, "tag | ") || !strings.Contains(s, "main.go:") {
		t.Errorf("the failed build's output is not shown, prefixed with the component:\n%s", s)
	}
	n := len(readJSONLines[buildLine](out))
	waitFor(t, 30*time.Second, "events after the broken edit", func() bool { running(); return len(readJSONLines[buildLine](out)) > n+10 })
	if l := last(); l.Tag != "go-v2" || l.PID != second.PID || l.PyPID != first.PyPID {
		t.Errorf("after the broken edit: %+v, want tag go-v2 from pid %d and python pid %d", l, second.PID, first.PyPID)
	}
	// The rebuilt program's own write did not restart it a second time.
	if c := strings.Count(stderr.String(), "restarting tag"); c != 1 {
		t.Errorf("tag was restarted %d times, want once:\n%s", c, stderr.String())
	}

	// A saved file that adds a component with a build: built first; while
	// the source is broken, the file is not applied at all.
	withTag2 := strings.Replace(buildPipeline, `sinks:
  - name: out
    type: file
    inputs: [py]`, `  - name: tag2
    command: bin/tag2
    protocol: stdio
    build: [go, build, -o, bin/tag2, .]
    watch: "*.go"
    inputs: [py]
sinks:
  - name: out
    type: file
    inputs: [tag2]`, 1)
	if withTag2 == buildPipeline {
		t.Fatal("the edit of the pipeline changed nothing")
	}
	writeFileAt(t, pf, withTag2)
	waitFor(t, 90*time.Second, "the failed build of the added component", func() bool {
		running()
		return strings.Contains(stderr.String(), "build of tag2 failed") && strings.Contains(stderr.String(), "the run goes on unchanged")
	})
	if _, err := os.Stat(filepath.Join(dir, "bin", "tag2")); err == nil {
		t.Fatal("bin/tag2 exists although its build failed")
	}
	// Fixed: the round applies the file on disk, so tag2 is built and
	// added, and tag rebuilt and restarted. tag2 stamps its own pid over
	// tag's, and its tag: go-v3 as well.
	pidTag := last().PID
	writeFileAt(t, src, buildTagSource("go-v3"))
	waitFor(t, 90*time.Second, "events through the added component", func() bool {
		running()
		l := last()
		return l.Tag == "go-v3" && l.PID != pidTag && strings.Contains(stderr.String(), `msg="component started" pipeline=buildwatch component=tag2`)
	})
	if s := stderr.String(); !strings.Contains(s, "has a new build for tag2: go build -o bin/tag2 .") || !strings.Contains(s, "--watch: tag2 built: applying") ||
		!strings.Contains(s, "--watch: tag rebuilt: restarting tag\n") || strings.Contains(s, "reload failed") {
		t.Errorf("stderr does not say tag2 was built, or a reload failed:\n%s", s)
	}

	// Stopped, it drains and exits 0 (its source only ends when stopped).
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		if run.err != nil {
			t.Errorf("the run stopped with %v", run.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not stop")
	}
}
