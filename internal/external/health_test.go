//go:build linux

package external

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/sdk"
)

// envSDKChild makes the test binary serve a processor with the Go SDK
// instead of running the tests: it answers each event with a copy whose
// metadata names its pid, after sleeping SLEEP (a Go duration) if set.
const envSDKChild = "FLOWCTL_TEST_SDK_CHILD"

// The SDK child runs from init, before TestMain: child_test.go's TestMain
// knows only the stdio and http children.
func init() {
	if os.Getenv(envSDKChild) == "" {
		return
	}
	sleep, _ := time.ParseDuration(os.Getenv("SLEEP"))
	pid := strconv.Itoa(os.Getpid())
	proc := sdk.ProcessorFunc(func(ctx context.Context, e *sdk.Event) ([]*sdk.Event, error) {
		if sleep > 0 {
			select {
			case <-time.After(sleep):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		out := *e
		out.Metadata = map[string]string{"pid": pid}
		return []*sdk.Event{&out}, nil
	})
	if err := sdk.Serve(context.Background(), proc, sdk.WithInfo(sdk.Info{Name: "health-child", Version: "1"})); err != nil {
		fmt.Fprintln(os.Stderr, "health-child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Heartbeat tuning of the health tests: short, so that a hung child is
// found in about a second.
const (
	testHeartbeat = 200 * time.Millisecond
	testTTL       = time.Second
)

// healthRig is a supervised SDK processor child under a real embedded
// control plane, as flowctl run sets them up.
type healthRig struct {
	reg *controlplane.Registry
	sup *Supervisor
	p   *Processor
}

func newHealthRig(t *testing.T, name string, env map[string]string) *healthRig {
	t.Helper()
	reg := controlplane.NewRegistry(controlplane.Options{HeartbeatInterval: testHeartbeat, DefaultTTL: testTTL})
	cp := controlplane.NewServer(reg, nil)
	addr, err := cp.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	rt := &Runtime{
		Pipeline: "health", Logger: grpcLogger(t), ControlPlane: cp, Endpoint: addr,
		HeartbeatInterval: testHeartbeat, HeartbeatTTL: testTTL,
	}
	cenv := map[string]string{envSDKChild: "1"}
	for k, v := range env {
		cenv[k] = v
	}
	c := &spec.Component{
		Name: name, Role: flow.RoleProcessor, Runner: spec.RunProcess, Protocol: "grpc",
		Command: []string{os.Args[0]}, Env: cenv, StopGrace: 2 * time.Second,
	}
	proto, err := LookupProtocol("grpc")
	if err != nil {
		t.Fatal(err)
	}
	r := &healthRig{reg: reg, sup: NewSupervisor(rt, c, proto)}
	r.p = NewProcessor(r.sup)
	if err := r.p.Open(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.p.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return r
}

// process sends batch and checks that every event is answered with one
// output; it returns the pid that answered.
func (r *healthRig) process(ctx context.Context, batch []*flow.Event) (string, error) {
	outs, fails, err := r.p.ProcessBatch(ctx, batch)
	if err != nil {
		return "", err
	}
	if len(fails) > 0 {
		return "", fmt.Errorf("failures: %v", fails)
	}
	pid := ""
	for i, o := range outs {
		if len(o) != 1 {
			return "", fmt.Errorf("event %d: %d outputs, want 1", i, len(o))
		}
		if string(o[0].Data) != string(batch[i].Data) {
			return "", fmt.Errorf("event %d: data %s, want %s", i, o[0].Data, batch[i].Data)
		}
		pid = o[0].Metadata["pid"]
	}
	return pid, nil
}

// TestHungComponentIsUnhealthyAndRestarted is the Done-when of issue #5:
// a SIGSTOPped gRPC component becomes UNHEALTHY within TTL + 1 s, is
// killed and restarted with a new PID, and the batches in flight at the
// stop are answered by the new process.
func TestHungComponentIsUnhealthyAndRestarted(t *testing.T) {
	r := newHealthRig(t, "hung", nil)
	ctx := testCtx(t)
	for i := range 5 {
		if _, err := r.process(ctx, jsonBatch(fmt.Sprintf("warm%d", i), 10, nil)); err != nil {
			t.Fatalf("batch %d before the stop: %v", i, err)
		}
	}
	oldPID := r.sup.PID()
	if oldPID == 0 {
		t.Fatal("no pid")
	}
	before, ok := r.reg.Get("hung")
	if !ok || before.Health != controlplane.HealthHealthy {
		t.Fatalf("entry before the stop: %+v (found %v), want HEALTHY", before, ok)
	}
	if before.TTL != testTTL {
		t.Fatalf("registered TTL %v, want %v (FLOWCTL_TTL)", before.TTL, testTTL)
	}
	if h := r.sup.Health(); h != controlplane.HealthHealthy {
		t.Fatalf("supervisor health before the stop: %v, want HEALTHY", h)
	}

	// Freeze the whole process group: alive, silent.
	if err := syscall.Kill(-oldPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	t.Cleanup(func() { syscall.Kill(-oldPID, syscall.SIGCONT) }) // in case it failed
	// Signals are delivered asynchronously: send the in-flight batches
	// once every thread of the child is stopped.
	waitStopped(t, oldPID)
	const inFlight = 3
	type answer struct {
		n   int
		pid string
		err error
	}
	answers := make(chan answer, inFlight)
	for i := range inFlight {
		go func() {
			pid, err := r.process(ctx, jsonBatch(fmt.Sprintf("inflight%d", i), 20, nil))
			answers <- answer{i, pid, err}
		}()
	}

	// The registry must say UNHEALTHY within TTL + 1 s of the stop (the
	// entry is replaced once the restarted process registers).
	var unhealthyAfter time.Duration
	for deadline := stoppedAt.Add(testTTL + time.Second); ; time.Sleep(5 * time.Millisecond) {
		e, ok := r.reg.Get("hung")
		if ok && e.RegisteredAt.Equal(before.RegisteredAt) && e.Health == controlplane.HealthUnhealthy {
			unhealthyAfter = time.Since(stoppedAt)
			// What flowctl reports to a server for it: UNHEALTHY (or
			// STARTING, if the restart already began).
			if h := r.sup.Health(); h != controlplane.HealthUnhealthy && h != controlplane.HealthStarting {
				t.Fatalf("supervisor health while the entry is UNHEALTHY: %v", h)
			}
			break
		}
		if ok && e.RegisteredAt.After(before.RegisteredAt) {
			t.Fatalf("the component registered again before its old entry was seen UNHEALTHY")
		}
		if time.Now().After(deadline) {
			t.Fatalf("not UNHEALTHY %v after SIGSTOP (TTL %v): %+v", time.Since(stoppedAt), testTTL, e)
		}
	}
	t.Logf("UNHEALTHY %v after SIGSTOP (TTL %v)", unhealthyAfter.Round(time.Millisecond), testTTL)

	// The batches in flight at the stop are answered by a new process.
	timeout := time.After(10 * time.Second)
	for range inFlight {
		select {
		case a := <-answers:
			if a.err != nil {
				t.Fatalf("in-flight batch %d: %v", a.n, a.err)
			}
			if a.pid == "" || a.pid == strconv.Itoa(oldPID) {
				t.Fatalf("in-flight batch %d answered by pid %q, want a new process (old %d)", a.n, a.pid, oldPID)
			}
		case <-timeout:
			t.Fatalf("in-flight batches not answered 10s after the restart (%+v)", r.sup.Stats())
		}
	}
	restartedAfter := time.Since(stoppedAt)
	newPID := r.sup.PID()
	if newPID == 0 || newPID == oldPID {
		t.Fatalf("pid after the restart %d, want a new one (old %d)", newPID, oldPID)
	}
	if err := syscall.Kill(oldPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("old process %d still exists (kill 0: %v)", oldPID, err)
	}
	pid, err := r.process(ctx, jsonBatch("after", 10, nil))
	if err != nil || pid != strconv.Itoa(newPID) {
		t.Fatalf("batch after the restart: pid %q, err %v; want pid %d", pid, err, newPID)
	}
	e, _ := r.reg.Get("hung")
	if e.Health != controlplane.HealthHealthy || !e.RegisteredAt.After(stoppedAt) {
		t.Fatalf("entry after the restart: %+v, want a new HEALTHY registration", e)
	}
	if h := r.sup.Health(); h != controlplane.HealthHealthy {
		t.Fatalf("supervisor health after the restart: %v, want HEALTHY", h)
	}
	st := r.sup.Stats()
	if st.Unhealthy != 1 || st.Restarts != 1 {
		t.Fatalf("stats %+v, want 1 unhealthy kill and 1 restart", st)
	}
	if st.RedeliveredBatches < inFlight {
		t.Fatalf("stats %+v, want the %d in-flight batches redelivered", st, inFlight)
	}
	t.Logf("old pid %d, new pid %d; in-flight batches answered %v after SIGSTOP; %+v",
		oldPID, newPID, restartedAfter.Round(time.Millisecond), st)
}

// TestSlowHealthyComponentIsNotKilled: a component that takes longer than
// its TTL to answer but keeps heartbeating is left alone.
func TestSlowHealthyComponentIsNotKilled(t *testing.T) {
	const sleep = 2500 * time.Millisecond // 2.5 TTLs per event
	r := newHealthRig(t, "slow", map[string]string{"SLEEP": sleep.String()})
	ctx := testCtx(t)
	pid := r.sup.PID()
	start := time.Now()
	got, err := r.process(ctx, jsonBatch("slow", 1, nil))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < sleep {
		t.Fatalf("answered in %v, before the child's %v sleep", took, sleep)
	}
	if got != strconv.Itoa(pid) || r.sup.PID() != pid {
		t.Fatalf("answered by pid %s, supervisor pid now %d; want the first one, %d", got, r.sup.PID(), pid)
	}
	e, _ := r.reg.Get("slow")
	if e.Health != controlplane.HealthHealthy {
		t.Fatalf("entry %+v, want HEALTHY", e)
	}
	if st := r.sup.Stats(); st.Unhealthy != 0 || st.Restarts != 0 {
		t.Fatalf("stats %+v, want no unhealthy kill and no restart", st)
	}
}

// waitStopped waits until every thread of pid is in state T (stopped).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		stopped := 0
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			if err != nil {
				continue
			}
			// pid (comm) state ...: comm may hold spaces, so cut at the last ')'.
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
				stopped++
			}
		}
		if stopped == len(tasks) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: %d of %d threads stopped 5s after SIGSTOP", pid, stopped, len(tasks))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHealthPoll(t *testing.T) {
	for _, tc := range []struct {
		ttl, want time.Duration
	}{
		{0, healthPollDefault},
		{-time.Second, healthPollDefault},
		{time.Millisecond, healthPollMin},
		{time.Second, 200 * time.Millisecond},
		{3 * time.Second, healthPollMax},
		{30 * time.Second, healthPollMax},
	} {
		if got := healthPoll(tc.ttl); got != tc.want {
			t.Errorf("healthPoll(%v) = %v, want %v", tc.ttl, got, tc.want)
		}
	}
}

// TestRunRestartsHungComponent drives the real flowctl binary: generate →
// this test binary as an SDK processor (grpc) → file, with --heartbeat-interval 200ms
// --heartbeat-ttl 1s. The processor is SIGSTOPped while events flow; flowctl
// must kill it within TTL + 1 s, restart it, and deliver every event.
func TestRunRestartsHungComponent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flowctl")
	}
	dir := t.TempDir()
	proc, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	flowctl := filepath.Join(dir, "flowctl")
	build := exec.Command("go", "build", "-o", flowctl, "./cmd/flowctl")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build flowctl: %v\n%s", err, out)
	}
	const count = 15000
	out := filepath.Join(dir, "out.jsonl")
	pipeline := `name: grpc-hang
sources:
  - name: gen
    type: generate
    config:
      count: 15000
      rate: 5000
      expr: '{"id": i, "amount": i, "kind": "fee"}'
processors:
  - name: usd
    command: [` + strconv.Quote(proc) + `]
    protocol: grpc
    env: {` + envSDKChild + `: "1"}
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [usd]
    config: {path: ` + strconv.Quote(out) + `}
`
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(flowctl, "run", "-f", file, "--heartbeat-interval", "200ms", "--heartbeat-ttl", "1s", "--state-dir", t.TempDir())
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	startedRE := regexp.MustCompile(`component started.*component=usd pid=(\d+)`)
	unhealthyRE := regexp.MustCompile(`component unhealthy.*component=usd pid=(\d+)`)
	var (
		mu          sync.Mutex
		logs        strings.Builder
		stoppedPID  int
		stoppedAt   time.Time
		killedAfter time.Duration
		pids        []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			logs.WriteString(line + "\n")
			if m := startedRE.FindStringSubmatch(line); m != nil {
				pids = append(pids, m[1])
				if len(pids) == 1 {
					pid, _ := strconv.Atoi(m[1])
					go func() {
						time.Sleep(time.Second) // events are flowing by then
						mu.Lock()
						defer mu.Unlock()
						if err := syscall.Kill(-pid, syscall.SIGSTOP); err == nil {
							stoppedPID, stoppedAt = pid, time.Now()
						}
					}()
				}
			}
			if m := unhealthyRE.FindStringSubmatch(line); m != nil && !stoppedAt.IsZero() && m[1] == strconv.Itoa(stoppedPID) {
				killedAfter = time.Since(stoppedAt)
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if stoppedPID != 0 {
			syscall.Kill(-stoppedPID, syscall.SIGCONT)
		}
	})
	<-done
	err = cmd.Wait()
	mu.Lock()
	text := logs.String()
	after, stopped, started := killedAfter, stoppedPID, append([]string(nil), pids...)
	mu.Unlock()
	if err != nil {
		t.Fatalf("flowctl run: %v\n%s", err, text)
	}
	if stopped == 0 {
		t.Fatalf("the processor was never stopped:\n%s", text)
	}
	if after == 0 || after > 2*time.Second {
		t.Fatalf("hung pid %d killed as unhealthy %v after SIGSTOP, want within TTL + 1 s = 2s:\n%s", stopped, after, text)
	}
	if len(started) < 2 || started[1] == started[0] {
		t.Fatalf("no new process after the kill (pids %v):\n%s", started, text)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make([]bool, count)
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct{ ID int }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.ID < 0 || ev.ID >= count {
			t.Fatalf("bad output %s (%v)", sc.Bytes(), err)
		}
		seen[ev.ID] = true
		lines++
	}
	for id, ok := range seen {
		if !ok {
			t.Fatalf("event %d never reached the sink (%d lines)\n%s", id, lines, text)
		}
	}
	t.Logf("pid %d SIGSTOPped, killed as unhealthy %v later; pids %v; %d events, %d lines", stopped, after.Round(time.Millisecond), started, count, lines)
}
