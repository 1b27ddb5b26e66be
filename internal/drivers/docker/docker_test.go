package docker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/drivers/docker"
	"github.com/flowctl/flowctl/internal/drivers/docker/dockertest"
)

// The image of testdata/task is built once per test binary and removed
// when the tests end.
var (
	image     string
	skipWhy   string
	driver    *docker.Driver
	dockerCli *client.Client
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// A variable of flowctl's own environment, which containers must not
	// inherit (testEnv).
	os.Setenv("FLOWCTL_DOCKER_TEST_HOST_ONLY", "1")
	if err := dockertest.Available(); err != nil {
		skipWhy = err.Error()
		return m.Run()
	}
	ctx := context.Background()
	driver = docker.New()
	cli, err := driver.Client(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dockerCli = cli
	dir, err := os.MkdirTemp("", "docker-driver-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "task")
	if err := dockertest.BuildStatic(".", "./testdata/task", bin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	image = dockertest.Tag("docker-driver")
	if err := dockertest.BuildScratchImage(ctx, cli, image, bin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := dockertest.RemoveImage(ctx, cli, image); err != nil {
			fmt.Fprintln(os.Stderr, "remove test image:", err)
		}
	}()
	return m.Run()
}

func needDocker(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
}

// lines is an Output that records lines and tells when one appears.
type lines struct {
	mu    sync.Mutex
	buf   strings.Builder
	added chan struct{}
}

func newLines() *lines { return &lines{added: make(chan struct{}, 1)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits up to 30 s for a line equal to want.
func (l *lines) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		for _, line := range strings.Split(l.String(), "\n") {
			if line == want {
				return
			}
		}
		select {
		case <-l.added:
		case <-deadline:
			t.Fatalf("no line %q within 30s; output:\n%s", want, l.String())
		}
	}
}

func start(t *testing.T, cfg drivers.TaskConfig) drivers.Handle {
	t.Helper()
	if cfg.Image == "" {
		cfg.Image = image
	}
	if cfg.Name == "" {
		cfg.Name = "t"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := driver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Kill() })
	return h
}

func waitDone(t *testing.T, h drivers.Handle) drivers.Status {
	t.Helper()
	select {
	case <-h.Done():
	case <-time.After(time.Minute):
		t.Fatal("container did not end within a minute")
	}
	return h.Inspect()
}

// TestDriver runs the cases every driver must pass, with the docker
// driver and the testdata/task image (the driverstest suite, once it
// lands, runs the same kinds of case).
func TestDriver(t *testing.T) {
	needDocker(t)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"exit code and stderr tail", testExitCode},
		{"env", testEnv},
		{"logs with prefix", testLogs},
		{"stop with grace", testStopGrace},
		{"stop kills after grace", testStopKill},
		{"kill", testKill},
		{"stdio", testStdio},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

func testExitCode(t *testing.T) {
	h := start(t, drivers.TaskConfig{Argv: []string{"/app", "exit", "3"}})
	st := waitDone(t, h)
	if !st.Exited || st.ExitCode != 3 || st.Signal != 0 || st.Stopped {
		t.Fatalf("status %+v; want exit 3, not stopped", st)
	}
	if st.ExitString() != "exit status 3" {
		t.Errorf("ExitString %q", st.ExitString())
	}
	if len(st.Tail) != 1 || st.Tail[0] != "exiting 3" {
		t.Errorf("tail %q; want [exiting 3]", st.Tail)
	}
	if st.ID == "" || st.StartedAt.IsZero() || st.ExitedAt.Before(st.StartedAt) {
		t.Errorf("status %+v: want an id and ordered times", st)
	}
}

func testEnv(t *testing.T) {
	out := newLines()
	// The image's entrypoint (/app) with ImageArgs, and only the given
	// environment (flowctl's own does not leak in).
	h := start(t, drivers.TaskConfig{
		ImageArgs: []string{"env", "FOO", "PORT", "FLOWCTL_DOCKER_TEST_HOST_ONLY"},
		Env:       []string{"FOO=bar baz", "PORT=127.0.0.1:0"},
		Output:    out,
	})
	if st := waitDone(t, h); st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	want := "t | FOO=bar baz\nt | PORT=127.0.0.1:0\nt | FLOWCTL_DOCKER_TEST_HOST_ONLY=<unset>\n"
	if got := out.String(); got != want {
		t.Errorf("output %q; want %q", got, want)
	}
}

func testLogs(t *testing.T) {
	out := newLines()
	const n = 500
	h := start(t, drivers.TaskConfig{Name: "comp", Argv: []string{"/app", "lines", strconv.Itoa(n)}, Output: out, TailLines: 5})
	st := waitDone(t, h)
	if st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	next := map[string]int{"out": 0, "err": 0}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "comp | ")
		if !ok {
			t.Fatalf("line %q lacks the prefix", line)
		}
		stream, num, _ := strings.Cut(rest, " ")
		if i, err := strconv.Atoi(num); err != nil || i != next[stream] {
			t.Fatalf("line %q out of order (want %s %d)", line, stream, next[stream])
		}
		next[stream]++
	}
	if next["out"] != n || next["err"] != n {
		t.Errorf("got %d stdout and %d stderr lines; want %d each", next["out"], next["err"], n)
	}
	if len(st.Tail) != 5 || st.Tail[4] != fmt.Sprintf("err %d", n-1) {
		t.Errorf("tail %q", st.Tail)
	}
}

