package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/pkg/wire/flowctlpb"
)

// buildLegacyComponent builds test/legacycomponent, a separate module that
// imports only the generated flowctl package and gRPC, the way an outside
// author builds a component of the older ecosystem.
func buildLegacyComponent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "legacycomponent")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..", "test", "legacycomponent")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test/legacycomponent: %v\n%s", err, out)
	}
	return bin
}

// legacyPipeline is three components that move their data themselves,
// chained by inputs (which order their start).
func legacyPipeline(name, bin, dir string) string {
	comp := func(id, role string) string {
		return fmt.Sprintf(`    command: [%q]
    protocol: none
    env:
      ROLE: %s
      STARTS_FILE: %q
      PAUSE_FILE: %q
`, bin, role, filepath.Join(dir, "starts"), filepath.Join(dir, id+".pause"))
	}
	return "name: " + name + "\nsources:\n  - name: ledger\n" + comp("ledger", "source") +
		"processors:\n  - name: ttp\n    inputs: [ledger]\n" + comp("ttp", "processor") +
		"sinks:\n  - name: consumer\n    inputs: [ttp]\n" + comp("consumer", "sink")
}

// startLine is one "start ID PID ENDPOINT" line of the components' file.
type startLine struct{ id, pid, endpoint string }

func starts(path string) (started []startLine, stopped map[string]bool) {
	b, _ := os.ReadFile(path)
	stopped = map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 4 && f[0] == "start":
			started = append(started, startLine{f[1], f[2], f[3]})
		case len(f) == 3 && f[0] == "stop":
			stopped[f[2]] = true
		}
	}
	return started, stopped
}

// spawnOrder lists the component ids of the STARTS_FILE at path in the
// order their processes began (each writes its line before registering).
func spawnOrder(path string) []string {
	b, _ := os.ReadFile(path)
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "spawn" {
			ids = append(ids, f[1])
		}
	}
	return ids
}

func countStarts(lines []startLine, id string) int {
	n := 0
	for _, l := range lines {
		if l.id == id {
			n++
		}
	}
	return n
}

// legacyServices lists the services of the control plane at endpoint
// through flowctl.ControlPlane: id → healthy.
func legacyServices(t *testing.T, endpoint string) map[string]bool {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := flowctlpb.NewControlPlaneClient(conn).ListServices(ctx, &emptypb.Empty{})
	if err != nil {
		t.Fatalf("ListServices at %s: %v", endpoint, err)
	}
	out := map[string]bool{}
	for _, s := range list.GetServices() {
		out[s.GetServiceId()] = s.GetIsHealthy()
	}
	return out
}

// TestRunLegacyComponents: under flowctl run, components that register
// only through flowctl.ControlPlane are started in input order, shown
// healthy, killed and started again when their heartbeats stop past the
// TTL, and stopped at the end.
func TestRunLegacyComponents(t *testing.T) {
	bin := flowctlBinary(t)
	comp := buildLegacyComponent(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "legacy.yaml")
	if err := os.WriteFile(file, []byte(legacyPipeline("legacy", comp, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cmd := exec.Command(bin, "run", "-f", file, "--state-dir", t.TempDir(),
		"--heartbeat-interval", "200ms", "--heartbeat-ttl", "1s")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("flowctl run output:\n%s", out.String())
		}
	})
	startsFile := filepath.Join(dir, "starts")

	var lines []startLine
	waitFor(t, 30*time.Second, "the three components to register", func() bool {
		lines, _ = starts(startsFile)
		return len(lines) >= 3
	})
	if got := spawnOrder(startsFile); len(got) < 3 || strings.Join(got[:3], ",") != "ledger,ttp,consumer" {
		t.Fatalf("start order = %v, want ledger,ttp,consumer (each after its inputs registered)", got)
	}
	endpoint := lines[0].endpoint
	waitFor(t, 10*time.Second, "every component healthy in flowctl.ControlPlane's ListServices", func() bool {
		s := legacyServices(t, endpoint)
		return len(s) == 3 && s["ledger"] && s["ttp"] && s["consumer"]
	})

	// ttp stops heartbeating: past the TTL it is killed and started again.
	if err := os.WriteFile(filepath.Join(dir, "ttp.pause"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "ttp to be started again after its heartbeats stopped", func() bool {
		lines, _ = starts(startsFile)
		return countStarts(lines, "ttp") == 2
	})
	waitFor(t, 10*time.Second, "ttp healthy again", func() bool { return legacyServices(t, endpoint)["ttp"] })
	if !strings.Contains(out.String(), "component unhealthy") {
		t.Errorf("flowctl run did not say why it restarted ttp:\n%s", out.String())
	}
	if n := countStarts(lines, "ledger") + countStarts(lines, "consumer"); n != 2 {
		t.Errorf("ledger and consumer started %d times, want once each", n)
	}

	// SIGTERM: the run stops every component and exits 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("flowctl run ended with %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("flowctl run did not stop within 30s of SIGTERM")
	}
	lines, stopped := starts(startsFile)
	for _, id := range []string{"ledger", "ttp", "consumer"} {
		last := ""
		for _, l := range lines {
			if l.id == id {
				last = l.pid
			}
		}
		if !stopped[last] {
			t.Errorf("%s (pid %s) did not stop on SIGTERM", id, last)
		}
	}
}

