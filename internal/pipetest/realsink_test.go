package pipetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRealSinks runs testdata/real_test.yaml: file, http and sqlite sinks
// write for real, redirected, and the expectations see what they wrote; a
// case whose name starts with FAILS must fail with these words.
func TestRealSinks(t *testing.T) {
	why := map[string][]string{
		"FAILS attributes of a data-format file sink": {
			`expect.lines.events[0] gives attributes, but the real file sink writes the data only`,
			`set sinks: capture`},
		"FAILS the sqlite sink stores its columns only": {
			`sink "rows": 1 event expected, got 1 event`,
			`- {"amount":20,"id":1,"note":"x"}`, `+ {"amount":20,"id":1}`},
	}
	r := RunFile(context.Background(), filepath.Join("testdata", "real_test.yaml"), Options{}, nil, nil)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if len(r.Cases) != 5 {
		t.Fatalf("ran %d cases, want 5", len(r.Cases))
	}
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
			if !strings.Contains(report, w) {
				t.Errorf("%s: report lacks %q:\n%s", c.Name, w, report)
			}
		}
	}
	// The sinks wrote into a temporary directory, not beside the pipeline.
	if _, err := os.Stat(filepath.Join("testdata", "out")); !os.IsNotExist(err) {
		t.Errorf("testdata/out exists (%v): a real sink wrote beside the pipeline", err)
		os.RemoveAll(filepath.Join("testdata", "out"))
	}
}

// TestSinksSetting: sinks: takes real or capture only, in a file or a case.
func TestSinksSetting(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"file", "pipeline: real.yaml\nsinks: fake\ntests:\n  - name: a\n    inputs: {in: [1]}\n", `sinks "fake": use real`},
		{"case", "pipeline: real.yaml\ntests:\n  - name: a\n    sinks: memory\n    inputs: {in: [1]}\n", `test "a": sinks "memory": use real`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x_test.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFile(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadFile: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestDecodeEnvelope: what the sinks write as format: envelope reads back
// as the event.
func TestDecodeEnvelope(t *testing.T) {
	for _, tc := range []struct{ name, line, data, id string }{
		{"json", `{"specversion":"1.0","id":"a","source":"s","type":"t","datacontenttype":"application/json","k":"v","data":{"x":1}}`, `{"x":1}`, "a"},
		{"text", `{"specversion":"1.0","id":"b","source":"s","type":"t","datacontenttype":"text/plain","data":"hi there"}`, `hi there`, "b"},
		{"base64", `{"specversion":"1.0","id":"c","source":"s","type":"t","datacontenttype":"application/octet-stream","data_base64":"/w=="}`, "\xff", "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := decodeEnvelope([]byte(tc.line))
			if err != nil {
				t.Fatal(err)
			}
			if string(ev.Data) != tc.data || ev.ID != tc.id || ev.Type != "t" || ev.Source != "s" {
				t.Errorf("got id %q type %q source %q data %q, want id %q data %q", ev.ID, ev.Type, ev.Source, ev.Data, tc.id, tc.data)
			}
		})
	}
	ev, _ := decodeEnvelope([]byte(`{"id":"a","k":"v","data":1}`))
	if ev.Metadata["k"] != "v" {
		t.Errorf("metadata: got %v, want k=v", ev.Metadata)
	}
	if _, err := decodeEnvelope([]byte(`not json`)); err == nil {
		t.Error("decodeEnvelope(not json): no error")
	}
}

// TestTestsSection: a pipeline file with a top-level tests: section is a
// test file of itself; Find picks it up in a directory.
func TestTestsSection(t *testing.T) {
	r := RunFile(context.Background(), filepath.Join("testdata", "inline.yaml"), Options{}, nil, nil)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if len(r.Cases) != 2 {
		t.Fatalf("ran %d cases, want 2", len(r.Cases))
	}
	if c := r.Cases[0]; !c.Passed || c.Line != 17 {
		t.Errorf("%s: passed %v at line %d, want a pass at line 17:\n%s", c.Name, c.Passed, c.Line, strings.Join(c.Failures, "\n"))
	}
	if c := r.Cases[1]; c.Passed || !strings.Contains(strings.Join(c.Failures, "\n"), `- {"amount":51}`) {
		t.Errorf("%s: passed %v, want a failure with the diff:\n%s", c.Name, c.Passed, strings.Join(c.Failures, "\n"))
	}

	files, err := Find([]string{"testdata"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"testdata/inline.yaml", "testdata/pipe_test.yaml", "testdata/py_test.yaml", "testdata/real_test.yaml"}
	for i := range want {
		want[i] = filepath.FromSlash(want[i])
	}
	if strings.Join(files, ",") != strings.Join(want, ",") {
		t.Errorf("Find(testdata) = %v, want %v", files, want)
	}
}

// TestTestsSectionErrors: the cases of a tests: section are checked as
// strictly as in a test file, with the pipeline file's lines.
func TestTestsSectionErrors(t *testing.T) {
	const head = "name: p\nsources: [{name: in, type: stdin}]\nsinks: [{name: out, type: stdout, inputs: [in]}]\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"misspelt key", head + "tests:\n  - name: a\n    inputs: {in: [1]}\n    expct: {out: {count: 1}}\n", `p.yaml:7:5: unknown field "expct" in test "a" — did you mean "expect"?`},
		{"no section", head, "p.yaml: no tests: section: add the cases under tests: at the top of the pipeline file, or write them in p_test.yaml"},
		{"no name", head + "tests:\n  - inputs: {in: [1]}\n", "p.yaml:5: tests[0] has no name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFile(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadFile: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
