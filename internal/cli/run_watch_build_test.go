package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
)

func TestBuildTargetMatches(t *testing.T) {
	dir := filepath.FromSlash("/p/demo")
	tg := buildTarget{name: "tag", globs: []string{"tag/**/*.go", "go.mod"}}
	cases := []struct {
		file string
		want bool
	}{
		{"/p/demo/tag/main.go", true},
		{"/p/demo/tag/x/y.go", true},
		{"/p/demo/go.mod", true},
		{"/p/demo/main.go", false},
		{"/p/demo/tag/main.py", false},
		{"/p/other/tag/main.go", false},
	}
	for _, c := range cases {
		if got := tg.matches(dir, filepath.FromSlash(c.file)); got != c.want {
			t.Errorf("matches(%s) = %v, want %v", c.file, got, c.want)
		}
	}
}

// TestCheckBuilt: plain flowctl run names the missing program and the
// command that builds it, and is silent once it exists.
func TestCheckBuilt(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.yaml")
	writeFileAt(t, pf, `name: p
sources:
  - {name: gen, type: generate, config: {count: 1, data: {a: 1}}}
processors:
  - name: tag
    command: bin/tag
    protocol: stdio
    build: go build -o bin/tag ./tag
    watch: "tag/*.go"
    inputs: [gen]
sinks:
  - {name: out, type: stdout, inputs: [tag]}
`)
	pl, diags, err := spec.Load(pf, spec.Options{Registry: components.NewRegistry()})
	if err != nil || diags.HasErrors() {
		t.Fatal(err, diags)
	}
	err = checkBuilt(pl, dir)
	want := "processor \"tag\": its program bin/tag does not exist; run `flowctl run --watch`, or build it: go build -o bin/tag ./tag"
	if err == nil || err.Error() != want {
		t.Fatalf("checkBuilt = %v, want %s", err, want)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, filepath.Join(dir, "bin", "tag"), "")
	if err := checkBuilt(pl, dir); err != nil {
		t.Fatalf("checkBuilt with the program there: %v", err)
	}
}

// TestRunBuild runs real commands: output lines carry the component's
// name, and a failure says which build failed.
func TestRunBuild(t *testing.T) {
	var out bytes.Buffer
	if err := runBuild(context.Background(), &out, t.TempDir(), buildTarget{name: "tag", cmd: []string{"go", "version"}}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "tag | go version ") {
		t.Errorf("output %q, want lines prefixed with the component", out.String())
	}
	out.Reset()
	err := runBuild(context.Background(), &out, t.TempDir(), buildTarget{name: "tag", cmd: []string{"go", "nosuchgocommand"}})
	if err == nil || !strings.Contains(err.Error(), "build of tag failed") {
		t.Errorf("a failing build: %v", err)
	}
	if !strings.Contains(out.String(), "tag | ") {
		t.Errorf("the failing build's output is not shown: %q", out.String())
	}
	err = runBuild(context.Background(), &out, t.TempDir(), buildTarget{name: "tag", cmd: []string{"no-such-program-flowctl"}})
	if err == nil || !strings.Contains(err.Error(), "check the `build:` command") {
		t.Errorf("a missing build program: %v", err)
	}
}

// TestWatcherDirs: the directories --watch watches for a pipeline with
// builds — the pipeline's, its programs', each glob's root, and below a
// deep glob's root every subdirectory but hidden ones; a glob's missing
// directory is no error.
func TestWatcherDirs(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"bin", "tag/x/y", "tag/.git/objects", "flat/sub", "other"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFileAt(t, filepath.Join(dir, "bin", "tag"), "")
	pf := filepath.Join(dir, "p.yaml")
	writeFileAt(t, pf, `name: p
sources:
  - {name: gen, type: generate, config: {count: 1, data: {a: 1}}}
processors:
  - name: tag
    command: bin/tag
    protocol: stdio
    build: go build -o bin/tag ./tag
    watch: ["tag/**/*.go", "flat/*.go", "missing/*.go"]
    inputs: [gen]
sinks:
  - {name: out, type: stdout, inputs: [tag]}
`)
	pl, diags, err := spec.Load(pf, spec.Options{Registry: components.NewRegistry()})
	if err != nil || diags.HasErrors() {
		t.Fatal(err, diags)
	}
	g := &globals{stderr: &bytes.Buffer{}}
	rl := &reloader{g: g, path: pf, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	w, err := startWatcher(context.Background(), rl, pl, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.stop()
	var got []string
	for d := range w.dirs {
		rel, _ := filepath.Rel(dir, d)
		got = append(got, filepath.ToSlash(rel))
	}
	sort.Strings(got)
	want := []string{".", "bin", "flat", "tag", "tag/x", "tag/x/y"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("watched %v, want %v", got, want)
	}
	if !w.underDeep(filepath.Join(dir, "tag", "new")) || w.underDeep(filepath.Join(dir, "flat", "new")) {
		t.Error("underDeep: tag/new should be below a deep glob, flat/new not")
	}
}
