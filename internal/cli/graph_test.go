package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Other tests of this package may define -update as well (they share the
// test binary), so it is defined only when missing and read by name.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

func updateGoldenFlag() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// runFlowctl runs flowctl with args and returns its exit code and output.
func runFlowctl(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func checkGraphGolden(t *testing.T, path, got string) {
	t.Helper()
	if updateGoldenFlag() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestGraphExamples renders every example in both formats and compares
// with testdata/graph/<example>.<mmd|dot>.
func TestGraphExamples(t *testing.T) {
	examples := map[string]string{
		"quickstart":        "../../examples/quickstart/pipeline.yaml",
		"linear":            "../../examples/linear.yaml",
		"fanout-fanin":      "../../examples/fanout-fanin.yaml",
		"route":             "../../examples/route.yaml",
		"flowctl-v1-images": "../../examples/flowctl-v1-images.yaml",
	}
	for name, file := range examples {
		for _, format := range []string{"mermaid", "dot"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				code, out, errOut := runFlowctl(t, "", "graph", "-f", file, "--format", format)
				if code != 0 {
					t.Fatalf("exit %d, stderr:\n%s", code, errOut)
				}
				if errOut != "" {
					t.Errorf("unexpected stderr (warnings?):\n%s", errOut)
				}
				ext := map[string]string{"mermaid": ".mmd", "dot": ".dot"}[format]
				checkGraphGolden(t, filepath.Join("testdata", "graph", name+ext), out)
			})
		}
	}
}

func TestGraphCommand(t *testing.T) {
	const valid = "name: p\nsources:\n  - name: s\n    type: generate\n    config: {count: 1, data: {k: 1}}\nsinks:\n  - name: o\n    type: stdout\n    inputs: [s]\n"
	tests := []struct {
		name      string
		stdin     string
		args      []string
		code      int
		stdout    string // a piece of the expected output
		stderr    string // a piece of the expected error output
		noStdout  bool
		wantEmpty bool // stderr must be empty
	}{
		{
			name: "default format is mermaid", stdin: valid, args: []string{"graph", "-f", "-"},
			stdout: "flowchart LR\n    n0([\"s<br/>generate\"])\n    n1[(\"o<br/>stdout\")]\n    n0 --> n1\n", wantEmpty: true,
		},
		{
			name: "file as an argument, dot", stdin: valid, args: []string{"graph", "-", "--format", "dot"},
			stdout: "\"s\" -> \"o\";\n", wantEmpty: true,
		},
		{
			name:  "invalid file prints diagnostics and exits 1",
			stdin: "name: p\nsources:\n  - name: s\n    type: generate\n    config: {data: {k: 1}}\nsinks:\n  - name: o\n    type: stdout\n    inputs: [x]\n",
			args:  []string{"graph", "-f", "-"}, code: 1, noStdout: true,
			stderr: "<stdin>:9:14: sink \"o\" reads from unknown component \"x\"",
		},
		{
			name: "warnings go to stderr, the graph still prints", args: []string{"graph", "-f", "-"},
			stdin:  valid + "  - name: spare\n    type: drop\n    inputs: [s]\nprocessors:\n  - name: lost\n    type: filter\n    inputs: [s]\n    config: {expr: 'true'}\n",
			stdout: "flowchart LR", stderr: "warning: nothing reads the output of processor \"lost\"",
		},
		{
			name: "unknown format", stdin: valid, args: []string{"graph", "-f", "-", "--format", "svg"},
			code: 2, noStdout: true, stderr: `--format "svg": use mermaid or dot`,
		},
		{
			name: "no file", args: []string{"graph"},
			code: 2, noStdout: true, stderr: "which pipeline file? use -f FILE",
		},
		{
			name: "file twice", args: []string{"graph", "-f", "a.yaml", "b.yaml"},
			code: 2, noStdout: true, stderr: "give the pipeline file once",
		},
		{
			name: "missing file", args: []string{"graph", "-f", "testdata/does-not-exist.yaml"},
			code: 1, noStdout: true, stderr: "does-not-exist.yaml",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runFlowctl(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr: %s)", code, tt.code, errOut)
			}
			if tt.noStdout && out != "" {
				t.Errorf("stdout should be empty, got:\n%s", out)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, out)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errOut)
			}
			if tt.wantEmpty && errOut != "" {
				t.Errorf("stderr should be empty, got:\n%s", errOut)
			}
		})
	}
}