// TestRunLegacyWrongID: a component that registers under another id than
// its name fails the start with an error naming the id it did register
// as, and how to fix it.
func TestRunLegacyWrongID(t *testing.T) {
	bin := flowctlBinary(t)
	comp := buildLegacyComponent(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "wrong.yaml")
	text := fmt.Sprintf(`name: wrong
sources:
  - name: proc
    command: [%q]
    protocol: none
    startup_timeout: 2s
    restart_policy: "no"
    env: {ROLE: source, SERVICE_ID: example-processor-1}
processors:
  - name: after
    command: [%q]
    protocol: none
    inputs: [proc]
sinks:
  - name: end
    command: [%q]
    protocol: none
    inputs: [after]
`, comp, comp, comp)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-f", file, "--state-dir", t.TempDir())
	b, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("flowctl run succeeded, want a failure:\n%s", b)
	}
	for _, want := range []string{
		`component "proc" did not register`,
		"registered meanwhile: example-processor-1 (flowctl.ControlPlane, refused",
		"SERVICE_ID: proc",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("output lacks %q:\n%s", want, b)
		}
	}
}

// TestServerLegacyComponents: under flowctl server, the same components are
// started by the pipeline's child, shown healthy by `flowctl get
// components`, started again when their heartbeats stop past the TTL, and
// the server's own flowctl.ControlPlane lists the pipeline's run.
func TestServerLegacyComponents(t *testing.T) {
	bin := flowctlBinary(t)
	comp := buildLegacyComponent(t)
	work, dataDir := t.TempDir(), t.TempDir()
	sp := startServerProc(t, bin, dataDir)
	c := dialControl(t, sp.addr)
	apply(t, c, work, "legacy.yaml", legacyPipeline("legacy", comp, work))
	startsFile := filepath.Join(work, "starts")

	cli := func(args ...string) string {
		t.Helper()
		b, err := exec.Command(bin, append(args, "--server", sp.addr)...).CombinedOutput()
		if err != nil {
			t.Fatalf("flowctl %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	healthy := func() map[string]bool {
		out := map[string]bool{}
		for _, cs := range getPipeline(t, c, "legacy").GetComponents() {
			out[cs.GetName()] = cs.GetHealth().String() == "HEALTH_STATUS_HEALTHY"
		}
		return out
	}
	var lines []startLine
	waitFor(t, 30*time.Second, "the three components to register", func() bool {
		lines, _ = starts(startsFile)
		return len(lines) >= 3
	})
	if got := spawnOrder(startsFile); len(got) < 3 || strings.Join(got[:3], ",") != "ledger,ttp,consumer" {
		t.Fatalf("start order = %v, want ledger,ttp,consumer", got)
	}
	waitFor(t, 15*time.Second, "every component healthy in the pipeline's status", func() bool {
		h := healthy()
		return h["ledger"] && h["ttp"] && h["consumer"]
	})
	out := cli("get", "components", "legacy")
	for _, name := range []string{"ledger", "ttp", "consumer"} {
		if !strings.Contains(out, name) {
			t.Errorf("flowctl get components lacks %s:\n%s", name, out)
		}
	}
	if strings.Count(out, "Healthy") != 3 {
		t.Errorf("flowctl get components does not show the three healthy:\n%s", out)
	}

	// ttp stops heartbeating (to the child's control plane): the child
	// kills it and starts it again.
	if err := os.WriteFile(filepath.Join(work, "ttp.pause"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "ttp to be started again after its heartbeats stopped", func() bool {
		lines, _ = starts(startsFile)
		return countStarts(lines, "ttp") == 2
	})
	waitFor(t, 15*time.Second, "ttp healthy again", func() bool { return healthy()["ttp"] })

	// The server's flowctl.ControlPlane answers with its run history, and
	// refuses to create a run.
	conn, err := grpc.NewClient(sp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lc := flowctlpb.NewControlPlaneClient(conn)
	runs, err := lc.ListPipelineRuns(ctx, &flowctlpb.ListPipelineRunsRequest{PipelineName: "legacy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.GetRuns()) != 1 || runs.GetRuns()[0].GetRunId() != "legacy/1" || runs.GetRuns()[0].GetStatus() != flowctlpb.RunStatus_RUN_STATUS_RUNNING ||
		len(runs.GetRuns()[0].GetComponentIds()) != 3 {
		t.Fatalf("ListPipelineRuns = %v, want legacy/1 running with 3 components", runs)
	}
	if _, err := lc.CreatePipelineRun(ctx, &flowctlpb.CreatePipelineRunRequest{PipelineName: "legacy"}); err == nil || !strings.Contains(err.Error(), "FailedPrecondition") {
		t.Errorf("CreatePipelineRun = %v, want FailedPrecondition", err)
	}

	// Deleting the pipeline stops its components.
	cli("delete", "pipeline", "legacy")
	waitFor(t, 30*time.Second, "the components to stop", func() bool {
		lines, stopped := starts(startsFile)
		last := map[string]string{}
		for _, l := range lines {
			last[l.id] = l.pid
		}
		for _, pid := range last {
			if !stopped[pid] {
				return false
			}
		}
		return len(last) == 3
	})
}
