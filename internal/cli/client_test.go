package cli

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// isolateClientConfig points the client config at an empty temporary file
// and clears the environment that would pick a server, so a developer's own
// config never leaks into a test.
func isolateClientConfig(t *testing.T) {
	t.Helper()
	t.Setenv("FLOWCTL_CONFIG", filepath.Join(t.TempDir(), "config.yaml"))
	for _, k := range []string{"FLOWCTL_SERVER", "FLOWCTL_CONTEXT", "FLOWCTL_TOKEN", "FLOWCTL_TLS_CA", "FLOWCTL_TLS_CERT", "FLOWCTL_TLS_KEY"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// deadAddress is a loopback address where nothing listens.
func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestNoServer checks that every command that needs a server says, in
// exactly one line, how to start one, and exits 1.
func TestNoServer(t *testing.T) {
	isolateClientConfig(t)
	addr := deadAddress(t)
	pipeline := filepath.Join("..", "..", "examples", "linear.yaml")
	cases := []struct {
		name string
		args []string
		env  bool // address from FLOWCTL_SERVER instead of --server
	}{
		{"status", []string{"status"}, false},
		{"status-env", []string{"status"}, true},
		{"get-pipelines", []string{"get", "pipelines"}, false},
		{"get-components", []string{"get", "comp"}, true},
		{"get-runs", []string{"get", "runs", "x"}, false},
		{"describe", []string{"describe", "pipeline", "x"}, false},
		{"logs", []string{"logs", "x/y", "-f"}, false},
		{"delete", []string{"delete", "pipeline", "x"}, false},
		{"apply", []string{"apply", "-f", pipeline}, false},
		{"apply-dry-run", []string{"apply", "-f", pipeline, "--dry-run"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.env {
				t.Setenv("FLOWCTL_SERVER", addr)
			} else {
				args = append(append([]string{}, args...), "--server", addr)
			}
			code, stdout, stderr := runFlowctl(t, "", args...)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			got := strings.ReplaceAll(stderr, addr, "ADDR")
			got = strings.ReplaceAll(got, os.Getenv("FLOWCTL_CONFIG"), "CONFIG")
			if strings.Count(got, "\n") != 1 {
				t.Errorf("stderr is not one line:\n%s", got)
			}
			checkGolden(t, filepath.Join("testdata", "no-server.txt"), got)
		})
	}
}

// TestApplyInvalidSendsNothing checks that a file that does not validate
// is reported with its positions and never reaches the server: there is no
// server here, yet the output is the diagnostics, not the no-server line.
func TestApplyInvalidSendsNothing(t *testing.T) {
	isolateClientConfig(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFileAt(t, bad, `name: bad
sources:
  - name: gen
    type: generate
    config: {count: ${COUNT}}
sinks:
  - name: out
    type: stdout
`)
	code, stdout, stderr := runFlowctl(t, "", "apply", "-f", bad, "--server", deadAddress(t))
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	got := strings.ReplaceAll(stderr, dir+string(filepath.Separator), "")
	checkGolden(t, filepath.Join("testdata", "apply", "invalid.txt"), got)
}

func TestExpandApplyPaths(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.yaml", "a.yml", "c.json", "notes.txt", "d.YAML"} {
		writeFileAt(t, filepath.Join(dir, f), "name: x\n")
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := expandApplyPaths([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, filepath.Base(p))
	}
	if want := "a.yml b.yaml c.json d.YAML"; strings.Join(names, " ") != want {
		t.Errorf("got %v, want %s", names, want)
	}
	if _, err := expandApplyPaths([]string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "holds no") {
		t.Errorf("empty directory: got %v", err)
	}
}

func TestHumanDuration(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{500 * time.Millisecond, "0s"},
		{45 * time.Second, "45s"},
		{119 * time.Second, "119s"},
		{200 * time.Second, "3m20s"},
		{5 * time.Minute, "5m"},
		{42 * time.Minute, "42m"},
		{5*time.Hour + 30*time.Minute, "5h30m"},
		{20 * time.Hour, "20h"},
		{76 * time.Hour, "3d4h"},
		{12 * 24 * time.Hour, "12d"},
		{800 * 24 * time.Hour, "2y"},
	}
	for _, tc := range cases {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestJSONToYAML(t *testing.T) {
	got, err := jsonToYAML([]byte(`{"name":"p","revision":"3","flag":"true","list":[{"a":1}],"empty":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `name: p
revision: "3"
flag: "true"
list:
  - a: 1
empty: {}
`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestTableAlignsAndFillsEmpty(t *testing.T) {
	var b strings.Builder
	tb := newTable(&b, "NAME", "PHASE", "AGE")
	tb.row("payments", "", "5m")
	tb.row("a", "Running", "12s")
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	want := "NAME       PHASE     AGE\npayments   <none>    5m\na          Running   12s\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

// ageRE and timeRE find the ages, durations and times in CLI output that
// mask (apply_test.go) replaces, so that golden files stay stable.
var (
	ageRE  = regexp.MustCompile(`\b(\d+[smhdy])+\b|<unknown>`)
	timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
)

func writeFileAt(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkGolden compares got with the golden file at path (-update rewrites it).
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	checkGraphGolden(t, path, got)
}
