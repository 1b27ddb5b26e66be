package pipetest

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPipelineTestRunner runs testdata/pipe_test.yaml: a case whose name
// starts with FAILS must fail, with these words in its report; the others
// must pass.
func TestPipelineTestRunner(t *testing.T) {
	why := map[string][]string{
		"FAILS exact diff": {`sink "out": 2 events expected, got 2 events (match exact, in order)`,
			`- {"amount":31,"tag":"big"}`, `+ {"amount":30,"tag":"big"}`, `  {"amount":20,"tag":"big"}`},
		"FAILS order":                   {"in order", `- {"amount":30,"tag":"big"}`},
		"FAILS where and count":         {"count: want 3, got 2", `where "data.amount < 25": 1 of 2 events`},
		"FAILS unexpected dead letter":  {`+ unexpected: component "big"`, `{"name":"x"}`},
		"FAILS missing dead letter":     {`- missing: reason "boom"`},
		"FAILS unused source":           {`source "other" has no inputs in the test`},
		"FAILS unknown sink and source": {`inputs.nope: the pipeline has no source "nope"`, `expect.nosink: the pipeline has no sink "nosink"`},
	}
	r := RunFile(context.Background(), filepath.Join("testdata", "pipe_test.yaml"), Options{}, nil, nil)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if len(r.Cases) != 12 {
		t.Fatalf("ran %d cases, want 12", len(r.Cases))
	}
	seen := 0
	for _, c := range r.Cases {
		report := strings.Join(c.Failures, "\n")
		wantFail := strings.HasPrefix(c.Name, "FAILS")
		switch {
		case wantFail && c.Passed:
			t.Errorf("%s: passed, want a failure", c.Name)
		case !wantFail && !c.Passed:
			t.Errorf("%s: failed:\n%s\n%s", c.Name, report, c.Output)
		}
		for _, w := range why[c.Name] {
			seen++
			if !strings.Contains(report, w) {
				t.Errorf("%s: report lacks %q:\n%s", c.Name, w, report)
			}
		}
	}
	if seen == 0 {
		t.Error("no failure report checked")
	}
}

// TestPipelineTestRun: -run selects cases by name.
func TestPipelineTestRun(t *testing.T) {
	var started []string
	r := RunFile(context.Background(), filepath.Join("testdata", "pipe_test.yaml"),
		Options{Run: regexp.MustCompile("^exact|dead letters")}, func(n string) { started = append(started, n) }, nil)
	if got := strings.Join(started, ","); got != "exact in order,dead letters by reason and data" {
		t.Errorf("started %q", got)
	}
	if r.Failed() {
		t.Errorf("failed: %+v", r)
	}
}

// TestPipelineTestExternal runs a case over a Python stdio processor: the
// component really runs, from the pipeline file's directory.
func TestPipelineTestExternal(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	r := RunFile(context.Background(), filepath.Join("testdata", "py_test.yaml"), Options{}, nil, nil)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	for _, c := range r.Cases {
		if !c.Passed {
			t.Errorf("%s failed:\n%s\n%s", c.Name, strings.Join(c.Failures, "\n"), c.Output)
		}
	}
	if _, err := os.Stat(filepath.Join("testdata", "out")); err == nil {
		t.Error("the file sink wrote testdata/out: sinks must be captured")
	}
}

