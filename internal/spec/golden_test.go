package spec_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the want.txt golden files")

// testEnv is the environment every golden case sees, so that `${VAR}`
// cases do not depend on the machine.
var testEnv = map[string]string{
	"OUT_DIR":   "/var/out",
	"BATCH":     "64",
	"LEVEL":     "info",
	"EMPTY_VAR": "",
}

// options are the Parse options of the golden cases: the real built-ins
// and a fixed environment.
func options(t testing.TB) spec.Options {
	return spec.Options{
		Registry: registry(t),
		LookupEnv: func(k string) (string, bool) {
			v, ok := testEnv[k]
			return v, ok
		},
	}
}

// registry returns the real registry of built-ins.
func registry(t testing.TB) *flow.Registry {
	t.Helper()
	return components.NewRegistry()
}

// caseFile finds the pipeline file of a case directory.
func caseFile(t testing.TB, dir string) string {
	t.Helper()
	for _, name := range []string{"pipeline.yaml", "pipeline.yml", "pipeline.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return name
		}
	}
	t.Fatalf("%s holds no pipeline.yaml or pipeline.json", dir)
	return ""
}

// TestGolden parses every case under testdata/valid and testdata/invalid
// and compares the diagnostics with want.txt. Valid cases may hold
// warnings but no error; invalid cases hold at least one error.
func TestGolden(t *testing.T) {
	for _, kind := range []string{"valid", "invalid"} {
		dirs, err := filepath.Glob(filepath.Join("testdata", kind, "*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(dirs) == 0 {
			t.Fatalf("no cases under testdata/%s", kind)
		}
		for _, dir := range dirs {
			t.Run(kind+"/"+filepath.Base(dir), func(t *testing.T) {
				name := caseFile(t, dir)
				data, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				pl, diags := spec.Parse(name, data, options(t))
				var b strings.Builder
				for _, d := range diags {
					b.WriteString(d.String())
					b.WriteByte('\n')
				}
				got := b.String()
				wantPath := filepath.Join(dir, "want.txt")
				if *update {
					if err := os.WriteFile(wantPath, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(wantPath)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if got != string(want) {
					t.Errorf("diagnostics differ from %s\n--- got\n%s--- want\n%s", wantPath, got, want)
				}
				switch kind {
				case "valid":
					if diags.HasErrors() {
						t.Errorf("a valid case has errors:\n%s", got)
					}
					if pl == nil || len(pl.Components()) == 0 {
						t.Errorf("a valid case gave no usable pipeline")
					}
				case "invalid":
					if !diags.HasErrors() {
						t.Errorf("an invalid case has no error")
					}
				}
			})
		}
	}
}
