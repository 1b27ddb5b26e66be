package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevelopmentLoop is the developer loop of the README's "Develop a
// pipeline" section, from an empty directory, through the real binary:
// init → run → test (pass) → an edit of the data that a test catches →
// test (fails, with a diff) → new component --add-to → its own unit test
// and component test (pass) → test again (the new field shows in the
// diff) → the expectation updated → test (pass) → run.
func TestDevelopmentLoop(t *testing.T) {
	needTool(t, "python3")
	bin := flowctlBinary(t)
	root := t.TempDir()
	dir := filepath.Join(root, "payments")

	// flowctl runs the command in dir and returns its exit status and
	// its stdout and stderr together.
	flowctl := func(dir string, args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		cmd.WaitDelay = 5 * time.Second
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("flowctl %s: did not end within 2 minutes\n%s", strings.Join(args, " "), out.Bytes())
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("flowctl %s: %v", strings.Join(args, " "), err)
		}
		return code, out.String()
	}
	must := func(dir string, args ...string) string {
		t.Helper()
		code, out := flowctl(dir, args...)
		if code != 0 {
			t.Fatalf("flowctl %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	edit := func(path, old, new string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s has no %q:\n%s", path, old, b)
		}
		if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), -1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lines := func(path string) []string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}

	must(root, "init", "payments")
	must(dir, "run", "-f", "pipeline.yaml", "--state-dir", filepath.Join(root, "state1"))
	out := filepath.Join(dir, "out", "large-payments.jsonl")
	if got := lines(out); len(got) != 2 || !strings.Contains(got[1], `"INITECH"`) {
		t.Fatalf("run wrote %q, want the two large payments", got)
	}
	if out := must(dir, "test"); !strings.Contains(out, "ok  \tpipeline_test.yaml") {
		t.Fatalf("test on a fresh project:\n%s", out)
	}

	// An edit of the sample data that the pipeline test catches, shown as
	// a diff of what was expected and what the sink got.
	data := filepath.Join(dir, "data", "events.jsonl")
	edit(data, `"amount": 5100}`, `"amount": 510}`)
	code, got := flowctl(dir, "test")
	for _, want := range []string{
		"--- FAIL: every event of the sample data",
		`sink "out": 2 events expected, got 1 event`,
		"--- expected\n    +++ got",
		`- {"account":"INITECH","amount":5100,"amount_cents":510000,"id":4,"kind":"payment"}`,
		"FAIL\tpipeline_test.yaml",
	} {
		if code != 1 || !strings.Contains(got, want) {
			t.Fatalf("test after the data edit: exit %d, want 1 and %q in:\n%s", code, want, got)
		}
	}
	edit(data, `"amount": 510}`, `"amount": 5100}`)

	// A Python processor, wired in after enrich.
	must(dir, "new", "component", "tagger", "--lang", "python", "--role", "processor", "--add-to", "pipeline.yaml", "--after", "enrich")
	pf, err := os.ReadFile(filepath.Join(dir, "pipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pf), "inputs: [tagger]") || !strings.Contains(string(pf), "# "+"payments: a file source") {
		t.Fatalf("pipeline.yaml after --add-to (the sink reads from tagger, comments kept):\n%s", pf)
	}
	comp := filepath.Join(dir, "tagger")
	runIn(t, comp, nil, time.Minute, "python3", "-m", "unittest")
	if out := must(comp, "component", "test", "--protocol", "stdio", "--role", "processor", "--", "python3", "main.py"); !strings.Contains(out, "PASS: ") {
		t.Fatalf("component test:\n%s", out)
	}

	// The pipeline tests now run through the new component: its field
	// shows in the diff until the expectations say it.
	code, got = flowctl(dir, "test")
	if code != 1 || !strings.Contains(got, `+ {"account":"GLOBEX","amount":7400,"amount_cents":740000,"kind":"payment","processed_by":"tagger"}`) {
		t.Fatalf("test after adding tagger: exit %d, want 1 and the processed_by field in the diff:\n%s", code, got)
	}
	edit(filepath.Join(dir, "pipeline_test.yaml"), "amount_cents: 740000}", "amount_cents: 740000, processed_by: tagger}")
	edit(filepath.Join(dir, "pipeline_test.yaml"), "amount_cents: 510000}", "amount_cents: 510000, processed_by: tagger}")
	if out := must(dir, "test", "-v"); !strings.Contains(out, "--- PASS: large payments are kept and enriched") || !strings.Contains(out, "ok  \tpipeline_test.yaml") {
		t.Fatalf("test with the updated expectations:\n%s", out)
	}

	// And the real run goes through it too (a new state directory: the
	// first run's checkpoint says the data file was read to its end; a
	// first run starts the output file afresh, mode: truncate).
	must(dir, "run", "-f", "pipeline.yaml", "--state-dir", filepath.Join(root, "state2"))
	got2 := lines(out)
	if len(got2) != 2 || !strings.Contains(got2[0], "processed_by") || !strings.Contains(got2[1], "processed_by") {
		t.Fatalf("second run wrote %q, want the two large payments with processed_by", got2)
	}
}