// TestPipelineTestFileErrors: a test file that cannot be used is an error
// of the file, with its place.
func TestPipelineTestFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, text, want string }{
		{"misspelt key", "pipeline: p.yaml\ntests:\n  - name: x\n    inputs: {in: []}\n    expct: {}\n",
			`misspelt_key_test.yaml:5:5: unknown field "expct" in test "x" — did you mean "expect"?`},
		{"misspelt top key", "pipline: p.yaml\ntests:\n  - name: x\n    inputs: {in: []}\n",
			`misspelt_top_key_test.yaml:1:1: unknown field "pipline" in the test file — did you mean "pipeline"?`},
		{"misspelt expect key", "pipeline: p.yaml\ntests:\n  - name: x\n    inputs: {in: []}\n    expect:\n      out: {evnts: [], count: 1}\n",
			`misspelt_expect_key_test.yaml:6:13: unknown field "evnts" in expect.out of test "x" — did you mean "events"?`},
		{"misspelt dead letter key", "pipeline: p.yaml\ntests:\n  - name: x\n    inputs: {in: []}\n    dead_letters:\n      - {reson: bad}\n",
			`misspelt_dead_letter_key_test.yaml:6:10: unknown field "reson" in dead_letters[0] of test "x" — did you mean "reason"?`},
		{"every misspelt key at once", "pipeline: p.yaml\ntests:\n  - name: x\n    inputs: {in: []}\n    expct: {}\n  - name: y\n    inputs: {in: []}\n    zzz: 1\n",
			`every_misspelt_key_at_once_test.yaml:8:5: unknown field "zzz" in test "y" — known fields: name, inputs, unused_sources, expect, dead_letters, timeout, sinks`},
		{"misspelt key in a pipeline file", "name: p\nsources: []\ntests:\n  - name: x\n    inputs: {in: []}\n    expct: {}\n",
			`misspelt_key_in_a_pipeline_file.yaml:6:5: unknown field "expct" in test "x" — did you mean "expect"?`},
		{"no pipeline", "tests:\n  - name: x\n    inputs: {in: []}\n", "no pipeline"},
		{"no tests", "pipeline: p.yaml\n", "no tests"},
		{"duplicate", "pipeline: p.yaml\ntests:\n  - {name: x, inputs: {in: []}}\n  - {name: x, inputs: {in: []}}\n", `:4: two tests are named "x"`},
		{"bad match", "pipeline: p.yaml\ntests:\n  - {name: x, inputs: {in: []}, expect: {out: {match: some, count: 1}}}\n", `match "some": use exact or subset`},
		{"bad timeout", "pipeline: p.yaml\ntests:\n  - {name: x, inputs: {in: []}, timeout: soon}\n", `_test.yaml:3:42: timeout "soon" is not a positive duration — write one such as 30s`},
		{"wrong type", "pipeline: p.yaml\ntests:\n  - name: x\n    inputs: {in: []}\n    expect:\n      out: {count: many}\n",
			"wrong_type_test.yaml:6:20: `many` is not a whole number — write a whole number there"},
		{"bad input", "pipeline: p.yaml\ntests:\n  - {name: x, inputs: {in: {path: a}}}\n", "a list of events or {file: PATH.jsonl}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+"_test.yaml")
			if strings.HasSuffix(tc.name, "pipeline file") { // its tests: section
				path = strings.TrimSuffix(path, "_test.yaml") + ".yaml"
			}
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFile(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPipelineTestFind: directories are walked for *_test.yaml, .git and
// .flowctl skipped; files are taken as given.
func TestPipelineTestFind(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a_test.yaml", "sub/b_test.yml", "sub/c.yaml", ".git/d_test.yaml", ".flowctl/e_test.yaml"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Find([]string{dir, filepath.Join(dir, "sub", "c.yaml"), filepath.Join(dir, "a_test.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a_test.yaml"), filepath.Join(dir, "sub", "b_test.yml"), filepath.Join(dir, "sub", "c.yaml")}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestPipelineTestReporters: the text report in go test's style and JUnit
// XML that parses back.
func TestPipelineTestReporters(t *testing.T) {
	res := []FileResult{
		{Path: "a_test.yaml", Cases: []CaseResult{
			{Name: "good", Passed: true},
			{Name: "bad", Failures: []string{"sink \"out\": differ", "--- expected\n+++ got"}, Output: "log line"},
		}},
		{Path: "b_test.yaml", Cases: []CaseResult{{Name: "good", Passed: true}}},
		{Path: "c_test.yaml", Err: os.ErrNotExist},
	}
	var b bytes.Buffer
	rep := &TextReporter{W: &b, Verbose: true}
	for _, f := range res {
		for _, c := range f.Cases {
			rep.Start(c.Name)
			rep.Case(c)
		}
		rep.File(f)
	}
	for _, w := range []string{"=== RUN   good\n--- PASS: good (0.00s)\n", "--- FAIL: bad (0.00s)\n    sink \"out\": differ\n    --- expected\n    +++ got\n    output:\n        log line\n",
		"FAIL\nFAIL\ta_test.yaml\t0.00s\n", "PASS\nok  \tb_test.yaml\t0.00s\n", "FAIL\tc_test.yaml [setup failed]\n"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("text report lacks %q:\n%s", w, b.String())
		}
	}
	b.Reset()
	if err := WriteJUnit(&b, res); err != nil {
		t.Fatal(err)
	}
	var back junitSuites
	if err := xml.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if back.Tests != 4 || back.Failures != 1 || back.Errors != 1 || len(back.Suites) != 3 {
		t.Fatalf("totals %+v", back)
	}
	bad := back.Suites[0].Cases[1]
	if bad.Name != "bad" || bad.Failure == nil || bad.Failure.Message != `sink "out": differ` || !strings.Contains(bad.Failure.Body, "+++ got") {
		t.Errorf("failed case %+v", bad)
	}
}
