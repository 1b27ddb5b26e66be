package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// componentTestRows runs `flowctl component test` in-process and returns
// its exit code, the table's rows (check → result) and the output.
func componentTestRows(t *testing.T, args []string) (int, map[string]string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(append([]string{"component", "test", "--log-level", "error"}, args...), strings.NewReader(""), &out, &errb)
	rows := map[string]string{}
	inTable := false
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "CHECK" && f[1] == "RESULT":
			inTable = true
		case len(f) == 0:
			if len(rows) > 0 {
				inTable = false
			}
		case inTable && len(f) >= 2:
			rows[f[0]] = f[1]
			rows[f[0]+".detail"] = strings.Join(f[2:], " ")
		}
	}
	return code, rows, out.String() + errb.String()
}

// roomyTimeout gives a component that should pass 15 s per answer instead
// of the 3 s that keep the failing cases short: on a loaded machine under
// -race, Python alone may take seconds to start. A passing component
// answers at once, so the bigger bound costs nothing.
func roomyTimeout(args []string) []string {
	out := slices.Clone(args)
	for i := 0; i+1 < len(out) && out[i] != "--"; i++ {
		if out[i] == "--timeout" {
			out[i+1] = "15s"
		}
	}
	return out
}

// goBuild builds the package at dir (relative to the repository root; a
// directory with its own go.mod is built as its own module) into a
// temporary directory and returns the binary's path.
func goBuild(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	cmd := exec.Command("go", "build", "-o", bin, "./"+dir)
	cmd.Dir = filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(cmd.Dir, dir, "go.mod")); err == nil {
		cmd = exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = filepath.Join("..", "..", dir)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

// TestComponentTest runs the conformance command against both examples
// (they must pass) and against the deliberately broken fixtures of
// internal/conformance/testdata (each must fail the row its bug breaks).
// The runs mostly wait on timeouts, so they go concurrently and the
// assertions follow.
func TestComponentTest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real components")
	}
	sdkProc := goBuild(t, "examples/sdk-processor")
	broken := goBuild(t, "internal/conformance/testdata/brokengrpc")
	roles := goBuild(t, "internal/conformance/testdata/sdkroles")
	v1comp := goBuild(t, "test/v1component")
	python, err := realPython()
	if err != nil {
		t.Log("python3 not found: the stdio cases are skipped")
	}
	pyExample := filepath.Join("..", "..", "examples", "python-stdio", "processor.py")
	pyBroken := filepath.Join("..", "conformance", "testdata", "brokenstdio.py")
	pyHTTP := filepath.Join("..", "conformance", "testdata", "httpok.py")
	fast := []string{"--timeout", "3s", "--grace", "1500ms"}
	grpcArgs := func(argv ...string) []string {
		return append(append(append([]string{"--protocol", "grpc"}, fast...), "--"), argv...)
	}
	stdioArgs := func(argv ...string) []string {
		return append(append(append([]string{"--protocol", "stdio"}, fast...), "--", python), argv...)
	}
	allPass := map[string]string{"start": "pass", "info": "pass", "health": "pass", "acks": "pass",
		"drain": "pass", "restart": "pass", "credits": "pass", "sigterm": "pass"}
	stdioPass := map[string]string{"start": "pass", "info": "pass", "health": "skip", "acks": "pass",
		"drain": "pass", "restart": "pass", "credits": "pass", "sigterm": "pass"}

	cases := []struct {
		name   string
		stdio  bool
		args   []string
		code   int
		want   map[string]string // the rows asserted; all of them when exact
		exact  bool
		detail map[string]string // check → a substring of its detail
	}{
		{name: "Go SDK example passes", args: grpcArgs(sdkProc), code: 0, want: allPass, exact: true},
		{name: "Python stdio example passes", stdio: true, args: stdioArgs(pyExample), code: 0, want: stdioPass, exact: true},
		{name: "grpc control case passes", args: grpcArgs(broken, "ok"), code: 0, want: allPass, exact: true},
		{name: "flowctl.v1 component passes", args: append([]string{"--protocol", "flowctl-v1"}, append(fast, "--", v1comp)...), code: 0,
			want: map[string]string{"start": "pass", "info": "pass", "health": "pass", "acks": "pass",
				"drain": "pass", "restart": "pass", "credits": "skip", "sigterm": "pass"}, exact: true},
		{name: "Go SDK sink passes", args: append([]string{"--role", "sink"}, grpcArgs(roles, "sink")...), code: 0, want: allPass, exact: true},
		{name: "Go SDK source passes", args: append([]string{"--role", "source"}, grpcArgs(roles, "source")...), code: 0,
			want: map[string]string{"start": "pass", "info": "pass", "health": "pass", "acks": "pass",
				"drain": "pass", "restart": "pass", "credits": "skip", "sigterm": "pass"}, exact: true},
		{name: "stdio sink passes", stdio: true, args: append([]string{"--role", "sink"}, stdioArgs(pyBroken, "ok")...), code: 0,
			want: map[string]string{"start": "pass", "info": "pass", "health": "skip", "acks": "pass",
				"drain": "pass", "restart": "pass", "credits": "skip", "sigterm": "pass"}, exact: true},
		{name: "a command that exits at once", args: grpcArgs("false"), code: 1,
			want:   map[string]string{"start": "FAIL", "info": "skip", "restart": "FAIL"},
			detail: map[string]string{"start": "exit status 1"}},
		{name: "grpc acks twice", args: grpcArgs(broken, "acks-twice"), code: 1,
			want:   map[string]string{"start": "pass", "info": "pass", "acks": "FAIL"},
			detail: map[string]string{"acks": "not in flight"}},
		{name: "grpc ignores credits", args: grpcArgs(broken, "no-credit"), code: 1,
			want:   map[string]string{"acks": "pass", "drain": "pass", "credits": "FAIL"},
			detail: map[string]string{"credits": "without bound"}},
		{name: "grpc ignores SIGTERM", args: grpcArgs(broken, "ignore-term"), code: 1,
			want:   map[string]string{"acks": "pass", "drain": "FAIL", "sigterm": "FAIL"},
			detail: map[string]string{"drain": "still running", "sigterm": "still running"}},
		{name: "grpc never acks", args: grpcArgs(broken, "never-ack"), code: 1,
			want: map[string]string{"info": "pass", "acks": "FAIL", "drain": "FAIL", "restart": "FAIL"}},
		{name: "stdio control case passes", stdio: true, args: stdioArgs(pyBroken, "ok"), code: 0, want: stdioPass, exact: true},
		{name: "stdio acks twice", stdio: true, args: stdioArgs(pyBroken, "acks-twice"), code: 1,
			want: map[string]string{"info": "pass", "acks": "FAIL"}},
		{name: "stdio ignores credits", stdio: true, args: stdioArgs(pyBroken, "no-credit"), code: 1,
			want:   map[string]string{"acks": "pass", "drain": "pass", "credits": "FAIL"},
			detail: map[string]string{"credits": "without bound"}},
		{name: "stdio ignores SIGTERM", stdio: true, args: stdioArgs(pyBroken, "ignore-term"), code: 1,
			want:   map[string]string{"acks": "pass", "drain": "pass", "sigterm": "FAIL"},
			detail: map[string]string{"sigterm": "still running"}},
		{name: "http processor passes", stdio: true, args: append(append([]string{"--protocol", "http"}, fast...), "--", python, pyHTTP), code: 0,
			want: map[string]string{"start": "pass", "info": "pass", "health": "pass", "acks": "pass",
				"drain": "pass", "restart": "pass", "credits": "skip", "sigterm": "pass"}, exact: true},
		{name: "http miscounted answers", stdio: true, args: append(append([]string{"--protocol", "http"}, fast...), "--", python, pyHTTP, "miscount"), code: 1,
			want: map[string]string{"start": "pass", "info": "FAIL", "acks": "FAIL"}},
		{name: "stdio never acks", stdio: true, args: stdioArgs(pyBroken, "never-ack"), code: 1,
			want: map[string]string{"info": "FAIL", "acks": "FAIL", "drain": "FAIL"}},
	}
	type result struct {
		code int
		rows map[string]string
		out  string
	}
	results := make([]result, len(cases))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 6) // bounded: 2 cores, and -race
	for i, c := range cases {
		if c.stdio && python == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			args := c.args
			if c.code == 0 {
				args = roomyTimeout(args)
			}
			code, rows, out := componentTestRows(t, args)
			results[i] = result{code, rows, out}
		}()
	}
	wg.Wait()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.stdio && python == "" {
				t.Skip("no python3")
			}
			res := results[i]
			if res.code != c.code {
				t.Errorf("exit code %d, want %d", res.code, c.code)
			}
			for check, want := range c.want {
				if got := res.rows[check]; got != want {
					t.Errorf("row %s = %q, want %q", check, got, want)
				}
			}
			for check, sub := range c.detail {
				if got := res.rows[check+".detail"]; !strings.Contains(got, sub) {
					t.Errorf("row %s detail %q, want it to say %q", check, got, sub)
				}
			}
			if c.exact && len(res.rows) != 2*len(c.want) {
				t.Errorf("%d rows, want %d", len(res.rows), len(c.want))
			}
			if t.Failed() {
				t.Logf("output:\n%s", res.out)
			}
		})
	}
}

