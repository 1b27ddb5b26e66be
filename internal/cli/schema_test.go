package cli

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
)

// TestSchemaCommand: `flowctl schema` prints exactly spec.Schema of the
// built-ins (whose content is golden-tested in package spec), as JSON.
func TestSchemaCommand(t *testing.T) {
	code, out, errOut := runFlowctl(t, "", "schema")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	want, err := spec.Schema(components.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(out), want) {
		t.Error("flowctl schema differs from spec.Schema(components.NewRegistry())")
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if doc["$schema"] != spec.SchemaDialect {
		t.Errorf("$schema = %v", doc["$schema"])
	}
	if code, _, errOut := runFlowctl(t, "", "schema", "extra"); code == 0 {
		t.Errorf("schema with an argument succeeded (stderr %q)", errOut)
	}
}
