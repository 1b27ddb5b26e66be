// Package driverstest is the conformance suite every drivers.Driver
// passes. A driver's own test calls Run with a function that says how the
// driver runs the suite's test program (testprog, built by BuildProgram):
// the process driver runs the binary, the docker driver runs it in a
// FROM-scratch image.
//
// It imports only drivers and the standard library.
package driverstest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/drivers"
)

// ProgramPackage is the import path of the test program.
const ProgramPackage = "github.com/flowctl/flowctl/internal/drivers/driverstest/testprog"

// Task returns the config of a task that runs the test program with args
// (e.g. "exit", "3"); the suite fills in Name, Output, Stdio and adds to
// Env.
type Task func(t *testing.T, args ...string) drivers.TaskConfig

// wait bounds every wait of the suite: generous, because a loaded machine
// (or a container engine) is slow, yet finite.
const wait = 30 * time.Second

// BuildProgram builds the test program (static, CGO_ENABLED=0) for
// goos/goarch into dir and returns its path.
func BuildProgram(t *testing.T, dir, goos, goarch string) string {
	t.Helper()
	name := "testprog"
	if goos == "windows" {
		name += ".exe"
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(goBin(), "build", "-o", out, ProgramPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", ProgramPackage, err, b)
	}
	return out
}

// goBin is the go command of the toolchain running the test.
func goBin() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Output is a concurrency-safe io.Writer that records what a driver
// captured.
type Output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// WaitFor waits (bounded) until the output holds s.
func (o *Output) WaitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !strings.Contains(o.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q; got:\n%s", s, o.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Run runs the conformance suite against d.
func Run(t *testing.T, d drivers.Driver, task Task) {
	if d.Name() == "" {
		t.Fatal("driver has no name")
	}
	start := func(t *testing.T, stdio bool, args ...string) (drivers.Handle, *Output) {
		t.Helper()
		cfg := task(t, args...)
		out := &Output{}
		cfg.Name, cfg.Output, cfg.Stdio = "comp", out, stdio
		cfg.Env = append(cfg.Env, "FLOWCTL_TESTPROG_VALUE=42")
		h, err := d.Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start %q: %v", args, err)
		}
		t.Cleanup(func() { _ = h.Kill() })
		return h, out
	}
	done := func(t *testing.T, h drivers.Handle) drivers.Status {
		t.Helper()
		select {
		case <-h.Done():
		case <-time.After(wait):
			t.Fatalf("task did not end within %v", wait)
		}
		st := h.Inspect()
		if !st.Exited || st.ExitedAt.IsZero() {
			t.Fatalf("Done closed but status %+v is not final", st)
		}
		return st
	}

	t.Run("exit code", func(t *testing.T) {
		for _, code := range []int{0, 3} {
			t.Run(fmt.Sprint(code), func(t *testing.T) {
				h, out := start(t, false, "exit", fmt.Sprint(code))
				st := done(t, h)
				if st.ExitCode != code || st.Signal != 0 || st.Stopped {
					t.Fatalf("status %+v, want exit %d", st, code)
				}
				if want := fmt.Sprintf("exit status %d", code); st.ExitString() != want {
					t.Errorf("ExitString = %q, want %q", st.ExitString(), want)
				}
				if st.StartedAt.IsZero() || st.ID == "" {
					t.Errorf("status lacks StartedAt or ID: %+v", st)
				}
				out.WaitFor(t, "comp | bye\n")
			})
		}
	})

	t.Run("stop with grace", func(t *testing.T) {
		cases := []struct {
			name       string
			mode       string
			grace      time.Duration
			wantSignal int
		}{
			{"exits on SIGTERM", "term", wait, 0},
			{"ignores SIGTERM so is killed after the grace", "ignore", 500 * time.Millisecond, 9},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				h, out := start(t, false, tc.mode)
				out.WaitFor(t, "comp | ready\n")
				t0 := time.Now()
				if err := h.Stop(context.Background(), tc.grace); err != nil {
					t.Fatalf("Stop: %v", err)
				}
				took := time.Since(t0)
				select {
				case <-h.Done():
				default:
					t.Fatal("Stop returned before Done closed")
				}
				st := h.Inspect()
				if !st.Exited || !st.Stopped || st.Signal != tc.wantSignal {
					t.Fatalf("status %+v (%s), want Stopped with signal %d", st, st.ExitString(), tc.wantSignal)
				}
				if tc.wantSignal == 0 {
					if st.ExitCode != 0 || took >= tc.grace {
						t.Errorf("exit %d after %v, want 0 well within the grace %v", st.ExitCode, took, tc.grace)
					}
					out.WaitFor(t, "comp | got SIGTERM\n")
				} else if took < tc.grace {
					t.Errorf("killed after %v, before the grace %v", took, tc.grace)
				}
				if err := h.Stop(context.Background(), tc.grace); err != nil {
					t.Errorf("a second Stop: %v", err)
				}
			})
		}
	})

	t.Run("kill", func(t *testing.T) {
		h, out := start(t, false, "ignore")
		out.WaitFor(t, "comp | ready\n")
		if err := h.Kill(); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		st := done(t, h)
		if !st.Stopped || st.Signal != 9 || st.ExitCode != -1 {
			t.Fatalf("status %+v, want stopped by signal 9, exit code -1", st)
		}
		if st.ExitString() != "killed by signal 9" {
			t.Errorf("ExitString = %q", st.ExitString())
		}
		if err := h.Kill(); err != nil {
			t.Errorf("Kill after the exit: %v", err)
		}
	})

	t.Run("stdio", func(t *testing.T) {
		h, out := start(t, true, "echo")
		if h.Stdin() == nil || h.Stdout() == nil {
			t.Fatal("a stdio task has no Stdin or Stdout")
		}
		r := bufio.NewReader(h.Stdout())
		for i := range 3 {
			if _, err := fmt.Fprintf(h.Stdin(), "line %d\n", i); err != nil {
				t.Fatal(err)
			}
			got, err := r.ReadString('\n')
			if want := fmt.Sprintf("echo:line %d\n", i); err != nil || got != want {
				t.Fatalf("read %q, %v; want %q", got, err, want)
			}
		}
		if err := h.Stdin().Close(); err != nil {
			t.Fatal(err)
		}
		if st := done(t, h); st.ExitCode != 0 || st.Stopped {
			t.Fatalf("status %+v, want exit 0 at stdin EOF", st)
		}
		out.WaitFor(t, "comp | stdin closed\n")
		if strings.Contains(out.String(), "echo:") {
			t.Errorf("stdout of a stdio task reached Output:\n%s", out.String())
		}
	})

	t.Run("no stdio streams without stdio", func(t *testing.T) {
		h, _ := start(t, false, "exit", "0")
		if h.Stdin() != nil || h.Stdout() != nil {
			t.Error("Stdin/Stdout are set for a task started without Stdio")
		}
		done(t, h)
	})

	t.Run("stderr lines and tail", func(t *testing.T) {
		cfg := task(t, "lines", "5")
		out := &Output{}
		cfg.Name, cfg.Output, cfg.TailLines = "named", out, 3
		h, err := d.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Kill() })
		st := done(t, h)
		for i := 1; i <= 5; i++ {
			out.WaitFor(t, fmt.Sprintf("named | line %d\n", i))
		}
		if want := []string{"line 3", "line 4", "line 5"}; fmt.Sprint(st.Tail) != fmt.Sprint(want) {
			t.Errorf("Tail = %q, want %q", st.Tail, want)
		}
	})

	t.Run("env reaches the task", func(t *testing.T) {
		h, out := start(t, false, "env")
		done(t, h)
		out.WaitFor(t, "comp | env=42\n")
	})

	t.Run("missing program", func(t *testing.T) {
		cfg := task(t, "exit", "0")
		cfg.Name, cfg.Argv = "missing", []string{"/nonexistent/flowctl-testprog"}
		h, err := d.Start(context.Background(), cfg)
		if err == nil {
			// A container's init (docker-init) starts before it execs the
			// program, so a container driver may only learn of a missing
			// program as the task's exit: 127, as a shell reports it, with
			// the init's complaint naming the program.
			st := done(t, h)
			tail := strings.Join(st.Tail, "\n")
			if st.ExitCode != 127 || !strings.Contains(tail, "flowctl-testprog") {
				t.Fatalf("starting a missing program succeeded and ended %s with stderr %q; want a start error, or exit 127 naming the program", st.ExitString(), tail)
			}
			return
		}
		if !strings.Contains(err.Error(), "missing") && !strings.Contains(err.Error(), "flowctl-testprog") {
			t.Errorf("error %q names neither the task nor the program", err)
		}
	})

	t.Run("done context refuses the start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		cfg := task(t, "exit", "0")
		cfg.Name = "late"
		if h, err := d.Start(ctx, cfg); err == nil {
			_ = h.Kill()
			t.Fatal("Start with a done context succeeded")
		}
	})
}
