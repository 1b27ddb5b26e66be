//go:build unix

package process

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary re-execs itself as a child: FLOWCTL_TEST_CHILD names the
// behaviour.
func TestMain(m *testing.M) {
	if mode := os.Getenv("FLOWCTL_TEST_CHILD"); mode != "" {
		child(mode)
		return
	}
	os.Exit(m.Run())
}

func child(mode string) {
	switch mode {
	case "print":
		fmt.Println("hello out")
		fmt.Fprintln(os.Stderr, "hello err")
		fmt.Fprintln(os.Stderr, "env", os.Getenv("X_TEST"))
		os.Exit(3)
	case "echo":
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Println("echo:" + sc.Text())
		}
		fmt.Fprintln(os.Stderr, "stdin closed")
	case "term":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		fmt.Println("ready")
		<-ch
		fmt.Fprintln(os.Stderr, "got SIGTERM")
		os.Exit(0)
	case "ignore":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "parent", "parent-watch":
		// Starts a child through the driver, then waits to be killed;
		// parent-watch uses the pipe watcher instead of Pdeathsig.
		pipeWatch = pipeWatch || mode == "parent-watch"
		h, err := Start(Config{Name: "kid", Argv: []string{os.Args[0]}, Env: append(os.Environ(), "FLOWCTL_TEST_CHILD=ignore"), Output: os.Stdout})
		if err != nil {
			panic(err)
		}
		fmt.Println("kid", h.PID())
		if h.watch != nil {
			fmt.Println("watcher", h.watch.pid())
		}
		time.Sleep(time.Hour)
	case "grandchild":
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "FLOWCTL_TEST_CHILD=ignore")
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			panic(err)
		}
		fmt.Println("gc", cmd.Process.Pid)
		time.Sleep(time.Hour)
	}
}

// lines is a concurrency-safe Output that records lines.
type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lines) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q; got:\n%s", s, l.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func start(t *testing.T, mode string, stdio bool, out *lines) *Handle {
	t.Helper()
	h, err := Start(Config{
		Name:   "comp",
		Argv:   []string{os.Args[0]},
		Env:    append(os.Environ(), "FLOWCTL_TEST_CHILD="+mode, "X_TEST=42"),
		Stdio:  stdio,
		Output: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Kill() })
	return h
}

func wait(t *testing.T, h *Handle) Status {
	t.Helper()
	select {
	case <-h.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit")
	}
	return h.Inspect()
}

func TestExitAndOutput(t *testing.T) {
	out := &lines{}
	h := start(t, "print", false, out)
	st := wait(t, h)
	if st.ExitCode != 3 || st.Signal != 0 || st.Stopped {
		t.Fatalf("status = %+v, want exit 3", st)
	}
	if got := st.ExitString(); got != "exit status 3" {
		t.Errorf("ExitString = %q", got)
	}
	for _, want := range []string{"comp | hello out\n", "comp | hello err\n", "comp | env 42\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if len(st.Tail) != 2 || st.Tail[0] != "hello err" {
		t.Errorf("tail = %q", st.Tail)
	}
}

func TestStdio(t *testing.T) {
	out := &lines{}
	h := start(t, "echo", true, out)
	r := bufio.NewReader(h.Stdout())
	for i := range 3 {
		fmt.Fprintf(h.Stdin(), "line %d\n", i)
		got, err := r.ReadString('\n')
		if err != nil || got != fmt.Sprintf("echo:line %d\n", i) {
			t.Fatalf("read %q, %v", got, err)
		}
	}
	h.Stdin().Close()
	st := wait(t, h)
	if st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	out.waitFor(t, "comp | stdin closed")
	if strings.Contains(out.String(), "echo:") {
		t.Errorf("stdout of a stdio child was logged:\n%s", out.String())
	}
}

func TestStop(t *testing.T) {
	cases := []struct {
		name     string
		mode     string
		grace    time.Duration
		wantSig  syscall.Signal
		maxTaken time.Duration
	}{
		{"honours SIGTERM", "term", 5 * time.Second, 0, 3 * time.Second},
		{"ignores SIGTERM is killed after grace", "ignore", 300 * time.Millisecond, syscall.SIGKILL, 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := &lines{}
			h := start(t, tc.mode, false, out)
			out.waitFor(t, "comp | ready")
			t0 := time.Now()
			if err := h.Stop(context.Background(), tc.grace); err != nil {
				t.Fatal(err)
			}
			st := h.Inspect()
			if !st.Exited || !st.Stopped || st.Signal != tc.wantSig {
				t.Fatalf("status %+v (%s), want signal %v", st, st.ExitString(), tc.wantSig)
			}
			if took := time.Since(t0); took > tc.maxTaken || (tc.wantSig != 0 && took < tc.grace) {
				t.Errorf("stop took %v", took)
			}
		})
	}
}

