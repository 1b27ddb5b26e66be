package cli

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitTemplates: every template makes a project that validates, whose
// pipeline tests pass, and (for the bounded ones) that flowctl run runs to
// the end, writing its output; a second init writes nothing over it.
func TestInitTemplates(t *testing.T) {
	for _, tmpl := range initTemplateNames() {
		t.Run(tmpl, func(t *testing.T) {
			if tmpl == "stellar" {
				if _, err := exec.LookPath("python3"); err != nil {
					t.Fatal("python3 is needed (.ci/run installs it):", err)
				}
			}
			dir := filepath.Join(t.TempDir(), "My Project")
			code, out, errb := runFlowctl(t, "", "init", dir, "--template", tmpl)
			if code != 0 || !strings.Contains(out, `wrote pipeline "my-project"`) {
				t.Fatalf("init: exit %d\n%s%s", code, out, errb)
			}
			for _, f := range []string{"pipeline.yaml", "pipeline_test.yaml", "README.md", ".gitignore"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("init wrote no %s: %v", f, err)
				}
			}
			pf := filepath.Join(dir, "pipeline.yaml")
			if code, out, errb := runFlowctl(t, "", "validate", "-f", pf); code != 0 {
				t.Errorf("validate: exit %d\n%s%s", code, out, errb)
			}
			if code, out, errb := runFlowctl(t, "", "test", dir); code != 0 || !strings.Contains(out, "ok") {
				t.Errorf("flowctl test: exit %d\n%s%s", code, out, errb)
			}
			if tmpl != "http-to-sqlite" { // that one serves until stopped
				if code, out, errb := runFlowctl(t, "", "run", "-f", pf, "--state-dir", t.TempDir()); code != 0 {
					t.Errorf("flowctl run: exit %d\n%s%s", code, out, errb)
				}
				if m, _ := filepath.Glob(filepath.Join(dir, "out", "*")); len(m) == 0 {
					t.Error("flowctl run wrote no output under out/")
				}
				if tmpl == "stellar" {
					checkStellarTransfers(t, filepath.Join(dir, "out", "transfers.db"))
				}
			}
			// Again: nothing is overwritten, and the error says what exists.
			before, _ := os.ReadFile(pf)
			code, _, errb = runFlowctl(t, "", "init", dir, "--template", tmpl)
			if code == 0 || !strings.Contains(errb, "pipeline.yaml") || !strings.Contains(errb, "writes nothing over an existing file") {
				t.Errorf("second init: exit %d %s", code, errb)
			}
			if after, _ := os.ReadFile(pf); string(after) != string(before) {
				t.Error("a second init changed pipeline.yaml")
			}
		})
	}
}

// TestInitRefuses: one existing file blocks the whole project; a bad
// template or name is an error naming the choices.
func TestInitRefuses(t *testing.T) {
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "README.md"), "mine\n")
	code, _, errb := runFlowctl(t, "", "init", dir, "--name", "x")
	if code == 0 || !strings.Contains(errb, "already has README.md") {
		t.Errorf("init over a README: exit %d %s", code, errb)
	}
	if _, err := os.Stat(filepath.Join(dir, "pipeline.yaml")); err == nil {
		t.Error("init wrote pipeline.yaml although it refused")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "README.md")); string(b) != "mine\n" {
		t.Error("init changed the existing README")
	}
	if code, _, errb := runFlowctl(t, "", "init", t.TempDir(), "--template", "kafka"); code == 0 || !strings.Contains(errb, `--template "kafka": use one of fanout, http-to-sqlite, linear, stellar`) {
		t.Errorf("unknown template: exit %d %s", code, errb)
	}
	if code, _, errb := runFlowctl(t, "", "init", t.TempDir(), "--name", "Bad Name!"); code == 0 || !strings.Contains(errb, "is not a pipeline name") {
		t.Errorf("bad name: exit %d %s", code, errb)
	}
}

// TestInitTemplateText: every template says what it holds (help, README).
func TestInitTemplateText(t *testing.T) {
	names := initTemplateNames()
	if len(names) != len(initTemplateText) {
		t.Errorf("templates %v, descriptions for %d", names, len(initTemplateText))
	}
	for _, n := range names {
		if initTemplateText[n] == "" {
			t.Errorf("template %q has no description in initTemplateText", n)
		}
	}
}

// checkStellarTransfers: the stellar template's run stored every movement
// of its 12 sample ledgers, by kind, as examples/stellar's processor
// computes them.
func checkStellarTransfers(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT event_type, count(*), sum(amount_stroops) FROM token_transfers GROUP BY 1 ORDER BY 1")
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var kind string
		var n, sum int64
		if err := rows.Scan(&kind, &n, &sum); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %d %d", kind, n, sum))
	}
	want := []string{"burn 1 833751501", "clawback 1 140614928", "fee 26 5200", "mint 5 152993270951", "transfer 24 44932305340"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("token_transfers by kind:\n got %v\nwant %v", got, want)
	}
}
