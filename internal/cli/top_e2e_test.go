package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tmux drives a terminal program in a detached session on a server of its
// own (-L), as a user at a terminal would.
type tmux struct {
	t      *testing.T
	socket string
}

func startTmux(t *testing.T, width, height int, env []string, argv ...string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is needed (.ci/run installs it):", err)
		}
		t.Skip("tmux is not installed: the terminal UI test needs it")
	}
	m := &tmux{t: t, socket: fmt.Sprintf("flowctl-test-%d", time.Now().UnixNano())}
	cmd := append([]string{"env"}, env...)
	cmd = append(cmd, argv...)
	args := []string{"-L", m.socket, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), strings.Join(quoteAll(cmd), " ")}
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "-L", m.socket, "kill-server").Run() })
	return m
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

// screen is what the pane shows now.
func (m *tmux) screen() string {
	out, err := exec.Command("tmux", "-L", m.socket, "capture-pane", "-p", "-t", "t").CombinedOutput()
	if err != nil {
		return "capture-pane: " + err.Error() + ": " + string(out)
	}
	return string(out)
}

func (m *tmux) keys(keys ...string) {
	m.t.Helper()
	args := append([]string{"-L", m.socket, "send-keys", "-t", "t"}, keys...)
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		m.t.Fatalf("tmux send-keys %v: %v\n%s", keys, err, out)
	}
}

// waitScreen waits until ok holds for the screen.
func (m *tmux) waitScreen(what string, timeout time.Duration, ok func(string) bool) string {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := m.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("waited %s for %s; the screen:\n%s", timeout, what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rowRate reads the IN/S or OUT/S column of a component's row.
func rowField(screen, component string, field int) string {
	for _, l := range strings.Split(screen, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "> "))
		if len(f) > field && f[0] == component {
			return f[field]
		}
	}
	return ""
}