func TestKillTakesTheGroup(t *testing.T) {
	out := &lines{}
	h := start(t, "grandchild", false, out)
	out.waitFor(t, "comp | gc ")
	var gc int
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "comp | gc ") {
			fmt.Sscanf(strings.TrimPrefix(l, "comp | gc "), "%d", &gc)
		}
	}
	if err := h.Stop(context.Background(), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(gc, 0) == nil {
		// A zombie still answers kill 0 until reaped by init; check its state.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", gc)); err == nil && strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived", gc)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartErrors(t *testing.T) {
	for _, argv := range [][]string{nil, {""}, {"/nonexistent/flowctl-child"}} {
		if _, err := Start(Config{Name: "x", Argv: argv}); err == nil {
			t.Errorf("Start(%q) succeeded", argv)
		}
	}
}

// A child dies with its flowctl, even a child that ignores SIGTERM and a
// flowctl killed with SIGKILL: through the parent-death signal on Linux,
// through the pipe watcher where there is none (tested here on Linux too,
// with Pdeathsig off).
func TestChildDiesWithParent(t *testing.T) {
	cases := []struct {
		name, mode string
	}{
		{"platform default", "parent"},
		{"pipe watcher", "parent-watch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := &lines{}
			parent := start(t, tc.mode, false, out)
			out.waitFor(t, "comp | kid ")
			kid := pidAfter(out.String(), "comp | kid ")
			out.waitFor(t, "kid | ready")
			watcher := 0
			if tc.mode == "parent-watch" || pipeWatch {
				out.waitFor(t, "comp | watcher ")
				watcher = pidAfter(out.String(), "comp | watcher ")
			}
			if gone(kid) {
				t.Fatalf("child %d is not running before its parent is killed", kid)
			}
			syscall.Kill(parent.PID(), syscall.SIGKILL) // the parent only, not its group
			wait(t, parent)
			waitGoneOrFail(t, kid, "child")
			if watcher != 0 {
				waitGoneOrFail(t, watcher, "watcher")
			}
		})
	}
}

// The watcher of a child that exits goes with it, and does not disturb it.
func TestWatcherEndsWithChild(t *testing.T) {
	defer func(old bool) { pipeWatch = old }(pipeWatch)
	pipeWatch = true
	h := start(t, "print", false, &lines{})
	if h.watch == nil {
		t.Fatal("no watcher started")
	}
	w := h.watch.pid()
	if st := wait(t, h); st.ExitCode != 3 || st.Signal != 0 {
		t.Fatalf("status %+v, want exit 3 untouched by the watcher", st)
	}
	// Reaped by stop, so not even a zombie is left.
	if err := syscall.Kill(w, 0); err == nil {
		t.Errorf("watcher %d still exists after its child exited", w)
	}
}

func pidAfter(out, prefix string) int {
	pid := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			fmt.Sscanf(strings.TrimPrefix(l, prefix), "%d", &pid)
		}
	}
	return pid
}

// gone reports whether pid no longer runs (absent, or a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		return strings.Contains(string(b), ") Z ")
	}
	if _, err := os.Stat("/proc/self"); err == nil {
		return true
	}
	// No /proc (macOS): a zombie counts as running until it is reaped.
	return syscall.Kill(pid, 0) != nil
}

func waitGoneOrFail(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("%s %d outlived its parent", what, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFreePortOutsideEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p < portRangeLow || p >= portRangeHigh {
			t.Errorf("port %d outside [%d, %d)", p, portRangeLow, portRangeHigh)
		}
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", p, err)
		}
		l.Close()
	}
}

// The conformance suite again with every child watched through the pipe
// watcher (what macOS uses), so that it is known not to disturb a child.
func TestDriverConformanceWithPipeWatcher(t *testing.T) {
	defer func(old bool) { pipeWatch = old }(pipeWatch)
	pipeWatch = true
	TestDriverConformance(t)
}
