package sdk_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// childEnv names the role a re-executed test binary plays.
const childEnv = "SDK_TEST_CHILD"

// TestMain lets the test binary re-exec itself as a component process, so
// that a real SIGTERM reaches a real Serve.
func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

func runChild(role string) int {
	var c any
	switch role {
	case "slow-processor":
		// 100ms per event: batches are still in hand when SIGTERM comes.
		c = sdk.ProcessorFunc(func(ctx context.Context, e *sdk.Event) ([]*sdk.Event, error) {
			time.Sleep(100 * time.Millisecond)
			return []*sdk.Event{e}, nil
		})
	case "spawner":
		// Starts a slow-processor grandchild, prints its pid and exits,
		// as a flowctl that dies would.
		log, err := os.Create(os.Getenv("SDK_TEST_LOG"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"=slow-processor")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println(cmd.Process.Pid)
		io.Copy(io.Discard, os.Stdin) // die when the test says so
		return 0
	default:
		fmt.Fprintf(os.Stderr, "unknown child role %q\n", role)
		return 2
	}
	if err := sdk.Serve(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		return 3
	}
	return 0
}

// syncBuffer is a bytes.Buffer safe for the child's output goroutines.
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

// child is a component process started from this test binary.
type child struct {
	cmd    *exec.Cmd
	exited chan error
	out    *syncBuffer
	conn   *grpc.ClientConn
	reg    *controlplane.Registry
	id     string
}

func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cp := controlplane.NewServer(controlplane.NewRegistry(controlplane.Options{}), nil)
	addr, err := cp.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	c := &child{exited: make(chan error, 1), out: &syncBuffer{}, reg: cp.Registry(), id: "child-" + role}
	c.cmd = exec.Command(os.Args[0])
	c.cmd.Env = append(os.Environ(), childEnv+"="+role,
		sdk.EnvEnable+"=true", sdk.EnvEndpoint+"="+addr, sdk.EnvComponentID+"="+c.id,
		sdk.EnvPort+"=127.0.0.1:0", sdk.EnvHeartbeatInterval+"=200ms")
	c.cmd.Env = append(c.cmd.Env, env...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("child output:\n%s", c.out.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := cp.Registry().WaitRegistered(ctx, c.id)
	if err != nil {
		t.Fatalf("child did not register: %v\n%s", err, c.out.String())
	}
	c.conn, err = grpc.NewClient(e.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.conn.Close() })
	return c
}

func (c *child) waitExit(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case err := <-c.exited:
		c.exited <- err
		if err != nil {
			t.Fatalf("child exited with %v, want status 0", err)
		}
	case <-time.After(within):
		t.Fatalf("child still running %v after SIGTERM", within)
	}
}

