package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/spec"
)

const validPipeline = `name: ok
sources:
  - name: in
    type: stdin
processors:
  - name: p
    command: [./p]
    inputs: [in]
sinks:
  - name: out
    type: stdout
    inputs: [p]
`

const invalidPipeline = `name: bad
sources:
  - name: in
    type: stdin
  - name: unused
    type: stdin
sinks:
  - name: out
    type: stdot
    inputs: [inn]
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidate(t *testing.T) {
	good := writeFile(t, "good.yaml", validPipeline)
	bad := writeFile(t, "bad.yaml", invalidPipeline)
	for _, tc := range []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  []string // lines of stdout, in order
		wantErr  string   // substring of stderr
	}{
		{name: "valid with -f", args: []string{"validate", "-f", good}, wantCode: 0,
			wantOut: []string{good + ": valid (3 components)"}},
		{name: "valid as argument", args: []string{"validate", good}, wantCode: 0,
			wantOut: []string{good + ": valid (3 components)"}},
		{name: "invalid", args: []string{"validate", "-f", bad}, wantCode: 1, wantOut: []string{
			bad + `:9:11: unknown built-in sink "stdot" — did you mean "stdout"? built-in sinks: ` + sinkNames(),
			bad + `:10:14: sink "out" reads from unknown component "inn" — did you mean "in"?`,
			bad + ": 2 errors, 0 warnings",
		}},
		{name: "stdin", args: []string{"validate", "-f", "-"}, stdin: validPipeline, wantCode: 0,
			wantOut: []string{"<stdin>: valid (3 components)"}},
		{name: "no file", args: []string{"validate"}, wantCode: 1, wantErr: "no pipeline file given"},
		{name: "missing file", args: []string{"validate", filepath.Join(t.TempDir(), "nope.yaml")}, wantCode: 1, wantErr: "no such file"},
		{name: "bad output", args: []string{"validate", "-o", "xml", good}, wantCode: 1, wantErr: `-o "xml": use text or json`},
		{name: "two files", args: []string{"validate", "-f", good, bad}, wantCode: 1, wantErr: "two pipeline files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if tc.wantOut != nil {
				want := strings.Join(tc.wantOut, "\n") + "\n"
				if stdout.String() != want {
					t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want)
				}
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.wantErr)
			}
		})
	}
}

// sinkNames lists the registered sinks as the hint does.
func sinkNames() string {
	var stdout, stderr bytes.Buffer
	Main([]string{"validate", "-o", "json", "-"}, strings.NewReader("name: x\nsinks: [{name: o, type: zzzzzzzz, inputs: [o]}]\n"), &stdout, &stderr)
	var rep struct{ Diagnostics []spec.Diagnostic }
	_ = json.Unmarshal(stdout.Bytes(), &rep)
	for _, d := range rep.Diagnostics {
		if _, list, ok := strings.Cut(d.Hint, "built-in sinks: "); ok {
			return list
		}
	}
	return "?"
}

func TestValidateJSON(t *testing.T) {
	bad := writeFile(t, "bad.yaml", invalidPipeline)
	good := writeFile(t, "good.yaml", validPipeline)
	for _, tc := range []struct {
		file      string
		wantCode  int
		wantValid bool
		wantDiags int
	}{
		{good, 0, true, 0},
		{bad, 1, false, 2},
	} {
		var stdout, stderr bytes.Buffer
		code := Main([]string{"validate", "-o", "json", "-f", tc.file}, strings.NewReader(""), &stdout, &stderr)
		if code != tc.wantCode {
			t.Errorf("%s: exit code %d, want %d", tc.file, code, tc.wantCode)
		}
		var rep struct {
			File        string            `json:"file"`
			Valid       bool              `json:"valid"`
			Diagnostics []spec.Diagnostic `json:"diagnostics"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("%s: output is not JSON: %v\n%s", tc.file, err, stdout.String())
		}
		if rep.File != tc.file || rep.Valid != tc.wantValid || len(rep.Diagnostics) != tc.wantDiags {
			t.Errorf("%s: report %+v", tc.file, rep)
		}
		if !bytes.Contains(stdout.Bytes(), []byte(`"diagnostics": [`)) {
			t.Errorf("%s: diagnostics must be a list, even when empty:\n%s", tc.file, stdout.String())
		}
		for _, d := range rep.Diagnostics {
			if d.Line == 0 || d.Col == 0 || d.Severity != spec.SevError || d.Message == "" || d.Hint == "" {
				t.Errorf("%s: incomplete diagnostic %+v", tc.file, d)
			}
		}
	}
}
