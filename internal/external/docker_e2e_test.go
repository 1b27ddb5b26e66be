package external

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/flowctl/flowctl/internal/drivers/docker"
	"github.com/flowctl/flowctl/internal/drivers/docker/dockertest"
)

// TestDockerComponentE2E runs generate → examples/sdk-processor in a
// FROM-scratch image (protocol grpc) → file through the real flowctl
// binary: every event arrives although the container is killed (docker
// kill) while events flow; then a flowctl run is SIGKILLed with its
// container running, and the next flowctl run removes that container.
func TestDockerComponentE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flowctl and an image")
	}
	if err := dockertest.Available(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	cli, err := docker.New().Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := repoRoot(t)
	proc := filepath.Join(dir, "sdk-processor")
	if err := dockertest.BuildStatic(root, "./examples/sdk-processor", proc); err != nil {
		t.Fatal(err)
	}
	image := dockertest.Tag("sdk-processor")
	if err := dockertest.BuildScratchImage(ctx, cli, image, proc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dockertest.RemoveImage(ctx, cli, image) })
	flowctl := filepath.Join(dir, "flowctl")
	build := exec.Command("go", "build", "-o", flowctl, "./cmd/flowctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build flowctl: %v\n%s", err, out)
	}
	suffix := fmt.Sprint(os.Getpid())
	// Whatever happens, no container of these pipelines stays.
	t.Cleanup(func() {
		for _, name := range []string{"dk-kill-" + suffix, "dk-stdio-" + suffix, "dk-server-" + suffix, "dk-orphan-" + suffix, "dk-reaper-" + suffix} {
			for _, id := range containersOf(t, cli, name) {
				cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
			}
		}
	})

	t.Run("container killed mid-run loses nothing", func(t *testing.T) {
		const count = 20000
		out := filepath.Join(dir, "out.jsonl")
		r := startFlowctl(t, flowctl, dir, dockerPipeline("dk-kill-"+suffix, image, count, 5000, out))
		id := r.waitContainer(t)
		waitLines(t, out, 2000, r)
		if _, err := cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
			t.Fatalf("docker kill %s: %v", id, err)
		}
		if err := r.wait(); err != nil {
			t.Fatalf("flowctl run: %v\n%s", err, r.text())
		}
		if n := strings.Count(r.text(), "component started"); n < 2 {
			t.Errorf("the container was started %d times; want a restart after the kill\n%s", n, r.text())
		}
		checkIDs(t, out, count)
		if left := containersOf(t, cli, "dk-kill-"+suffix); len(left) > 0 {
			t.Errorf("containers left after the run: %v", left)
		}
	})

	t.Run("stdio component in a container", func(t *testing.T) {
		bin := filepath.Join(dir, "stdioproc")
		if err := dockertest.BuildStatic(root, "./internal/external/testdata/stdioproc", bin); err != nil {
			t.Fatal(err)
		}
		stdioImage := dockertest.Tag("stdioproc")
		if err := dockertest.BuildScratchImage(ctx, cli, stdioImage, bin); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dockertest.RemoveImage(ctx, cli, stdioImage) })
		const count = 5000
		out := filepath.Join(dir, "stdio.jsonl")
		p := strings.Replace(dockerPipeline("dk-stdio-"+suffix, stdioImage, count, 0, out), "protocol: grpc", "protocol: stdio", 1)
		r := startFlowctl(t, flowctl, dir, p)
		if err := r.wait(); err != nil {
			t.Fatalf("flowctl run: %v\n%s", err, r.text())
		}
		checkIDs(t, out, count)
		if !strings.Contains(r.text(), "usd | stdioproc: end of input") {
			t.Errorf("the container did not see end of input (or its stderr was not captured):\n%s", r.text())
		}
		if left := containersOf(t, cli, "dk-stdio-"+suffix); len(left) > 0 {
			t.Errorf("containers left after the run: %v", left)
		}
	})

	t.Run("under flowctl server", func(t *testing.T) {
		// A short path: the server's Unix socket lives in its data directory.
		data, err := os.MkdirTemp("", "fsrv")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(data) })
		// A file, not a pipe: the server's children inherit it, and Wait
		// must not wait for them to close it.
		logs, err := os.Create(filepath.Join(dir, "server.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer logs.Close()
		logText := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
		srv := exec.Command(flowctl, "server", "--data-dir", data, "--grace", "5s")
		srv.Stdout, srv.Stderr = logs, logs
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		srvDone := make(chan struct{})
		go func() { srv.Wait(); close(srvDone) }()
		t.Cleanup(func() {
			srv.Process.Kill()
			<-srvDone
		})
		addr := "unix:" + filepath.Join(data, "flowctl.sock")
		const count = 3000
		out := filepath.Join(dir, "server.jsonl")
		file := filepath.Join(dir, "server.yaml")
		name := "dk-server-" + suffix
		if err := os.WriteFile(file, []byte(dockerPipeline(name, image, count, 0, out)), 0o644); err != nil {
			t.Fatal(err)
		}
		var applyOut []byte
		for i := 0; ; i++ { // until the server listens (bounded)
			applyOut, err = exec.Command(flowctl, "apply", "-f", file, "--server", addr, "--wait", "--timeout", "90s").CombinedOutput()
			if err == nil || i == 100 || !strings.Contains(string(applyOut), "flowctl.sock") {
				break
			}
			select {
			case <-srvDone:
				t.Fatalf("server ended:\n%s", logText())
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err != nil {
			t.Fatalf("apply: %v\n%s\nserver:\n%s", err, applyOut, logText())
		}
		waitLines(t, out, count, nil)
		checkIDs(t, out, count)
		if b, err := exec.Command(flowctl, "delete", "pipeline", name, "--server", addr).CombinedOutput(); err != nil {
			t.Fatalf("delete: %v\n%s", err, b)
		}
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-srvDone:
		case <-time.After(time.Minute):
			t.Fatal("server did not stop within a minute of SIGTERM")
		}
		if left := containersOf(t, cli, name); len(left) > 0 {
			t.Errorf("containers left after the server stopped: %v\n%s", left, logText())
		}
	})

	t.Run("SIGKILLed flowctl's container is reaped by the next", func(t *testing.T) {
		orphan := "dk-orphan-" + suffix
		r := startFlowctl(t, flowctl, dir, dockerPipeline(orphan, image, 1000000, 100, filepath.Join(dir, "orphan.jsonl")))
		r.waitContainer(t)
		r.cmd.Process.Signal(syscall.SIGKILL)
		r.wait()
		// Every flowctl on this host reaps on its first container start,
		// and tests of other packages may start one meanwhile: the orphan
		// may be gone before the next run of this test. What must hold is
		// that it does not survive that run.
		left := containersOf(t, cli, orphan)
		if len(left) > 1 {
			t.Fatalf("after SIGKILL of flowctl: %d containers of %s; want the 1 left behind", len(left), orphan)
		}
		stillThere := len(left) == 1
		if !stillThere {
			t.Log("another flowctl on this host reaped the orphan first")
		}
		out := filepath.Join(dir, "reaper.jsonl")
		r = startFlowctl(t, flowctl, dir, dockerPipeline("dk-reaper-"+suffix, image, 100, 0, out))
		if err := r.wait(); err != nil {
			t.Fatalf("flowctl run: %v\n%s", err, r.text())
		}
		checkIDs(t, out, 100)
		if left := containersOf(t, cli, orphan); len(left) != 0 {
			t.Errorf("the next flowctl run left the orphan %v\n%s", left, r.text())
		}
		if stillThere && !containsReaped(r.text()) {
			t.Errorf("no log of the reaping:\n%s", r.text())
		}
	})
}