// TestSIGTERMDrainsInFlightBatches: a component process with three batches
// in hand gets a real SIGTERM. It announces Drain, reports STOPPING, answers
// all three exactly once (without granting new credit), ends the stream
// when flowctl closes its side, deregisters and exits 0.
func TestSIGTERMDrainsInFlightBatches(t *testing.T) {
	c := startChild(t, "slow-processor")
	ctx := ctxT(t)
	w := c.reg.Watch(ctx, false)
	s, err := streamv1.NewProcessorServiceClient(c.conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.Recv(); err != nil || m.GetCredit().GetBatches() != sdk.DefaultInitialCredit {
		t.Fatalf("first message %v %v", m, err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		// Two events each: 200ms per batch, 600ms for the three.
		if err := s.Send(&streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: seq, Events: jsonEvents(fmt.Sprint(seq), 2)}}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // let the batches reach the child
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	answered := map[uint64]int{}
	drained := false
	for len(answered) < 3 || !drained {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("stream broke during the drain: %v (answered %v, drained %v)", err, answered, drained)
		}
		if m.GetDrain() != nil {
			drained = true
		}
		if r := m.GetResult(); r != nil {
			answered[r.GetSeq()]++
			if len(r.GetOutputs()) != 2 {
				t.Fatalf("seq %d: %d outputs, want 2", r.GetSeq(), len(r.GetOutputs()))
			}
			if drained && m.GetCredit() != nil {
				t.Fatalf("seq %d answered with new credit after Drain", r.GetSeq())
			}
		}
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if answered[seq] != 1 {
			t.Fatalf("answers per seq %v, want each of 1..3 once", answered)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("stream end after CloseSend: %v, want clean EOF", err)
	}
	c.waitExit(t, 5*time.Second)

	// What the registry saw, up to the removal: STOPPING, never HEALTHY
	// again after it, then removed. On a starved machine two more changes
	// are normal and allowed: a registration retried after its first
	// attempt timed out shows as updated:healthy before the drain, and
	// heartbeats that time out during the drain let the TTL lapse
	// (unhealthy) before the removal.
	var kinds []string
	for len(kinds) == 0 || !strings.HasPrefix(kinds[len(kinds)-1], "removed:") {
		select {
		case ch := <-w.C:
			kinds = append(kinds, fmt.Sprintf("%s:%s", ch.Kind, ch.Entry.Health))
		case <-time.After(5 * time.Second):
			t.Fatalf("registry changes %v, want health stopping then removed", kinds)
		}
	}
	stopping := slices.Index(kinds, "health:stopping")
	if stopping < 0 {
		t.Fatalf("registry changes %v: no health:stopping before the removal", kinds)
	}
	for i, k := range kinds {
		switch {
		case i < stopping && k != "updated:healthy":
			t.Fatalf("registry changes %v: %s before stopping", kinds, k)
		case i > stopping && strings.HasSuffix(k, ":healthy"):
			t.Fatalf("registry changes %v: healthy again after stopping", kinds)
		}
	}
	if want := []string{"health:stopping", "removed:stopping"}; !slices.Equal(kinds, want) {
		t.Logf("registry changes %v (a loaded machine; the unloaded sequence is %v)", kinds, want)
	}
}

// TestSIGTERMDrainTimeout: when flowctl never closes its side after Drain,
// the component still exits once FLOWCTL_DRAIN_TIMEOUT has passed.
func TestSIGTERMDrainTimeout(t *testing.T) {
	c := startChild(t, "slow-processor", sdk.EnvDrainTimeout+"=500ms")
	s, err := streamv1.NewProcessorServiceClient(c.conn).Process(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	s.Send(&streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: 1, Events: jsonEvents("a", 1)}})
	time.Sleep(20 * time.Millisecond)
	began := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.waitExit(t, 5*time.Second)
	if d := time.Since(began); d < 400*time.Millisecond {
		t.Fatalf("exited after %v, before the 500ms drain timeout", d)
	}
}

// TestExitsWhenParentDies: a component whose parent (flowctl) exits while
// the control plane is still reachable notices the new parent and exits
// within about a second, instead of living on as an orphan.
func TestExitsWhenParentDies(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc to watch the orphan")
	}
	cp := controlplane.NewServer(controlplane.NewRegistry(controlplane.Options{}), nil)
	addr, err := cp.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=spawner",
		sdk.EnvEnable+"=true", sdk.EnvEndpoint+"="+addr, sdk.EnvComponentID+"=orphan",
		sdk.EnvPort+"=127.0.0.1:0", sdk.EnvHeartbeatInterval+"=10s")
	logPath := filepath.Join(t.TempDir(), "orphan.log")
	cmd.Env = append(cmd.Env, "SDK_TEST_LOG="+logPath)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := logFile(logPath)
	var pid int
	if _, err := fmt.Fscan(stdout, &pid); err != nil {
		t.Fatalf("spawner printed no pid: %v", err)
	}
	defer func() {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cp.Registry().WaitRegistered(ctx, "orphan"); err != nil {
		t.Fatalf("orphan did not register: %v\n%s", err, out.String())
	}
	// Now flowctl "dies": the spawner exits and the component is orphaned
	// while the control plane still answers its heartbeats.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("spawner: %v", err)
	}
	// The parent is already gone; with a 10s heartbeat interval only the
	// parent check can notice within the deadline.
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break // exited (reaped, or a zombie of its new parent)
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d still running 5s after its parent exited\n%s", pid, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "flowctl is gone") {
		t.Fatalf("orphan did not say why it exited:\n%s", out.String())
	}
}

// logFile reads a file on demand, for messages in failures.
type logFile string

func (l logFile) String() string {
	b, _ := os.ReadFile(string(l))
	return string(b)
}

// TestHealthPort: with HEALTH_PORT set, GET /health answers 200 while the
// component serves, for engines that probe over HTTP.
func TestHealthPort(t *testing.T) {
	port := portBelowEphemeral(t)
	start(t, behaviourProcessor, map[string]string{sdk.EnvHealthPort: port})
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err = http.Get("http://" + port + "/health")
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("GET /health = %d %q", resp.StatusCode, body)
	}
}

// portBelowEphemeral returns a loopback address whose port is free now and
// lies below Linux's default ephemeral range (32768–60999): the component's
// own listener (port 0) is then never given the same port, as it was once
// when the test took a port from that range and closed it.
func portBelowEphemeral(t *testing.T) string {
	t.Helper()
	for p := 20000 + os.Getpid()%10000; p < 32768; p += 7 {
		lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			addr := lis.Addr().String()
			lis.Close()
			return addr
		}
	}
	t.Fatal("no free port below 32768")
	return ""
}
