package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool returns the path of an interpreter the skeletons need. .ci/run
// installs python3 and node, so under CI=true a missing one fails the test;
// elsewhere it skips, saying why.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed, but .ci/run installs it: %v", name, err)
		}
		t.Skipf("%s is not installed: %v", name, err)
	}
	return p
}

// repoRoot is the flowctl checkout these tests run in (for --sdk-path).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// runIn runs a command in dir, bounded by a deadline, and fails the test
// with its output when it fails.
func runIn(t *testing.T, dir string, env []string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s%s", name, strings.Join(args, " "), dir, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String() + stderr.String()
}

// runStdout is runIn's stdout alone.
func runStdout(t *testing.T, dir string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s%s", name, strings.Join(args, " "), dir, err, out, stderr.Bytes())
	}
	return string(out)
}

// TestNewComponentEveryCombination writes every skeleton flowctl new
// component offers, runs its own unit test, builds it (Go), and requires
// flowctl component test to pass on the command its README gives.
func TestNewComponentEveryCombination(t *testing.T) {
	bin := flowctlBinary(t)
	root := repoRoot(t)
	type combo struct{ lang, protocol, role string }
	var combos []combo
	for _, lang := range []string{"go", "python", "node"} {
		for _, p := range componentLangs[lang].protocols {
			for _, r := range []string{"processor", "sink", "source"} {
				if r == "source" && p == "http" {
					continue
				}
				combos = append(combos, combo{lang, p, r})
			}
		}
	}
	if len(combos) != 18 {
		t.Fatalf("%d combinations, want 18: update this test with what new component offers", len(combos))
	}
	for _, c := range combos {
		t.Run(c.lang+"-"+c.protocol+"-"+c.role, func(t *testing.T) {
			t.Parallel()
			switch c.lang {
			case "python":
				needTool(t, "python3")
			case "node":
				needTool(t, "node")
			}
			name := "my-" + c.role
			dir := filepath.Join(t.TempDir(), name)
			args := []string{"new", "component", name, "--lang", c.lang, "--role", c.role, "--protocol", c.protocol, "--dir", dir}
			if c.lang == "go" && c.protocol == "grpc" {
				args = append(args, "--sdk-path", root)
			}
			runIn(t, ".", nil, time.Minute, bin, args...)
			readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			// The check command is taken from the README, as a user would.
			want := "flowctl component test --protocol " + c.protocol + " --role " + c.role + " -- "
			var check []string
			sc := bufio.NewScanner(bytes.NewReader(readme))
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), want) {
					check = strings.Fields(sc.Text())[1:]
				}
			}
			if check == nil {
				t.Fatalf("README.md has no line %q...:\n%s", want, readme)
			}
			switch c.lang {
			case "go":
				env := []string{"GOFLAGS=-mod=mod"}
				if c.protocol == "grpc" {
					runIn(t, dir, env, 3*time.Minute, "go", "mod", "tidy")
				}
				runIn(t, dir, env, 3*time.Minute, "go", "test", "-count=1", "./...")
				runIn(t, dir, env, 3*time.Minute, "go", "build", "-o", name, ".")
			case "python":
				out := runIn(t, dir, nil, time.Minute, "python3", "-m", "unittest", "-v")
				if !strings.Contains(out, "OK") {
					t.Fatalf("python3 -m unittest did not say OK:\n%s", out)
				}
			case "node":
				out := runIn(t, dir, nil, time.Minute, "node", "--test")
				if !strings.Contains(out, "# fail 0") || strings.Contains(out, "# pass 0") {
					t.Fatalf("node --test did not pass every test:\n%s", out)
				}
			}
			dash := 0
			for dash < len(check) && check[dash] != "--" {
				dash++
			}
			// A sink writes where OUT_FILE says: what it wrote is checked too.
			outFile := filepath.Join(t.TempDir(), "out.jsonl")
			args = append(append(append([]string{}, check[:dash]...), "-o", "json", "--env", "OUT_FILE="+outFile), check[dash:]...)
			out := runStdout(t, dir, 2*time.Minute, bin, args...)
			var rep componentTestJSON
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("component test -o json: %v\n%s", err, out)
			}
			if !rep.Pass || rep.Role != c.role || rep.Protocol != c.protocol {
				t.Fatalf("component test: %+v", rep)
			}
			if c.role == "sink" {
				b, err := os.ReadFile(outFile)
				if err != nil {
					t.Fatalf("the sink wrote no OUT_FILE: %v", err)
				}
				if n := bytes.Count(b, []byte("\n")); n < 32 {
					t.Fatalf("the sink wrote %d lines to OUT_FILE, want at least the 32 events of the acks check", n)
				}
			}
		})
	}
}

// TestNewComponentAddToRuns adds a python processor to a small pipeline
// with --add-to, then validates and runs the pipeline: every event reaches
// the sink through the new component.
func TestNewComponentAddToRuns(t *testing.T) {
	bin := flowctlBinary(t)
	needTool(t, "python3")
	dir := t.TempDir()
	pipeline := `# a small pipeline
name: small
sources:
  - name: events
    type: file
    config: {path: events.jsonl}
sinks:
  - name: out
    type: file
    inputs: [events]   # rewired by --add-to
    config: {path: out.jsonl}
`
	if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "events.jsonl"), []byte("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runIn(t, dir, nil, time.Minute, bin, "new", "component", "enrich", "--lang", "python", "--role", "processor", "--add-to", "pipeline.yaml", "--after", "events")
	if !strings.Contains(out, "out now read(s) from enrich instead of events") {
		t.Errorf("new component did not say what it rewired:\n%s", out)
	}
	edited, _ := os.ReadFile(filepath.Join(dir, "pipeline.yaml"))
	if !strings.Contains(string(edited), "# rewired by --add-to") || !strings.Contains(string(edited), "# a small pipeline") {
		t.Errorf("comments were lost:\n%s", edited)
	}
	runIn(t, dir, nil, time.Minute, bin, "validate", "-f", "pipeline.yaml")
	runIn(t, dir, nil, 2*time.Minute, bin, "run", "-f", "pipeline.yaml")
	got, err := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) != 3 {
		t.Fatalf("out.jsonl has %d lines, want 3:\n%s", len(lines), got)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["processed_by"] != "enrich" {
			t.Errorf("line %s did not go through enrich (%v)", l, err)
		}
	}
}
