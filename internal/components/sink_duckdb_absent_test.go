//go:build !(duckdb && cgo)

package components

import (
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

// A binary built without the duckdb tag still describes the sink, and
// using it says how to build one that has it.
func TestDuckDBAbsent(t *testing.T) {
	spec, err := NewRegistry().Lookup(flow.RoleSink, "duckdb")
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Fields) == 0 || spec.Delivery == "" {
		t.Errorf("the spec is not described: %+v", spec)
	}
	want := "built without DuckDB (it needs cgo): build it with `CGO_ENABLED=1 go build -tags duckdb ./cmd/flowctl`"
	if err := spec.Validate(flow.Config{"path": "x.duckdb", "table": "t"}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("validate: %v, want %q", err, want)
	}
	if _, err := spec.New(flow.BuildContext{Name: "out", Config: flow.Config{"path": "x.duckdb", "table": "t"}}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("new: %v, want %q", err, want)
	}
	if got := OptionalParts(); len(got) != 0 {
		t.Errorf("optional parts %v, want none", got)
	}
}
