//go:build !(duckdb && cgo)

package cli

import (
	"github.com/flowctl/flowctl/internal/components"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDuckDBAbsentE2E: the default binary validating a pipeline with a
// duckdb sink says, at the sink's line, how to build a flowctl that has
// it; and version says it has no optional part.
func TestDuckDBAbsentE2E(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`name: dd
sources:
  - {name: in, type: generate, config: {data: {kind: ping}}}
sinks:
  - name: store
    type: duckdb
    inputs: [in]
    config: {path: events.duckdb, table: events}
`), 0o644)
	out, err := exec.Command(bin, "validate", "-f", pf).CombinedOutput()
	if err == nil {
		t.Fatalf("validate passed:\n%s", out)
	}
	want := "built without DuckDB (it needs cgo): build it with `CGO_ENABLED=1 go build -tags duckdb ./cmd/flowctl`"
	// At the sink's config (line 8), and nothing else is wrong: no hint
	// about the fields, which are not what is wrong.
	if !strings.Contains(string(out), pf+":8:") || !strings.Contains(string(out), want) || strings.Count(string(out), "\n") != 2 ||
		strings.Contains(string(out), "lists the fields") {
		t.Fatalf("validate said:\n%s\nwant %s:8:COL: ... %s", out, pf, want)
	}
	out, err = exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\noptional: none ("+components.OptionalHint+")\n") {
		t.Fatalf("version: %v\n%s", err, out)
	}
}
