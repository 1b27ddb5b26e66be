package spec_test

import (
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/spec"
)

// TestTestsSection: a pipeline file may carry its flowctl test cases under
// a top-level tests: key, in the flat and the envelope form; the parser
// checks only that it is a list of mappings, with positions.
func TestTestsSection(t *testing.T) {
	const flat = "name: p\nsources: [{name: g, type: gen, config: {count: 3}}]\nsinks: [{name: out, type: discard, inputs: [g]}]\n"
	const envelope = "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  sources: [{id: g, type: gen, config: {count: 3}}]\n  sinks: [{id: out, type: discard, inputs: [g]}]\n"
	for _, tc := range []struct {
		name, src, want string
	}{
		{"flat", flat + "tests:\n  - name: a\n    inputs: {g: [1]}\n    expect: {out: {count: 1}}\n", ""},
		{"flat, empty", flat + "tests:\n", ""},
		{"envelope", envelope + "tests:\n  - name: a\n    inputs: {g: [1]}\n", ""},
		{"flat, not a list", flat + "tests: {name: a}\n", "p.yaml:4:8: tests must be a list of test cases, got a mapping"},
		{"flat, a case not a mapping", flat + "tests:\n  - a\n", "p.yaml:5:5: tests[0] must be a test case"},
		{"envelope, not a list", envelope + "tests: yes\n", "p.yaml:7:8: tests must be a list of test cases"},
		{"envelope, under spec", strings.Replace(envelope, "spec:\n", "spec:\n  tests: []\n", 1), "tests: goes at the top of the file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl, diags := spec.Parse("p.yaml", []byte(tc.src), spec.Options{Registry: hookRegistry()})
			if tc.want == "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected errors:\n%v", diags.Err())
				}
				if pl.Component("g") == nil || pl.Component("out") == nil {
					t.Fatal("the pipeline beside tests: was not read")
				}
				return
			}
			if !diags.HasErrors() || !strings.Contains(diags.Err().Error(), tc.want) {
				t.Fatalf("diagnostics %v, want an error with %q", diags.Err(), tc.want)
			}
		})
	}
}
