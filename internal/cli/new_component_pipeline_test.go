package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAddComponentToYAML edits the pipelines under testdata/newcomponent
// and compares with <case>.golden.yaml (go test -update rewrites them).
func TestAddComponentToYAML(t *testing.T) {
	cases := []struct {
		name, in string
		o        newComponentOpts
		summary  string
	}{
		{"processor-after-filter", "flat.yaml", newComponentOpts{name: "enrich", lang: "python", role: "processor", protocol: "stdio", after: "large"},
			"reads from large; out, audit now read(s) from enrich instead of large"},
		{"processor-after-source", "flat.yaml", newComponentOpts{name: "tag", lang: "node", role: "processor", protocol: "http", after: "ledger"},
			"reads from ledger; large, audit now read(s) from tag instead of ledger"},
		{"sink-after-filter", "flat.yaml", newComponentOpts{name: "archive", lang: "go", role: "sink", protocol: "grpc", after: "large"},
			"reads from large"},
		{"source-to-sink", "flat.yaml", newComponentOpts{name: "ticks", lang: "go", role: "source", protocol: "stdio", to: "out"},
			"a new source; out now reads from it too"},
		{"envelope-processor", "envelope.yaml", newComponentOpts{name: "enrich", lang: "python", role: "processor", protocol: "stdio", after: "gen"},
			"reads from gen; out now read(s) from enrich instead of gen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "newcomponent", c.in))
			if err != nil {
				t.Fatal(err)
			}
			got, summary, err := addComponentToYAML(raw, c.o, "components/"+c.o.name)
			if err != nil {
				t.Fatal(err)
			}
			if summary != c.summary {
				t.Errorf("summary %q, want %q", summary, c.summary)
			}
			checkGraphGolden(t, filepath.Join("testdata", "newcomponent", c.name+".golden.yaml"), string(got))
		})
	}
}

func TestAddComponentToYAMLRefuses(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "newcomponent", "flat.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    newComponentOpts
		want string
	}{
		{"name taken", newComponentOpts{name: "large", role: "processor", lang: "python", protocol: "stdio", after: "ledger"}, `already has a component named "large" (in processors)`},
		{"after unknown", newComponentOpts{name: "x", role: "processor", lang: "python", protocol: "stdio", after: "nope"}, `--after "nope": no source or processor of that name (there are: ledger, large)`},
		{"after a sink", newComponentOpts{name: "x", role: "sink", lang: "python", protocol: "stdio", after: "out"}, `--after "out" is a sink`},
		{"to unknown", newComponentOpts{name: "x", role: "source", lang: "python", protocol: "stdio", to: "ledger"}, `--to "ledger": no processor or sink of that name (there are: large, out, audit)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := addComponentToYAML(raw, c.o, "x")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
		})
	}
}

// TestNewComponentRefuses checks the command's own errors: combinations
// not offered, and an --add-to whose result would be invalid, which
// writes nothing at all.
func TestNewComponentRefuses(t *testing.T) {
	dir := t.TempDir()
	invalid := "name: p\nsources:\n  - name: a\n    type: file\n    config: {path: in.jsonl}\nsinks:\n  - name: b\n    type: nosuchtype\n    inputs: [a]\n"
	pipeline := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(pipeline, []byte(invalid), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"python grpc", []string{"--lang", "python", "--role", "processor", "--protocol", "grpc"}, "--lang python --protocol grpc is not offered: python components speak stdio or http; the gRPC protocol is offered through the Go SDK (--lang go); stdio and http work from any language"},
		{"http source", []string{"--lang", "go", "--role", "source", "--protocol", "http"}, "flowctl's http protocol carries processors and sinks only"},
		{"no lang", []string{"--role", "sink"}, "give --lang: one of go, node, python"},
		{"bad role", []string{"--lang", "go", "--role", "filter"}, `--role "filter": use source, processor or sink`},
		{"sdk-path on python", []string{"--lang", "python", "--role", "sink", "--sdk-path", dir}, "--sdk-path is for --lang go --protocol grpc"},
		{"sdk-path not flowctl", []string{"--lang", "go", "--role", "sink", "--sdk-path", dir}, "not a checkout of flowctl"},
		{"after without add-to", []string{"--lang", "go", "--role", "sink", "--after", "a"}, "--after and --to go with --add-to"},
		{"source with after", []string{"--lang", "go", "--role", "source", "--protocol", "stdio", "--add-to", pipeline, "--after", "a"}, "give --to COMPONENT"},
		{"invalid result", []string{"--lang", "python", "--role", "processor", "--add-to", pipeline, "--after", "a"}, "would not be valid with \"comp\" added, so nothing was written"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "comp")
			code, _, stderr := runFlowctl(t, "", append([]string{"new", "component", "comp", "--dir", out}, c.args...)...)
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want an error saying %q", code, stderr, c.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("%s was written (%v); a refused command writes nothing", out, err)
			}
		})
	}
	if b, _ := os.ReadFile(pipeline); string(b) != invalid {
		t.Errorf("the pipeline file changed:\n%s", b)
	}
	// A second run into the same directory overwrites nothing.
	out := filepath.Join(dir, "twice")
	if code, _, stderr := runFlowctl(t, "", "new", "component", "twice", "--lang", "node", "--role", "sink", "--dir", out); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	code, _, stderr := runFlowctl(t, "", "new", "component", "twice", "--lang", "node", "--role", "sink", "--dir", out)
	if code == 0 || !strings.Contains(stderr, "already has main.js, main.test.js, README.md") {
		t.Fatalf("second run: exit %d, stderr %q", code, stderr)
	}
}