// TestComponentTestUsage covers the command's argument errors.
func TestComponentTestUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no dash", []string{"component", "test", "./x"}, "put the component's command after --"},
		{"bad protocol", []string{"component", "test", "--protocol", "smoke", "--", "true"}, `protocol "smoke"`},
		{"bad role", []string{"component", "test", "--role", "mixer", "--", "true"}, `role "mixer"`},
		{"bad env", []string{"component", "test", "--env", "NOEQUALS", "--", "true"}, `--env "NOEQUALS"`},
		{"bad output", []string{"component", "test", "-o", "yaml", "--", "true"}, `-o "yaml"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(c.args, strings.NewReader(""), &out, &errb)
			if code != 1 || !strings.Contains(errb.String(), c.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errb.String(), c.want)
			}
		})
	}
}

// TestComponentTestJSON checks the -o json report of a passing and a
// failing stdio component.
func TestComponentTestJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real components")
	}
	python, err := realPython()
	if err != nil {
		t.Skip("no python3")
	}
	fixture := filepath.Join("..", "conformance", "testdata", "brokenstdio.py")
	cases := []struct {
		mode     string
		code     int
		pass     bool
		failedAt string
	}{
		{"ok", 0, true, ""},
		{"ignore-term", 1, false, "sigterm"},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := []string{"component", "test", "-o", "json", "--protocol", "stdio", "--timeout", "3s", "--grace", "1s",
				"--", python, fixture, c.mode}
			if c.pass {
				args = roomyTimeout(args)
			}
			code := Main(args, strings.NewReader(""), &out, &errb)
			var rep componentTestJSON
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("not JSON: %v\n%s%s", err, out.String(), errb.String())
			}
			if code != c.code || rep.Pass != c.pass || rep.Protocol != "stdio" || rep.Role != "processor" || len(rep.Checks) != 8 {
				t.Fatalf("exit %d, report %+v", code, rep)
			}
			for _, row := range rep.Checks {
				if row.Result == "fail" && row.Check != c.failedAt {
					t.Errorf("row %s failed: %s", row.Check, row.Detail)
				}
			}
		})
	}
}

// realPython is the interpreter python3 runs, not a version manager's shim
// in front of it (pyenv's is a shell script that starts pyenv on every
// call): on a loaded machine the shim alone can take a good part of the
// 3 s these tests give a component that is meant to fail fast.
func realPython() (string, error) {
	shim, err := exec.LookPath("python3")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(shim, "-c", "import sys; print(sys.executable)").Output()
	if p := strings.TrimSpace(string(out)); err == nil && p != "" {
		return p, nil
	}
	return shim, nil
}
