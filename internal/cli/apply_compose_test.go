package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/translate"
)

func TestComposeProject(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{in: "payments", want: "payments"},
		{in: "Ledger_Pipeline.v2", want: "ledger_pipelinev2"},
		{in: "fan-out", want: "fan-out"},
		{in: "...", err: "rename it"},
	} {
		got, err := composeProject(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("composeProject(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("composeProject(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct {
		in      string
		compose bool
		err     bool
	}{{"", false, false}, {"server", false, false}, {"docker-compose", true, false}, {"kubernetes", false, true}} {
		got, err := composeTarget(c.in)
		if got != c.compose || (err != nil) != c.err {
			t.Errorf("composeTarget(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestDiffFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yml"), []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "same.yml"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n := diffFiles(&out, dir, []translate.File{
		{Name: "a.yml", Data: []byte("one\n2\nthree\nfour\n")},
		{Name: "same.yml", Data: []byte("x\n")},
		{Name: "new.yml", Data: []byte("hello\n")},
		{Name: "tls/node.key", Data: []byte("secret\n")},
	})
	want := `--- a.yml (applied)
+++ a.yml (now)
+ 2
- two
+ four
+++ new.yml (new)
+ hello
+++ tls/node.key (new)
  (certificate material, not shown)
`
	if n != 3 || out.String() != want {
		t.Fatalf("diffFiles = %d\n%s\nwant 3\n%s", n, out.String(), want)
	}
}

func TestKeepExistingCerts(t *testing.T) {
	dir := t.TempDir()
	files := []translate.File{{Name: "docker-compose.yml"}, {Name: "tls/ca.crt"}, {Name: "tls/a.crt"}}
	if got := keepExistingCerts(dir, files); len(got) != 3 {
		t.Fatalf("no certificates on disk: kept %d files, want all 3", len(got))
	}
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls/ca.crt", "tls/a.crt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := keepExistingCerts(dir, files); len(got) != 1 || got[0].Name != "docker-compose.yml" {
		t.Fatalf("certificates on disk: kept %v, want the Compose file only", got)
	}
}
