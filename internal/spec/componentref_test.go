package spec_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/flowctl/flowctl/internal/spec"
)

// TestComponentRefRunner: a `type:` written as a component reference,
// without image or command, runs as a process resolved at start; next to
// command in the envelope it stays a free label.
func TestComponentRefRunner(t *testing.T) {
	cases := []struct {
		dir  string
		want map[string]string // component → Ref ("" = not a reference)
	}{
		{dir: "component-ref", want: map[string]string{"gen": "", "enrich": "acme/enrich@v1.2.0", "out": "ghcr.io/acme/json-sink:v2"}},
		{dir: "component-ref-v1", want: map[string]string{"stellar-source": "stellar-live-source@v1.0.0", "label": "", "duckdb": "duckdb-consumer@v1.0.0"}},
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "valid", tc.dir, "pipeline.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			pl, diags := spec.Parse("pipeline.yaml", data, options(t))
			if diags.HasErrors() {
				t.Fatal(diags.Err())
			}
			for name, ref := range tc.want {
				c := pl.Component(name)
				if c == nil {
					t.Fatalf("no component %q", name)
				}
				if c.Ref != ref {
					t.Errorf("%s: Ref = %q, want %q", name, c.Ref, ref)
				}
				if ref != "" && (c.Runner != spec.RunProcess || len(c.Command) != 0 || c.Protocol == "") {
					t.Errorf("%s: runner %q, command %q, protocol %q; want a process to resolve, with a protocol", name, c.Runner, c.Command, c.Protocol)
				}
			}
			if c := pl.Component("enrich"); c != nil && (c.Protocol != "grpc" || len(c.Args) != 1) {
				t.Errorf("enrich: protocol %q, args %q", c.Protocol, c.Args)
			}
		})
	}
}
