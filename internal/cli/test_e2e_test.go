package cli

import (
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runFlowctlTest runs the real binary's `flowctl test` in dir and returns
// its output and exit status.
func runFlowctlTest(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(flowctlBinary(t), append([]string{"test"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("flowctl test: %v\n%s", err, out)
	return "", -1
}

// TestPipelineTestE2E drives `flowctl test` through the binary: the
// examples' tests pass (CI keeps them green), a failing case prints
// --- FAIL with a diff and exits 1, -run selects, --junit writes XML that
// parses back, and a broken test file exits 2.
func TestPipelineTestE2E(t *testing.T) {
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("examples pass", func(t *testing.T) {
		out, code := runFlowctlTest(t, examples, "-v")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		for _, w := range []string{"=== RUN   large payments are flagged, refunds negated", "--- PASS: every event of the data file",
			"ok  \tfanout-fanin_test.yaml\t", "ok  \tpython-stdio/pipeline_test.yaml\t"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})

	dir := t.TempDir()
	failing := filepath.Join(dir, "fail_test.yaml")
	if err := os.WriteFile(failing, []byte(`pipeline: `+filepath.Join(examples, "linear.yaml")+`
tests:
  - name: passes
    inputs:
      events: [{kind: payment, account: acme, amount: 6000}]
    expect:
      out:
        match: subset
        events: [{account: ACME, amount_cents: 600000}]
  - name: wrong amount
    inputs:
      events: [{kind: payment, account: acme, amount: 6000}, {kind: payment, account: b, amount: 1}]
    expect:
      out:
        events: [{kind: payment, account: ACME, amount: 6000, amount_cents: 1}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("failure", func(t *testing.T) {
		out, code := runFlowctlTest(t, dir)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		for _, w := range []string{"--- FAIL: wrong amount (", "    --- expected\n    +++ got\n",
			`    - {"account":"ACME","amount":6000,"amount_cents":1,"kind":"payment"}`,
			`    + {"account":"ACME","amount":6000,"amount_cents":600000,"kind":"payment"}`, "FAIL\tfail_test.yaml\t"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		if strings.Contains(out, "--- FAIL: passes") {
			t.Errorf("the passing case failed:\n%s", out)
		}
	})
	t.Run("run selects", func(t *testing.T) {
		out, code := runFlowctlTest(t, dir, "-run", "^pass", "-v")
		if code != 0 || !strings.Contains(out, "--- PASS: passes") || strings.Contains(out, "wrong amount") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("junit", func(t *testing.T) {
		report := filepath.Join(dir, "report.xml")
		_, code := runFlowctlTest(t, dir, "--junit", report, failing)
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		data, err := os.ReadFile(report)
		if err != nil {
			t.Fatal(err)
		}
		var suites struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Suites   []struct {
				Name  string `xml:"name,attr"`
				Cases []struct {
					Name    string `xml:"name,attr"`
					Failure *struct {
						Message string `xml:"message,attr"`
						Body    string `xml:",chardata"`
					} `xml:"failure"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(data, &suites); err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		if suites.Tests != 2 || suites.Failures != 1 || len(suites.Suites) != 1 || len(suites.Suites[0].Cases) != 2 {
			t.Fatalf("report:\n%s", data)
		}
		c := suites.Suites[0].Cases[1]
		if c.Name != "wrong amount" || c.Failure == nil || !strings.Contains(c.Failure.Body, "+++ got") {
			t.Errorf("failed case: %+v", c)
		}
	})
	t.Run("tests section in the pipeline file", func(t *testing.T) {
		sec := filepath.Join(dir, "section")
		if err := os.MkdirAll(sec, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sec, "pipe.yaml"), []byte(`name: pipe
sources: [{name: in, type: stdin}]
processors: [{name: big, type: filter, inputs: [in], config: {expr: "data.amount >= 10"}}]
sinks: [{name: out, type: file, inputs: [big], config: {path: out/big.jsonl}}]
tests:
  - name: the file sink gets the big ones
    inputs: {in: [{amount: 5}, {amount: 50}]}
    expect: {out: {events: [{amount: 50}]}}
`), 0o644); err != nil {
			t.Fatal(err)
		}
		out, code := runFlowctlTest(t, sec, "-v")
		if code != 0 || !strings.Contains(out, "--- PASS: the file sink gets the big ones") || !strings.Contains(out, "ok  \tpipe.yaml\t") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if _, err := os.Stat(filepath.Join(sec, "out")); !os.IsNotExist(err) {
			t.Errorf("the file sink wrote beside the pipeline (%v), not into a temporary directory", err)
		}
	})
	t.Run("usage and file errors exit 2", func(t *testing.T) {
		bad := filepath.Join(dir, "bad")
		if err := os.MkdirAll(bad, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bad, "x_test.yaml"), []byte("pipeline: x.yaml\ntests: [{name: a, inputs: {s: []}, expct: 1}]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{bad}, {"-run", "("}, {"--nope"}, {filepath.Join(dir, "missing")}, {t.TempDir()}} {
			out, code := runFlowctlTest(t, dir, args...)
			if code != 2 {
				t.Errorf("%v: exit %d, want 2:\n%s", args, code, out)
			}
		}
	})
}
