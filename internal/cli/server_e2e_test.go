package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowctl/flowctl/internal/clientconfig"
	"github.com/flowctl/flowctl/internal/drivers/process"
	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// serverProc is a `flowctl server` started by a test.
type serverProc struct {
	cmd  *exec.Cmd
	addr string
	out  *syncBuffer
	done chan struct{}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutines of exec.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	// Below the kernel's ephemeral range, so no outgoing connection takes
	// it before the server binds it (see process.FreePort).
	port, err := process.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// socketOf is the address of the socket a server with dataDir listens on
// by default.
func socketOf(dataDir string) string { return "unix:" + clientconfig.SocketPath(dataDir) }

// startServerProc starts the real binary as a server with dataDir on its
// default socket and waits until it answers Status. It returns the
// socket's address.
func startServerProc(t *testing.T, bin, dataDir string) *serverProc {
	t.Helper()
	addr := socketOf(dataDir)
	sp := &serverProc{addr: addr, out: &syncBuffer{}, done: make(chan struct{})}
	sp.cmd = exec.Command(bin, "server", "--data-dir", dataDir, "--grace", "5s", "--log-level", "debug")
	sp.cmd.Stdout, sp.cmd.Stderr = sp.out, sp.out
	if err := sp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = sp.cmd.Wait(); close(sp.done) }()
	t.Cleanup(func() {
		select {
		case <-sp.done:
		default:
			_ = sp.cmd.Process.Kill()
			<-sp.done
		}
		if t.Failed() {
			t.Logf("server %s output:\n%s", addr, sp.out.String())
		}
	})
	c := dialControl(t, addr)
	waitFor(t, 15*time.Second, "the server to answer Status", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.status.Status(ctx, &controlv1.StatusRequest{})
		return err == nil
	})
	return sp
}

// controlClient holds a stub per control service.
type controlClient struct {
	pipelines controlv1.PipelineServiceClient
	runs      controlv1.RunServiceClient
	logs      controlv1.LogServiceClient
	status    controlv1.StatusServiceClient
}

func dialControl(t *testing.T, addr string) *controlClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &controlClient{
		pipelines: controlv1.NewPipelineServiceClient(conn),
		runs:      controlv1.NewRunServiceClient(conn),
		logs:      controlv1.NewLogServiceClient(conn),
		status:    controlv1.NewStatusServiceClient(conn),
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pidAlive reports whether pid runs (a zombie does not count). It reads
// /proc, so it is false everywhere but Linux.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == fmt.Sprint(pid) {
			var p int
			fmt.Sscan(e.Name(), &p)
			out = append(out, p)
		}
	}
	return out
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

func getPipeline(t *testing.T, c *controlClient, name string) *controlv1.Pipeline {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.pipelines.Get(ctx, &controlv1.GetPipelineRequest{Name: name})
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return resp.GetPipeline()
}

func apply(t *testing.T, c *controlClient, dir, file, text string) *controlv1.ApplyResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.pipelines.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(text), Dir: dir, File: file})
	if err != nil {
		t.Fatalf("apply %s: %v", file, err)
	}
	return resp
}

func listRuns(t *testing.T, c *controlClient, name string) []*controlv1.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.runs.ListRuns(ctx, &controlv1.ListRunsRequest{Pipeline: name})
	if err != nil {
		t.Fatalf("list runs of %s: %v", name, err)
	}
	return resp.GetRuns()
}

func readyCondition(p *controlv1.Pipeline) bool {
	for _, c := range p.GetStatus().GetConditions() {
		if c.GetType() == "Ready" {
			return c.GetStatus() == controlv1.ConditionStatus_CONDITION_STATUS_TRUE
		}
	}
	return false
}

