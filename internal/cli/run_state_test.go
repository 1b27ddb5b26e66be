package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunResumesAndStateCommands: a second run of the same pipeline goes
// on where the first ended and says so; appended input is read once;
// state show names the position; --from-start and state reset start over.
func TestRunResumesAndStateCommands(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 10)
	pf := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pf, []byte(`
name: resumer
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
sinks: [{name: out, type: file, inputs: [ledger], config: {path: out.jsonl}}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	run := func(extra ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args := append([]string{"run", "-f", pf, "--state-dir", stateDir}, extra...)
		if code := Main(args, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("run %v: exit %d\n%s", extra, code, stderr.String())
		}
		return stderr.String()
	}
	state := func(args ...string) (string, int) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := Main(append(append([]string{"state"}, args...), "--state-dir", stateDir), nil, &stdout, &stderr)
		return stdout.String() + stderr.String(), code
	}

	if msg := run(); strings.Contains(msg, "resuming") {
		t.Fatalf("a first run says it resumes:\n%s", msg)
	}
	f, err := os.OpenFile(filepath.Join(dir, "in.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":10,"amount":1}` + "\n" + `{"id":11,"amount":1}` + "\n")
	f.Close()
	msg := run()
	if !strings.Contains(msg, `resuming "resumer" from ledger in.jsonl:10`) || !strings.Contains(msg, "2 events in, 2 written") {
		t.Fatalf("second run:\n%s", msg)
	}
	if got := len(readLines(t, out)); got != 12 {
		t.Fatalf("%d lines after the second run, want 12 (nothing truncated, nothing twice)", got)
	}

	if ls, code := state("ls"); code != 0 || !strings.Contains(ls, "resumer") {
		t.Fatalf("state ls (exit %d):\n%s", code, ls)
	}
	show, code := state("show", "resumer")
	if code != 0 || !strings.Contains(show, "in.jsonl:12") || !strings.Contains(show, "out.jsonl") {
		t.Fatalf("state show (exit %d):\n%s", code, show)
	}
	if msg, code := state("show", "nope"); code != 1 || !strings.Contains(msg, "no checkpoint") {
		t.Fatalf("state show of an unknown pipeline (exit %d):\n%s", code, msg)
	}

	if msg := run("--from-start"); !strings.Contains(msg, "from the beginning") || !strings.Contains(msg, "12 events in") {
		t.Fatalf("--from-start:\n%s", msg)
	}
	if got := len(readLines(t, out)); got != 12 {
		t.Fatalf("%d lines after --from-start, want 12 (mode truncate starts the file over)", got)
	}
	if msg, code := state("reset", "resumer"); code != 0 || !strings.Contains(msg, "reset") {
		t.Fatalf("state reset (exit %d):\n%s", code, msg)
	}
	if msg := run(); strings.Contains(msg, "resuming") || !strings.Contains(msg, "12 events in") {
		t.Fatalf("run after reset:\n%s", msg)
	}
}