// TestTopUnderTmux runs `flowctl top` in a real terminal (tmux) against a
// running `flowctl run`: a row per component with moving rates, sorting,
// the tap pane of the selected component, and quitting.
func TestTopUnderTmux(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed (.ci/run installs it):", err)
	}
	isolateClientConfig(t)
	bin := flowctlBinary(t)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "upper.py"), upperProcessor)
	pf := filepath.Join(dir, "topdemo.yaml")
	writeFileAt(t, pf, `name: topdemo
sources:
  - name: gen
    type: generate
    config: {rate: 200, expr: '{"n": i}'}
processors:
  - name: evens
    type: filter
    inputs: [gen]
    config: {expr: "data.n % 2 == 0"}
  - name: upper
    command: [python3, upper.py]
    protocol: stdio
    inputs: [evens]
sinks:
  - name: out
    type: file
    inputs: [upper]
    config: {path: out.jsonl}
`)
	state := os.Getenv("XDG_STATE_HOME")
	sock := filepath.Join(state, "flowctl", "runs", "topdemo.sock")
	run := exec.Command(bin, "run", "-f", pf, "--state-dir", t.TempDir())
	var stderr bytes.Buffer
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		run.Process.Signal(syscall.SIGINT)
		run.Wait()
	}()
	waitFor(t, 30*time.Second, "the run's socket", func() bool { _, err := os.Stat(sock); return err == nil })

	// --once: the table for scripts.
	code, once, errb := runFlowctl(t, "", "top", "topdemo", "--once", "--interval", "500ms")
	if code != 0 || rowField(once, "gen", 1) != "source" || rowField(once, "out", 1) != "sink" {
		t.Fatalf("top --once: exit %d\n%s%s", code, once, errb)
	}

	m := startTmux(t, 160, 45, []string{"XDG_STATE_HOME=" + state, "TERM=xterm-256color"}, bin, "top", "topdemo")
	// Every component has a row, and the source's rate is positive.
	s := m.waitScreen("a row per component with the source's rate", 30*time.Second, func(s string) bool {
		for _, c := range []string{"gen", "evens", "upper", "out"} {
			if rowField(s, c, 0) == "" {
				return false
			}
		}
		r, err := strconv.ParseFloat(rowField(s, "gen", 4), 64)
		return err == nil && r > 0
	})
	first := rowField(s, "out", 3)
	if !strings.Contains(s, "flowctl top topdemo") || !strings.Contains(s, "IN/S") || !strings.Contains(s, "RESTARTS") {
		t.Errorf("header missing:\n%s", s)
	}
	// The sink's rate moves: it reads something above zero.
	m.waitScreen("the sink's rate above zero", 30*time.Second, func(s string) bool {
		r, err := strconv.ParseFloat(rowField(s, "out", 3), 64)
		return err == nil && r > 0
	})
	_ = first

	// s sorts: by in/s next.
	m.keys("s")
	m.waitScreen("sorted by in/s", 10*time.Second, func(s string) bool { return strings.Contains(s, "sorted by in/s") })

	// Select upper and open its tap: its output events, with the field
	// the Python processor adds.
	// One key at a time: keys typed together arrive as one.
	for _, next := range topSorts[2:] {
		m.keys("s")
		m.waitScreen("sorted by "+next, 10*time.Second, func(s string) bool { return strings.Contains(s, "sorted by "+next) })
	}
	m.keys("s")
	m.waitScreen("pipeline order", 10*time.Second, func(s string) bool { return strings.Contains(s, "sorted by pipeline order") })
	for _, want := range []string{"> evens", "> upper"} {
		m.keys("Down")
		m.waitScreen(want, 10*time.Second, func(s string) bool { return strings.Contains(s, want) })
	}
	m.keys("t")
	m.waitScreen("the tap pane of upper with events", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "tap of upper:") && strings.Contains(s, "upper:out id=") && strings.Contains(s, `"seen":true`)
	})
	// Logs of a local run live in its own terminal: the pane says so.
	m.keys("l")
	m.waitScreen("the logs note", 10*time.Second, func(s string) bool {
		return strings.Contains(s, "logs of upper:") && strings.Contains(s, "in the terminal that runs it")
	})
	m.keys("q")
	m.waitScreen("top to quit", 10*time.Second, func(s string) bool { return !strings.Contains(s, "flowctl top topdemo") })
}

// TestTopNeedsATerminal: top without a terminal (a pipe, a script) says to
// use --once, exit 1, and writes no screen-control codes into the pipe;
// --once prints the table there.
func TestTopNeedsATerminal(t *testing.T) {
	isolateClientConfig(t)
	bin := flowctlBinary(t)
	dir := t.TempDir()
	pf := filepath.Join(dir, "toppipe.yaml")
	writeFileAt(t, pf, `name: toppipe
sources: [{name: gen, type: generate, config: {rate: 20, expr: '{"n": i}'}}]
sinks: [{name: out, type: drop, inputs: [gen]}]
`)
	sock := filepath.Join(os.Getenv("XDG_STATE_HOME"), "flowctl", "runs", "toppipe.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, bin, "run", "-f", pf, "--state-dir", t.TempDir())
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		run.Process.Signal(os.Interrupt)
		run.Wait()
	}()
	waitFor(t, 30*time.Second, "the run's socket "+sock, func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	top := exec.CommandContext(ctx, bin, "top", "toppipe")
	var out, errb bytes.Buffer
	top.Stdout, top.Stderr = &out, &errb // stdin: /dev/null
	err := top.Run()
	if code := top.ProcessState.ExitCode(); code != 1 || out.Len() != 0 || !strings.Contains(errb.String(), "--once") {
		t.Errorf("top without a terminal: %v (exit %d), want exit 1, nothing on stdout and a hint at --once\nstdout %q\nstderr %q", err, code, out.String(), errb.String())
	}
	once := exec.CommandContext(ctx, bin, "top", "toppipe", "--once")
	b, err := once.Output()
	if err != nil || !strings.Contains(string(b), "COMPONENT") || strings.Contains(string(b), "\x1b[") {
		t.Errorf("top --once into a pipe: %v\n%q", err, b)
	}
}
