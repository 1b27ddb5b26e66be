package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// envServe makes the test binary a small HTTP service: it serves /health
// on $PORT (answering with $GREETING) until it is stopped.
const envServe = "FLOWCTL_SANDBOX_TEST_SERVE"

// envPipeline makes the test binary, run as `EXE run ...` (the way up
// runs the pipeline), print its arguments and exit with this status.
const envPipeline = "FLOWCTL_SANDBOX_TEST_PIPELINE_EXIT"

// envFail makes the test binary print its value and exit 3.
const envFail = "FLOWCTL_SANDBOX_TEST_FAIL"

func TestMain(m *testing.M) {
	if code := os.Getenv(envPipeline); code != "" && len(os.Args) > 1 && os.Args[1] == "run" {
		fmt.Println("pipeline", strings.Join(os.Args[1:], " "))
		n, _ := strconv.Atoi(code)
		os.Exit(n)
	}
	if msg := os.Getenv(envFail); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(3)
	}
	if os.Getenv(envServe) != "" {
		ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("serving on", ln.Addr())
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, os.Getenv("GREETING"))
		}))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writeSandbox writes a sandbox file into a new directory and loads it.
func writeSandbox(t *testing.T, text string) *File {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "sandbox.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCommandServices starts two local processes (the test binary as an
// HTTP service), the second depending on the first and given its URL,
// checks them, and stops them.
func TestCommandServices(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := writeSandbox(t, fmt.Sprintf(`
name: unit
services:
  front:
    command: [%q]
    env: {%s: "1", GREETING: "front calls ${BACK_URL}"}
    health: {http: /health, timeout: 20s}
    depends_on: [back]
  back:
    command: [%q]
    env: {%s: "1", GREETING: back}
    health: {http: /health, timeout: 20s}
  plain:
    command: [%q]
    env: {%s: "1"}
    health: {command: [%q, -test.run=^$]}
`, exe, envServe, exe, envServe, exe, envServe, exe))
	ctx := context.Background()
	var out bytes.Buffer
	st, err := Up(ctx, f, Options{Out: &out})
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	t.Cleanup(func() { Down(f, true, &bytes.Buffer{}) })
	if got := []string{st.Services[0].Name, st.Services[1].Name}; got[0] != "back" || got[1] != "front" {
		t.Fatalf("start order %v, want back front", got)
	}
	back, front := st.Services[0], st.Services[1]
	resp, err := http.Get("http://127.0.0.1:" + fmt.Sprint(front.Port) + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if want := "front calls http://127.0.0.1:" + fmt.Sprint(back.Port); body.String() != want {
		t.Errorf("front got %q, want %q (a dependency's variables reach the services after it)", body.String(), want)
	}

	// up again: nothing new is started.
	again, err := Up(ctx, f, Options{Out: &out})
	if !errors.Is(err, ErrAlreadyUp) || again.Services[0].Proc.PID != back.Proc.PID {
		t.Fatalf("second up: %v (want ErrAlreadyUp and the same processes)", err)
	}
	_, rows, err := Status(ctx, f)
	if err != nil || len(rows) != 3 {
		t.Fatalf("status: %v %+v", err, rows)
	}
	for _, r := range rows {
		if !r.OK || r.State != "healthy" {
			t.Errorf("status of %s: %s", r.Name, r.State)
		}
	}
	var logs bytes.Buffer
	p, err := LogPath(f, "back")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Tail(&logs, p, 1); err != nil || !strings.HasPrefix(logs.String(), "serving on 127.0.0.1:") {
		t.Errorf("last line of back's log: %q %v", logs.String(), err)
	}

	// A service that crashes is not restarted: status says so.
	plain := st.Services[2]
	if p, err := os.FindProcess(plain.Proc.PID); err == nil {
		p.Kill()
	}
	if !waitGone(&plain.Proc, 10*time.Second) {
		t.Fatal("the killed service still runs")
	}
	_, rows, _ = Status(ctx, f)
	if r := rows[2]; r.Name != "plain" || r.OK || r.State != "exited" {
		t.Errorf("status of a killed service: %+v", r)
	}
	out.Reset()
	if err := Down(f, false, &out); err != nil {
		t.Fatalf("down: %v\n%s", err, out.String())
	}
	if want := "plain was not running\nstopped front\nstopped back\n"; !strings.HasPrefix(out.String(), want) {
		t.Errorf("down said\n%s\nwant it to start with\n%s", out.String(), want)
	}
	for _, s := range st.Services {
		if alive(s.Proc.PID, s.Proc.Start) {
			t.Errorf("%s (pid %d) still runs after down", s.Name, s.Proc.PID)
		}
	}
	if _, err := os.Stat(filepath.Join(f.StateDir(), stateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after down: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.StateDir(), "logs", "back.log")); err != nil {
		t.Errorf("logs are kept without --purge: %v", err)
	}
	if err := Down(f, true, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.StateDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sandbox directory after down --purge: %v", err)
	}
}

// TestFailedServiceStopsTheOthers: a service that exits before it is
// healthy fails up, which prints its log and stops what it started.
func TestFailedServiceStopsTheOthers(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := writeSandbox(t, fmt.Sprintf(`
name: failing
services:
  ok:
    command: [%q]
    env: {%s: "1"}
  broken:
    command: [%q]
    env: {%s: "cannot bind: port taken"}
    depends_on: [ok]
`, exe, envServe, exe, envFail))
	var out bytes.Buffer
	start := time.Now()
	_, err = Up(context.Background(), f, Options{Out: &out})
	if err == nil || !strings.Contains(err.Error(), "service broken: exited (exit status 3) before it was healthy") {
		t.Fatalf("up: %v, want the broken service to fail it", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("up waited %s: an exited service fails at once, not at its timeout", time.Since(start))
	}
	if !strings.Contains(out.String(), "cannot bind: port taken") || !strings.Contains(out.String(), "stopped ok") {
		t.Errorf("up's output shows neither the failed service's log nor the stop of the other:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(f.StateDir(), stateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after a failed up: %v", err)
	}
}

// TestFollow: what is appended to a log after Tail is printed by Follow.
func TestFollow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(p, []byte("one\ntwo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	off, err := Tail(&first, p, 1)
	if err != nil || first.String() != "two\n" {
		t.Fatalf("tail: %q %v", first.String(), err)
	}
	w := &syncBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, w, p, off) }()
	fh, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString("three\n")
	fh.Close()
	deadline := time.Now().Add(10 * time.Second)
	for w.String() != "three\n" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if w.String() != "three\n" {
		t.Errorf("followed %q, want only the appended line", w.String())
	}
}

// syncBuf is a buffer safe for a writer and a reader at once.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUpIsExclusive: while one up or down works on a sandbox, another
// fails at once, saying why.
func TestUpIsExclusive(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no lock is taken on Windows (lock_windows.go)")
	}
	f := writeSandbox(t, "name: busy\nservices:\n  a:\n    command: [nothing-runs-this]\n")
	unlock, err := lockSandbox(f.StateDir(), f.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = Up(context.Background(), f, Options{Out: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "another flowctl sandbox up or down is working on sandbox busy") {
		t.Fatalf("up while locked: %v", err)
	}
	if err := Down(f, false, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "another flowctl sandbox") {
		t.Fatalf("down while locked: %v", err)
	}
}

// TestPipelineThatEnds: a pipeline that runs to its end (exit 0) while up
// waits for it is a success, shown as completed; one that fails fails up.
func TestPipelineThatEnds(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		exit  string
		state string
		err   string
	}{
		{"0", "completed (exit status 0)", ""},
		{"1", "", "pipeline: flowctl run exited (exit status 1) before it was ready"},
	} {
		t.Run("exit "+c.exit, func(t *testing.T) {
			t.Setenv(envPipeline, c.exit)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte("name: p\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "sandbox.yaml")
			if err := os.WriteFile(p, []byte("name: ends\npipeline: pipeline.yaml\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			_, err = Up(context.Background(), f, Options{Exe: exe, Out: &out})
			t.Cleanup(func() { Down(f, true, &bytes.Buffer{}) })
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("up: %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("up: %v\n%s", err, out.String())
			}
			_, rows, err := Status(context.Background(), f)
			if err != nil || len(rows) != 1 || rows[0].State != c.state || !rows[0].OK {
				t.Fatalf("status: %+v %v", rows, err)
			}
			logs, _ := os.ReadFile(filepath.Join(f.StateDir(), "logs", "pipeline.log"))
			if want := "pipeline run -f " + filepath.Join(dir, "pipeline.yaml") + " --state-dir " + filepath.Join(f.StateDir(), "data", "pipeline") + " --http 127.0.0.1:"; !strings.Contains(string(logs), want) {
				t.Errorf("the pipeline was run as\n%s\nwant\n%s", logs, want)
			}
		})
	}
}