func dockerPipeline(name, image string, count, rate int, out string) string {
	return fmt.Sprintf(`name: %s
sources:
  - name: gen
    type: generate
    config:
      count: %d
      rate: %d
      expr: '{"id": i, "amount": (i * 7919) %% 10000, "kind": "fee"}'
processors:
  - name: usd
    image: %s
    protocol: grpc
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [usd]
    config: {path: %q}
`, name, count, rate, image, out)
}

// flowctlRun is a running `flowctl run` whose stderr is collected.
type flowctlRun struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	logs    strings.Builder
	started chan string // container ids, as their start is logged
	done    chan struct{}
}

var containerStartedRE = regexp.MustCompile(`component started.*component=usd container=([0-9a-f]+)`)

func startFlowctl(t *testing.T, flowctl, dir, pipeline string) *flowctlRun {
	t.Helper()
	file, err := os.CreateTemp(dir, "p-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file.WriteString(pipeline)
	file.Close()
	r := &flowctlRun{started: make(chan string, 16), done: make(chan struct{})}
	r.cmd = exec.Command(flowctl, "run", "-f", file.Name(), "--state-dir", t.TempDir())
	r.cmd.Dir = dir
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.logs.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			if m := containerStartedRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case r.started <- m[1]:
				default:
				}
			}
		}
	}()
	return r
}

func (r *flowctlRun) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

// wait waits for the run to end (within two minutes).
func (r *flowctlRun) wait() error {
	select {
	case <-r.done:
	case <-time.After(2 * time.Minute):
		r.cmd.Process.Kill()
		<-r.done
	}
	return r.cmd.Wait()
}

// waitContainer returns the id of the next container whose start is
// logged.
func (r *flowctlRun) waitContainer(t *testing.T) string {
	t.Helper()
	select {
	case id := <-r.started:
		return id
	case <-r.done:
		t.Fatalf("flowctl ended before its container started:\n%s", r.text())
	case <-time.After(time.Minute):
		t.Fatalf("no container started within a minute:\n%s", r.text())
	}
	return ""
}

// waitLines waits until file has at least n lines, so that events are
// flowing through the container; r (nil: none) is the run writing it.
func waitLines(t *testing.T, file string, n int, r *flowctlRun) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(file); err == nil && strings.Count(string(b), "\n") >= n {
			return
		}
		if r == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		select {
		case <-r.done:
			t.Fatalf("flowctl ended before %d events arrived:\n%s", n, r.text())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("fewer than %d events in %s within a minute", n, file)
}

// checkIDs checks that file holds every id below count, each processed
// (kind upper-cased); duplicates are allowed (at-least-once).
func checkIDs(t *testing.T, file string, count int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make([]bool, count)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			ID   int
			Kind string
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.ID < 0 || ev.ID >= count || ev.Kind != "FEE" {
			t.Fatalf("bad output %s (%v)", sc.Bytes(), err)
		}
		seen[ev.ID] = true
	}
	missing := 0
	for _, ok := range seen {
		if !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events missing", missing, count)
	}
}

// containersOf returns the ids of the containers of pipeline name.
func containersOf(t *testing.T, cli *client.Client, name string) []string {
	t.Helper()
	f := client.Filters{}
	f.Add("label", docker.LabelPipeline+"="+name)
	list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID[:12])
	}
	return ids
}

// containsReaped reports whether a run's log says it removed containers
// of a flowctl that is gone.
func containsReaped(log string) bool {
	return strings.Contains(log, "removed containers left by a flowctl that is gone")
}