// streamPipeline keeps running; its sieve is an external process (sed
// speaking the stdio protocol, answering every event with "done"), so the
// child has a process of its own that must die with it.
const streamPipeline = `name: stream
sources:
  - name: gen
    type: generate
    config: {count: 0, rate: 50, data: {kind: tick}}
processors:
  - name: sieve
    command: [sed, -u, 's/^{"seq":\([0-9]*\),.*/{"seq":\1,"done":true}/']
    protocol: stdio
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: stream.jsonl}
  - name: none
    type: drop
    inputs: [sieve]
`

const boundedPipeline = `name: bounded
sources:
  - name: gen
    type: generate
    config: {count: 7, data: {kind: once}}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: bounded.jsonl}
`

const crashPipeline = `name: crashy
sources:
  - name: gen
    type: generate
    config: {count: 0, rate: 10, data: {kind: tick}}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: /etc/passwd/cannot/be/a/dir.jsonl}
`

// TestServerE2E drives `flowctl server` as a real process through its
// gRPC API: apply, output, idempotent re-apply, a rejected file, SIGKILL
// and restart (same revision, the interrupted run in the history), a
// bounded pipeline that completes and stays completed, a crashing one
// that is restarted with backoff, delete (the processes are gone), and a
// clean SIGTERM shutdown.
func TestServerE2E(t *testing.T) {
	bin := flowctlBinary(t)
	work, dataDir := t.TempDir(), t.TempDir()
	sp := startServerProc(t, bin, dataDir)
	c := dialControl(t, sp.addr)
	out := filepath.Join(work, "stream.jsonl")

	// Apply: revision 1, the child writes output.
	resp := apply(t, c, work, "stream.yaml", streamPipeline)
	if resp.GetRejected() || !resp.GetChanged() || resp.GetRevision() != 1 {
		t.Fatalf("first apply = %v", resp)
	}
	waitFor(t, 15*time.Second, "output from the stream pipeline", func() bool { return countLines(out) >= 10 })
	waitFor(t, 15*time.Second, "the sieve process to answer events", func() bool {
		for _, comp := range getPipeline(t, c, "stream").GetComponents() {
			if comp.GetName() == "sieve" && comp.GetCounters()["filtered"] > 0 {
				return true
			}
		}
		return false
	})
	var pid1 int32
	waitFor(t, 10*time.Second, "the stream pipeline to be ready", func() bool {
		p := getPipeline(t, c, "stream")
		pid1 = p.GetStatus().GetPid()
		return p.GetStatus().GetPhase() == controlv1.Phase_PHASE_RUNNING && readyCondition(p) && pid1 > 0
	})

	// The same file again changes nothing; an invalid one is rejected and
	// the running revision keeps running.
	if again := apply(t, c, work, "stream.yaml", "# reformatted\n"+streamPipeline); again.GetChanged() || again.GetRevision() != 1 || again.GetHash() != resp.GetHash() {
		t.Fatalf("re-apply of the same content = %v, want unchanged revision 1 with hash %s", again, resp.GetHash())
	}
	bad := apply(t, c, work, "stream.yaml", strings.Replace(streamPipeline, "inputs: [gen]", "inputs: [nope]", 1))
	if !bad.GetRejected() || len(bad.GetDiagnostics()) == 0 || bad.GetRevision() != 1 {
		t.Fatalf("invalid apply = %v, want rejected with diagnostics at revision 1", bad)
	}
	if d := bad.GetDiagnostics()[0]; d.GetLine() == 0 || !strings.Contains(d.GetMessage()+d.GetHint(), "nope") {
		t.Errorf("diagnostic %v should name the line and the unknown input", d)
	}
	if p := getPipeline(t, c, "stream"); p.GetRevision() != 1 || p.GetStatus().GetPid() != pid1 {
		t.Fatalf("after a rejected apply: revision %d pid %d, want 1 and %d", p.GetRevision(), p.GetStatus().GetPid(), pid1)
	}

	// SIGKILL the server: its child and the child's sed die with it.
	family := append([]int{int(pid1)}, childrenOf(int(pid1))...)
	if len(family) < 2 {
		t.Fatalf("the child %d has no sieve process", pid1)
	}
	if err := sp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-sp.done
	waitFor(t, 5*time.Second, fmt.Sprintf("pids %v to die with the server", family), func() bool {
		for _, p := range family {
			if pidAlive(p) {
				return false
			}
		}
		return true
	})

	// Start it again: the same revision runs again, nothing applied twice.
	sp = startServerProc(t, bin, dataDir)
	before := countLines(out)
	var pid2 int32
	waitFor(t, 15*time.Second, "the stream pipeline to run again", func() bool {
		p := getPipeline(t, c, "stream")
		pid2 = p.GetStatus().GetPid()
		return p.GetStatus().GetPhase() == controlv1.Phase_PHASE_RUNNING && pid2 > 0 && pid2 != pid1
	})
	if p := getPipeline(t, c, "stream"); p.GetRevision() != 1 {
		t.Fatalf("revision after restart = %d, want 1", p.GetRevision())
	}
	waitFor(t, 10*time.Second, "new output after the restart", func() bool { return countLines(out) >= before+10 })
	runs := listRuns(t, c, "stream")
	if len(runs) != 2 {
		t.Fatalf("runs = %v, want 2", runs)
	}
	if runs[0].GetState() != controlv1.RunState_RUN_STATE_RUNNING || runs[1].GetState() != controlv1.RunState_RUN_STATE_INTERRUPTED {
		t.Fatalf("run states = %v, %v; want RUNNING (newest) and INTERRUPTED", runs[0].GetState(), runs[1].GetState())
	}
	for _, r := range runs {
		if r.GetRevision() != 1 {
			t.Errorf("run %d ran revision %d, want 1", r.GetId(), r.GetRevision())
		}
	}

	// A hung child (SIGSTOP: the process lives, its heartbeats stop) is
	// seen UNHEALTHY once the TTL passes, killed and started again.
	hungAt := time.Now()
	if err := stopPID(int(pid2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the hung child's components to be UNHEALTHY", func() bool {
		for _, comp := range getPipeline(t, c, "stream").GetComponents() {
			if comp.GetHealth() != streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY {
				return false
			}
		}
		return true
	})
	// The TTL is three 1s heartbeat intervals; the last heartbeat was at
	// most one interval before SIGSTOP (half a second more for polling on
	// a busy machine).
	unhealthyAfter := time.Since(hungAt)
	t.Logf("UNHEALTHY %s after SIGSTOP", unhealthyAfter.Round(10*time.Millisecond))
	if unhealthyAfter > 4500*time.Millisecond {
		t.Errorf("UNHEALTHY %s after SIGSTOP, want within the TTL (3s) + 1s", unhealthyAfter)
	}
	var pid3 int32
	waitFor(t, 15*time.Second, "the hung child to be replaced", func() bool {
		p := getPipeline(t, c, "stream")
		pid3 = p.GetStatus().GetPid()
		return pid3 > 0 && pid3 != pid2
	})
	t.Logf("hung child %d replaced by %d after %s", pid2, pid3, time.Since(hungAt).Round(10*time.Millisecond))
	if pidAlive(int(pid2)) {
		t.Errorf("the hung child %d still lives", pid2)
	}
	if hr := listRuns(t, c, "stream"); hr[1].GetState() != controlv1.RunState_RUN_STATE_FAILED || !strings.Contains(hr[1].GetReason(), "heartbeat") {
		t.Errorf("the hung run = %v, want FAILED for lack of heartbeats", hr[1])
	}
	pid2 = pid3

	// A bounded pipeline completes and is not started again.
	if r := apply(t, c, work, "bounded.yaml", boundedPipeline); r.GetRejected() {
		t.Fatalf("apply bounded: %v", r)
	}
	waitFor(t, 15*time.Second, "the bounded pipeline to complete", func() bool {
		return getPipeline(t, c, "bounded").GetStatus().GetPhase() == controlv1.Phase_PHASE_COMPLETED
	})
	if n := countLines(filepath.Join(work, "bounded.jsonl")); n != 7 {
		t.Errorf("bounded output has %d lines, want 7", n)
	}
	time.Sleep(3 * time.Second)
	if br := listRuns(t, c, "bounded"); len(br) != 1 || br[0].GetState() != controlv1.RunState_RUN_STATE_COMPLETED {
		t.Fatalf("bounded runs = %v, want one COMPLETED run", br)
	} else if br[0].GetCounters() == nil {
		t.Errorf("the completed run has no counters")
	}
	logs, err := c.logs.Logs(context.Background(), &controlv1.LogsRequest{Pipeline: "bounded", Tail: 50})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for {
		l, err := logs.Recv()
		if err != nil {
			break
		}
		text.WriteString(l.GetText() + "\n")
	}
	if !strings.Contains(text.String(), `pipeline "bounded" finished`) {
		t.Errorf("bounded logs lack the run summary:\n%s", text.String())
	}

	// A crashing pipeline fails with its reason and is restarted.
	apply(t, c, work, "crashy.yaml", crashPipeline)
	waitFor(t, 20*time.Second, "the crashing pipeline to be restarted", func() bool { return len(listRuns(t, c, "crashy")) >= 2 })
	cr := listRuns(t, c, "crashy")
	last := cr[len(cr)-1]
	if last.GetState() != controlv1.RunState_RUN_STATE_FAILED || !strings.Contains(last.GetReason(), "not a directory") {
		t.Errorf("first crashy run = %v, want FAILED naming the cause", last)
	}
	if p := getPipeline(t, c, "crashy"); p.GetStatus().GetLastError() == "" {
		t.Errorf("crashy status has no last error: %v", p.GetStatus())
	}

	// Delete stops the child and every process it started.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	del, err := c.pipelines.Delete(ctx, &controlv1.DeletePipelineRequest{Name: "stream"})
	if err != nil {
		t.Fatal(err)
	}
	if len(del.GetStoppedPids()) < 2 {
		t.Errorf("stopped pids %v: want the child and its sed process", del.GetStoppedPids())
	}
	found := false
	for _, p := range del.GetStoppedPids() {
		found = found || p == pid2
		if pidAlive(int(p)) {
			t.Errorf("pid %d still runs after delete", p)
		}
	}
	if !found {
		t.Errorf("stopped pids %v do not include the child %d", del.GetStoppedPids(), pid2)
	}
	if _, err := c.pipelines.Get(ctx, &controlv1.GetPipelineRequest{Name: "stream"}); err == nil {
		t.Errorf("get after delete succeeded")
	}
	if runs := listRuns(t, c, "stream"); runs[0].GetState() != controlv1.RunState_RUN_STATE_STOPPED {
		t.Errorf("run after delete = %v, want STOPPED", runs[0])
	}

	// SIGTERM: a clean shutdown within the grace.
	if err := sp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sp.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the server did not stop within 15s of SIGTERM")
	}
	if code := sp.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("server exit code after SIGTERM = %d, want 0", code)
	}
	if !strings.Contains(sp.out.String(), "every pipeline drained") {
		t.Errorf("shutdown output lacks the drained line:\n%s", sp.out.String())
	}

	// The next start brings back what was applied: the completed pipeline
	// stays completed (not run again), the deleted one stays deleted.
	startServerProc(t, bin, dataDir)
	time.Sleep(2 * time.Second)
	if br := listRuns(t, c, "bounded"); len(br) != 1 {
		t.Errorf("bounded ran again after a restart: %v", br)
	}
	if p := getPipeline(t, c, "bounded"); p.GetStatus().GetPhase() != controlv1.Phase_PHASE_COMPLETED {
		t.Errorf("bounded after restart: %v", p.GetStatus().GetPhase())
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	list, err := c.pipelines.List(ctx2, &controlv1.ListPipelinesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list.GetPipelines() {
		names = append(names, p.GetName())
	}
	if strings.Join(names, ",") != "bounded,crashy" {
		t.Errorf("pipelines after restart = %v, want bounded,crashy", names)
	}
}