func testStopGrace(t *testing.T) {
	out := newLines()
	h := start(t, drivers.TaskConfig{Argv: []string{"/app", "serve"}, Output: out})
	out.waitFor(t, "t | ready")
	begin := time.Now()
	if err := h.Stop(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	st := h.Inspect()
	if !st.Exited || st.ExitCode != 0 || st.Signal != 0 || !st.Stopped {
		t.Fatalf("status %+v; want a clean exit after SIGTERM", st)
	}
	if time.Since(begin) > 20*time.Second {
		t.Errorf("stop took %v: SIGTERM was not delivered", time.Since(begin))
	}
	if len(st.Tail) == 0 || st.Tail[len(st.Tail)-1] != "got SIGTERM" {
		t.Errorf("tail %q; want got SIGTERM", st.Tail)
	}
}

func testStopKill(t *testing.T) {
	out := newLines()
	h := start(t, drivers.TaskConfig{Argv: []string{"/app", "serve", "ignore-term"}, Output: out})
	out.waitFor(t, "t | ready")
	const grace = 500 * time.Millisecond
	begin := time.Now()
	if err := h.Stop(context.Background(), grace); err != nil {
		t.Fatal(err)
	}
	st := h.Inspect()
	if took := time.Since(begin); took < grace {
		t.Errorf("stopped after %v, before the grace of %v", took, grace)
	}
	if !st.Exited || st.Signal != 9 || st.ExitCode != -1 || !st.Stopped {
		t.Fatalf("status %+v; want killed by signal 9", st)
	}
}

func testKill(t *testing.T) {
	out := newLines()
	h := start(t, drivers.TaskConfig{Argv: []string{"/app", "serve"}, Output: out})
	out.waitFor(t, "t | ready")
	if err := h.Kill(); err != nil {
		t.Fatal(err)
	}
	st := h.Inspect()
	if st.ExitString() != "killed by signal 9" || !st.Stopped {
		t.Fatalf("status %+v", st)
	}
	if err := h.Kill(); err != nil { // again, after the end
		t.Errorf("second Kill: %v", err)
	}
}

func testStdio(t *testing.T) {
	out := newLines()
	h := start(t, drivers.TaskConfig{Argv: []string{"/app", "cat"}, Stdio: true, Output: out})
	if h.Stdin() == nil || h.Stdout() == nil {
		t.Fatal("no stdin/stdout with Stdio set")
	}
	const n = 1000
	go func() {
		w := bufio.NewWriter(h.Stdin())
		for i := range n {
			fmt.Fprintf(w, "line %d\n", i)
		}
		w.Flush()
		h.Stdin().Close()
	}()
	sc := bufio.NewScanner(h.Stdout())
	i := 0
	for sc.Scan() {
		if want := fmt.Sprintf("echo: line %d", i); sc.Text() != want {
			t.Fatalf("read %q; want %q", sc.Text(), want)
		}
		i++
	}
	if i != n {
		t.Fatalf("read %d lines, want %d (err %v)", i, n, sc.Err())
	}
	st := waitDone(t, h)
	if st.ExitCode != 0 || st.Stopped {
		t.Fatalf("status %+v; want exit 0 at end of input", st)
	}
	if strings.Contains(out.String(), "echo:") {
		t.Errorf("stdout was captured as log in stdio mode:\n%s", out)
	}
	if len(st.Tail) != 1 || st.Tail[0] != "eof" {
		t.Errorf("tail %q", st.Tail)
	}
}

// TestHostNetwork: a container reaches flowctl's loopback as a process
// does.
func TestHostNetwork(t *testing.T) {
	needDocker(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	h := start(t, drivers.TaskConfig{Argv: []string{"/app", "dial", ln.Addr().String()}})
	if st := waitDone(t, h); st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	select {
	case s := <-got:
		if s != "hello" {
			t.Errorf("read %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nothing connected")
	}
}

// TestMountsAndRemoval: a bind mount is written through, and the
// container is gone once Done is closed.
func TestMountsAndRemoval(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	h := start(t, drivers.TaskConfig{
		Argv:   []string{"/app", "write", "/data/f.txt", "written inside"},
		Mounts: []drivers.Mount{{Source: dir, Target: "/data"}},
	})
	st := waitDone(t, h)
	if st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	b, err := os.ReadFile(filepath.Join(dir, "f.txt"))
	if err != nil || string(b) != "written inside" {
		t.Errorf("read %q, %v", b, err)
	}
	// A read-only mount refuses the write.
	h = start(t, drivers.TaskConfig{
		Argv:   []string{"/app", "write", "/data/g.txt", "x"},
		Mounts: []drivers.Mount{{Source: dir, Target: "/data", ReadOnly: true}},
	})
	if st := waitDone(t, h); st.ExitCode != 1 || len(st.Tail) == 0 || !strings.Contains(st.Tail[0], "read-only") {
		t.Errorf("status %+v; want exit 1 on a read-only file system", st)
	}
	_, err = dockerCli.ContainerInspect(context.Background(), st.ID, client.ContainerInspectOptions{})
	if !cerrdefs.IsNotFound(err) {
		t.Errorf("container %s still there after it ended (err %v)", st.ID, err)
	}
}

func TestImageMissing(t *testing.T) {
	needDocker(t)
	_, err := driver.Start(context.Background(), drivers.TaskConfig{Name: "x", Image: "flowctl-test/absent:none"})
	if !errors.Is(err, docker.ErrImageMissing) {
		t.Fatalf("err %v; want ErrImageMissing", err)
	}
	for _, want := range []string{`"flowctl-test/absent:none"`, "never pulls", "docker build", "docker load", "docker import"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

// TestReap: containers owned by a flowctl process that is gone are
// removed; those of a live one, and those without an owner, stay.
func TestReap(t *testing.T) {
	needDocker(t)
	ctx := context.Background()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	mk := func(pid int) string {
		labels := map[string]string{docker.LabelManaged: "true", docker.LabelOwnerHost: host}
		if pid != 0 {
			labels[docker.LabelOwnerPID] = strconv.Itoa(pid)
		}
		res, err := dockerCli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: &container.Config{Image: image, Cmd: []string{"serve"}, Labels: labels},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			dockerCli.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true})
		})
		if _, err := dockerCli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	// notOurs has flowctl's label but no owner pid: a Compose service
	// of a translated pipeline, say.
	orphan, mine, notOurs := mk(dead.Process.Pid), mk(os.Getpid()), mk(0)
	// Any flowctl on this host reaps on its first start, so a test of
	// another package running beside this one may take the orphan first:
	// what counts is that it is gone, not who removed it.
	if _, err := docker.New().Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := dockerCli.ContainerInspect(ctx, orphan, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("orphan %s still there (err %v)", orphan[:12], err)
	}
	if _, err := dockerCli.ContainerInspect(ctx, mine, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("a live flowctl's container was removed: %v", err)
	}
	if _, err := dockerCli.ContainerInspect(ctx, notOurs, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("a container without an owner pid was removed: %v", err)
	}
}
