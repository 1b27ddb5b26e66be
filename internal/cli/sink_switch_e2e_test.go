package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileSinkPathSwitchKeepsOutputE2E: a resumed pipeline whose file sink
// now writes to another path must not erase what that path holds. The
// sources go on from their checkpoint, so nothing they sent before comes
// again: a run that switched the output from a.jsonl to b.jsonl and back
// to a.jsonl truncated a.jsonl (mode: truncate, the default) and lost its
// first events for good.
func TestFileSinkPathSwitchKeepsOutputE2E(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	add := func(from, to int) {
		f, err := os.OpenFile(in, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i <= to; i++ {
			fmt.Fprintf(f, "{\"n\":%d}\n", i)
		}
		f.Close()
	}
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`name: switch
sources: [{name: in, type: file, config: {path: in.jsonl}}]
sinks: [{name: out, type: file, inputs: [in], config: {path: "${OUT}"}}]
`), 0o644)
	state := t.TempDir()
	run := func(out string) string {
		cmd := exec.Command(bin, "run", "-f", pf, "--state-dir", state)
		cmd.Env = append(os.Environ(), "OUT="+out)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run into %s: %v\n%s", out, err, b)
		}
		return string(b)
	}
	add(1, 5)
	run("a.jsonl")
	add(6, 8)
	run("b.jsonl")
	add(9, 10)
	log := run("a.jsonl")
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return string(b)
	}
	var wantA, wantB strings.Builder
	for i := 1; i <= 10; i++ {
		if i >= 6 && i <= 8 {
			fmt.Fprintf(&wantB, "{\"n\":%d}\n", i)
		} else {
			fmt.Fprintf(&wantA, "{\"n\":%d}\n", i)
		}
	}
	if got := read("a.jsonl"); got != wantA.String() {
		t.Errorf("a.jsonl after switching back to it:\n%s\nwant\n%s\nlast run:\n%s", got, wantA.String(), log)
	}
	if got := read("b.jsonl"); got != wantB.String() {
		t.Errorf("b.jsonl:\n%s\nwant\n%s", got, wantB.String())
	}
}
