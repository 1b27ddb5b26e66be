package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// earlierPipeline is a file written for the earlier flowctl: apiVersion
// v1, a driver, a field that loader ignored, a camelCase field and no
// inputs anywhere. It loads with warnings only.
const earlierPipeline = `apiVersion: v1
kind: Pipeline
metadata:
  name: earlier
spec:
  driver: dag
  sources:
    - id: gen
      type: generate
      health_endpoint: /healthz
      config: {count: 5, data: {n: 1}}
  sinks:
    - id: out
      type: file
      restartPolicy: always
      config: {path: out.jsonl}
`

// earlierWarnings are the warnings every command that loads
// earlierPipeline prints, as `file:line:col: warning: ...` lines.
var earlierWarnings = []string{
	`:1:13: warning: apiVersion "v1" is read as flowctl/v1`,
	`:6:11: warning: driver "dag" is accepted for compatibility and ignored`,
	`:10:7: warning: unknown field "health_endpoint" in source "gen" is ignored`,
	`:13:7: warning: sink "out" has no inputs: it reads from "gen", chained in file order as the earlier flowctl did — add "inputs: [gen]" to sink "out" at `,
}

// TestValidateEarlierFormat: validate prints the warnings with their
// positions and exits 0.
func TestValidateEarlierFormat(t *testing.T) {
	pf := writeFile(t, "earlier.yaml", earlierPipeline)
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"validate", pf}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, w := range earlierWarnings {
		if !strings.Contains(stdout.String(), pf+w) {
			t.Errorf("missing %q in:\n%s", pf+w, stdout.String())
		}
	}
	if want := pf + ": valid (2 components), 4 warnings"; !strings.Contains(stdout.String(), want) {
		t.Errorf("missing %q in:\n%s", want, stdout.String())
	}
}

// TestRunEarlierFormat runs the earlier file for real: the warnings go to
// stderr, the run does not fail, and every event reaches the chained sink.
func TestRunEarlierFormat(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "earlier.yaml")
	if err := os.WriteFile(pf, []byte(earlierPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Main([]string{"run", "-f", pf, "--grace", "5s", "--state-dir", t.TempDir()}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", code, stderr.String())
	}
	for _, w := range earlierWarnings {
		if !strings.Contains(stderr.String(), pf+w) {
			t.Errorf("missing %q in stderr:\n%s", pf+w, stderr.String())
		}
	}
	if strings.Contains(stdout.String(), "warning:") {
		t.Errorf("warnings on stdout:\n%s", stdout.String())
	}
	if got := len(readLines(t, filepath.Join(dir, "out.jsonl"))); got != 5 {
		t.Errorf("out.jsonl has %d lines, want 5\nstderr:\n%s", got, stderr.String())
	}
}
