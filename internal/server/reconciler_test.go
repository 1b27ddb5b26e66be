package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/store/memory"
	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// fakeDriver is an in-memory drivers.Driver: its tasks run nothing and
// end when the test (Exit) or the reconciler (Stop, Kill) ends them.
type fakeDriver struct {
	// ignoreTerm makes Stop wait the whole grace, then "kill".
	ignoreTerm bool
	// failStarts is how many Start calls fail before one succeeds.
	failStarts int

	mu    sync.Mutex
	tasks []*fakeTask
	// started receives every task Start made.
	started chan *fakeTask
}

func newFakeDriver() *fakeDriver { return &fakeDriver{started: make(chan *fakeTask, 100)} }

func (d *fakeDriver) Name() string { return "fake" }

func (d *fakeDriver) Start(ctx context.Context, cfg drivers.TaskConfig) (drivers.Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.failStarts > 0 {
		d.failStarts--
		d.mu.Unlock()
		return nil, errors.New("fake: no such program")
	}
	d.mu.Unlock()
	outR, outW := io.Pipe()
	t := &fakeTask{cfg: cfg, done: make(chan struct{}), stdout: outR, outW: outW, ignoreTerm: d.ignoreTerm}
	t.st = drivers.Status{ID: fmt.Sprintf("fake-%p", t), StartedAt: time.Now()}
	d.mu.Lock()
	d.tasks = append(d.tasks, t)
	d.mu.Unlock()
	d.started <- t
	return t, nil
}

// next returns the next task started, waiting a bounded time.
func (d *fakeDriver) next(t *testing.T) *fakeTask {
	t.Helper()
	select {
	case ft := <-d.started:
		return ft
	case <-time.After(15 * time.Second):
		t.Fatal("no child was started")
		return nil
	}
}

func (d *fakeDriver) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.tasks)
}

// fakeTask is one fake child.
type fakeTask struct {
	cfg        drivers.TaskConfig
	done       chan struct{}
	stdout     *io.PipeReader
	outW       *io.PipeWriter
	ignoreTerm bool

	mu     sync.Mutex
	st     drivers.Status
	graces []time.Duration // the grace of each Stop call
	ended  sync.Once
}

// exit ends the task with the given status; later calls do nothing.
func (t *fakeTask) exit(code, sig int, stopped bool, tail ...string) {
	t.ended.Do(func() {
		t.mu.Lock()
		t.st.Exited, t.st.ExitedAt, t.st.ExitCode, t.st.Signal = true, time.Now(), code, sig
		t.st.Stopped = t.st.Stopped || stopped
		t.st.Tail = tail
		t.mu.Unlock()
		t.outW.Close()
		close(t.done)
	})
}

// Exit is the child ending on its own.
func (t *fakeTask) Exit(code int, tail ...string) { t.exit(code, 0, false, tail...) }

func (t *fakeTask) Done() <-chan struct{} { return t.done }

func (t *fakeTask) Inspect() drivers.Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

func (t *fakeTask) Stop(ctx context.Context, grace time.Duration) error {
	t.mu.Lock()
	t.graces = append(t.graces, grace)
	t.st.Stopped = true
	t.mu.Unlock()
	if !t.ignoreTerm {
		t.exit(0, 0, true)
		return nil
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
	case <-ctx.Done():
	}
	return t.Kill()
}

func (t *fakeTask) Kill() error {
	t.exit(-1, 9, true)
	return nil
}

func (t *fakeTask) stopGraces() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.graces)
}

func (t *fakeTask) Stdin() io.WriteCloser { return nopWriteCloser{} }
func (t *fakeTask) Stdout() io.ReadCloser { return t.stdout }

// arg returns the value after flag in the task's argv.
func (t *fakeTask) arg(flag string) string {
	if i := slices.Index(t.cfg.Argv, flag); i >= 0 && i+1 < len(t.cfg.Argv) {
		return t.cfg.Argv[i+1]
	}
	return ""
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }

var _ drivers.Handle = (*fakeTask)(nil)

// startFakeServer serves a Server whose children are fakeDriver tasks;
// it needs no flowctl binary and starts no process.
func startFakeServer(t *testing.T, st store.Store, d *fakeDriver, set func(*Options)) *testServer {
	t.Helper()
	opts := Options{Store: st, Executable: "/fake/flowctl", Driver: d, Grace: 2 * time.Second,
		Backoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	if set != nil {
		set(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx, lis) }()
	ts.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ts.pl = controlv1.NewPipelineServiceClient(ts.conn)
	ts.runs = controlv1.NewRunServiceClient(ts.conn)
	ts.stat = controlv1.NewStatusServiceClient(ts.conn)
	ts.cp = streamv1.NewControlPlaneServiceClient(ts.conn)
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) apply(t *testing.T, spec, dir string) *controlv1.ApplyResponse {
	t.Helper()
	resp, err := ts.pl.Apply(context.Background(), &controlv1.ApplyRequest{Spec: []byte(spec), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (ts *testServer) runsOf(t *testing.T, name string) []*controlv1.Run {
	t.Helper()
	r, err := ts.runs.ListRuns(context.Background(), &controlv1.ListRunsRequest{Pipeline: name})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetRuns()
}

func (ts *testServer) status(t *testing.T, name string) *controlv1.PipelineStatus {
	t.Helper()
	r, err := ts.pl.Get(context.Background(), &controlv1.GetPipelineRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetPipeline().GetStatus()
}

func TestReconcilerStartsChild(t *testing.T) {
	d := newFakeDriver()
	ts := startFakeServer(t, memory.New(), d, nil)
	dir := t.TempDir()
	ts.apply(t, tickPipeline, dir)
	c := d.next(t)
	if c.cfg.Argv[0] != "/fake/flowctl" || c.cfg.Argv[1] != "run" {
		t.Errorf("argv = %q, want /fake/flowctl run ...", c.cfg.Argv)
	}
	for flag, want := range map[string]string{"--dir": dir, "--pipeline-revision": "1", "--run-id": "1"} {
		if got := c.arg(flag); got != want {
			t.Errorf("%s = %q, want %q", flag, got, want)
		}
	}
	if spec, err := os.ReadFile(c.arg("-f")); err != nil || string(spec) != tickPipeline {
		t.Errorf("the child's file = %q, %v", spec, err)
	}
	if c.cfg.Dir != dir || !c.cfg.Stdio || c.cfg.Labels[labelPipeline] != "tick" {
		t.Errorf("task config dir=%q stdio=%v labels=%v", c.cfg.Dir, c.cfg.Stdio, c.cfg.Labels)
	}
	eventually(t, "phase RUNNING with run 1", func() bool {
		s := ts.status(t, "tick")
		return s.GetPhase() == controlv1.Phase_PHASE_RUNNING && s.GetRunId() == 1 && s.GetRunningRevision() == 1
	})
	// Applying the same file again changes nothing: no second child.
	if resp := ts.apply(t, tickPipeline, dir); resp.GetChanged() {
		t.Errorf("re-applying the same file changed it: %v", resp)
	}
	if n := d.count(); n != 1 {
		t.Errorf("%d children started, want 1", n)
	}
}

// A child that exits non-zero is restarted after a backoff that grows.
func TestReconcilerRestartsCrashedChildWithBackoff(t *testing.T) {
	d := newFakeDriver()
	ts := startFakeServer(t, memory.New(), d, func(o *Options) { o.Backoff, o.MaxBackoff = 200*time.Millisecond, 10*time.Second })
	ts.apply(t, tickPipeline, t.TempDir())
	c := d.next(t)
	var waits []time.Duration
	for i := range 3 {
		ended := time.Now()
		c.Exit(2, "some line", "flowctl run: boom")
		c = d.next(t)
		waits = append(waits, time.Since(ended))
		if got := c.arg("--run-id"); got != fmt.Sprint(i+2) {
			t.Errorf("restart %d has run id %s", i+1, got)
		}
	}
	// With the jitter, the n-th wait lies in [ceiling/2, ceiling] and the
	// ceilings are 200ms, 400ms, 800ms.
	for i, w := range waits {
		if floor := (200 * time.Millisecond << i) / 2; w < floor {
			t.Errorf("restart %d came after %v, before the backoff floor %v", i+1, w, floor)
		}
	}
	runs := ts.runsOf(t, "tick")
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 4", len(runs))
	}
	// Newest first: the running one, then three failures.
	for _, r := range runs[1:] {
		if r.GetState() != controlv1.RunState_RUN_STATE_FAILED || r.GetReason() != "exit status 2: flowctl run: boom" {
			t.Errorf("run %d = %v %q, want FAILED with the child's reason", r.GetId(), r.GetState(), r.GetReason())
		}
		// get runs -o wide shows it in EXIT-CODE: the child's, not 0.
		if r.GetExitCode() != 2 {
			t.Errorf("run %d has exit code %d, want the child's 2", r.GetId(), r.GetExitCode())
		}
	}
	eventually(t, "restarts counted", func() bool {
		s := ts.status(t, "tick")
		return s.GetRestarts() == 3 && s.GetLastError() == "exit status 2: flowctl run: boom"
	})
}

// A child that exits 0 completed: it is not started again.
func TestReconcilerCompletedChildStays(t *testing.T) {
	d := newFakeDriver()
	ts := startFakeServer(t, memory.New(), d, nil)
	ts.apply(t, tickPipeline, t.TempDir())
	d.next(t).Exit(0)
	eventually(t, "phase COMPLETED", func() bool {
		return ts.status(t, "tick").GetPhase() == controlv1.Phase_PHASE_COMPLETED
	})
	if r := ts.runsOf(t, "tick"); len(r) != 1 || r[0].GetState() != controlv1.RunState_RUN_STATE_COMPLETED {
		t.Errorf("runs = %v, want one COMPLETED", r)
	}
	if n := d.count(); n != 1 {
		t.Errorf("%d children started, want 1", n)
	}
}

// Delete stops the child: SIGTERM and the grace, then a kill when it
// does not go; Delete returns once it is gone.
func TestReconcilerDeleteStopsChild(t *testing.T) {
	const grace = 300 * time.Millisecond
	cases := []struct {
		name       string
		ignoreTerm bool
		wantSignal int
	}{
		{"child stops on SIGTERM", false, 0},
		{"child ignores SIGTERM and is killed after the grace", true, 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDriver()
			d.ignoreTerm = tc.ignoreTerm
			ts := startFakeServer(t, memory.New(), d, func(o *Options) { o.Grace = grace })
			ts.apply(t, tickPipeline, t.TempDir())
			c := d.next(t)
			t0 := time.Now()
			if _, err := ts.pl.Delete(context.Background(), &controlv1.DeletePipelineRequest{Name: "tick"}); err != nil {
				t.Fatal(err)
			}
			took := time.Since(t0)
			select {
			case <-c.Done():
			default:
				t.Fatal("Delete returned while the child still ran")
			}
			if g := c.stopGraces(); len(g) != 1 || g[0] != grace {
				t.Errorf("Stop graces = %v, want one Stop with %v", g, grace)
			}
			if st := c.Inspect(); !st.Stopped || st.Signal != tc.wantSignal {
				t.Errorf("child status %+v, want stopped with signal %d", st, tc.wantSignal)
			}
			if tc.ignoreTerm && took < grace {
				t.Errorf("Delete took %v, less than the grace", took)
			}
			if ts.srv.rec.snapshot("tick") != nil {
				t.Error("the reconciler still observes the deleted pipeline")
			}
			ts.stop()
			if n := d.count(); n != 1 {
				t.Errorf("%d children started, want 1", n)
			}
		})
	}
}

// A new revision that cannot be reloaded in place replaces the child:
// the old one is stopped before the new one starts.
func TestReconcilerRevisionReplacesChild(t *testing.T) {
	d := newFakeDriver()
	ts := startFakeServer(t, memory.New(), d, nil)
	dir := t.TempDir()
	ts.apply(t, tickPipeline, dir)
	c1 := d.next(t)
	// The fake's components never register, so even a change that could
	// be reloaded restarts the child.
	changed := strings.Replace(tickPipeline, `expr: "true"`, `expr: "false"`, 1)
	if resp := ts.apply(t, changed, dir); resp.GetRevision() != 2 {
		t.Fatalf("apply = %v", resp)
	}
	c2 := d.next(t)
	select {
	case <-c1.Done():
	default:
		t.Fatal("revision 2 started while revision 1's child still ran")
	}
	if len(c1.stopGraces()) != 1 {
		t.Errorf("revision 1's child got %d Stop calls, want 1", len(c1.stopGraces()))
	}
	if got := c2.arg("--pipeline-revision"); got != "2" {
		t.Errorf("new child runs revision %s", got)
	}
	if spec, err := os.ReadFile(c2.arg("-f")); err != nil || string(spec) != changed {
		t.Errorf("the new child's file = %q, %v", spec, err)
	}
	eventually(t, "revision 2 running", func() bool { return ts.status(t, "tick").GetRunningRevision() == 2 })
	runs := ts.runsOf(t, "tick")
	if len(runs) != 2 || runs[1].GetState() != controlv1.RunState_RUN_STATE_STOPPED || runs[1].GetReason() != "revision 2 applied" {
		t.Errorf("runs = %v, want revision 1's run STOPPED by revision 2", runs)
	}
}

// Server shutdown stops every child with the grace and records the
// pipelines as STOPPED.
func TestReconcilerShutdownStopsChildren(t *testing.T) {
	d := newFakeDriver()
	st := memory.New()
	ts := startFakeServer(t, st, d, nil)
	dir := t.TempDir()
	ts.apply(t, tickPipeline, dir)
	ts.apply(t, strings.Replace(tickPipeline, "name: tick", "name: tock", 1), dir)
	children := []*fakeTask{d.next(t), d.next(t)}
	ts.stop()
	for _, c := range children {
		select {
		case <-c.Done():
		default:
			t.Errorf("child %q still runs after the server stopped", c.arg("-f"))
		}
		if g := c.stopGraces(); len(g) != 1 || g[0] != 2*time.Second {
			t.Errorf("Stop graces = %v, want one Stop with the server's grace", g)
		}
	}
	for _, name := range []string{"tick", "tock"} {
		p, err := st.GetPipeline(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase != store.PhaseStopped {
			t.Errorf("%s phase = %q, want Stopped", name, p.Status.Phase)
		}
		runs, err := st.ListRuns(context.Background(), name, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 || runs[0].State != store.RunStopped || runs[0].Reason != "server shutdown" {
			t.Errorf("%s runs = %+v, want one stopped by the shutdown", name, runs)
		}
	}
}

// A driver that cannot start the child: the pipeline is FAILED with the
// reason, and started once the driver can.
func TestReconcilerRetriesFailedStart(t *testing.T) {
	d := newFakeDriver()
	d.failStarts = 2
	ts := startFakeServer(t, memory.New(), d, nil)
	ts.apply(t, tickPipeline, t.TempDir())
	c := d.next(t)
	if got := c.arg("--run-id"); got != "3" {
		t.Errorf("the first child that started has run id %s, want 3 (two failed starts recorded)", got)
	}
	runs := ts.runsOf(t, "tick")
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3", len(runs))
	}
	for _, r := range runs[1:] {
		if r.GetState() != controlv1.RunState_RUN_STATE_FAILED || !strings.Contains(r.GetReason(), "fake: no such program") {
			t.Errorf("run %d = %v %q, want FAILED naming the start error", r.GetId(), r.GetState(), r.GetReason())
		}
	}
	eventually(t, "RUNNING after the failed starts", func() bool {
		s := ts.status(t, "tick")
		return s.GetPhase() == controlv1.Phase_PHASE_RUNNING && s.GetRunId() == 3
	})
}

// A child whose components all registered is Ready; once every one of
// them stops heartbeating (the child hangs though its process lives) it is
// killed and started again.
func TestReconcilerKillsHungChild(t *testing.T) {
	d := newFakeDriver()
	ts := startFakeServer(t, memory.New(), d, func(o *Options) { o.HungGrace = 50 * time.Millisecond })
	ts.apply(t, tickPipeline, t.TempDir())
	c := d.next(t)
	const ttl = 300 * time.Millisecond
	for _, name := range []string{"gen", "keep", "out"} {
		_, err := ts.srv.registry.Register(controlplane.Registration{
			ID: report.ID("tick", name), Role: flow.RoleProcessor, Endpoint: "127.0.0.1:1", TTL: ttl,
			Metadata: map[string]string{report.MetaPipeline: "tick", report.MetaComponent: name, report.MetaRevision: "1"},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The components heartbeat until Ready is seen (however slow the
	// machine), then fall silent: killed after the TTL and the hung grace.
	eventually(t, "Ready with every component registered", func() bool {
		for _, name := range []string{"gen", "keep", "out"} {
			if _, err := ts.srv.registry.Heartbeat(report.ID("tick", name), controlplane.HealthHealthy, nil); err != nil {
				t.Fatal(err)
			}
		}
		r, err := ts.pl.Get(context.Background(), &controlv1.GetPipelineRequest{Name: "tick"})
		if err != nil {
			t.Fatal(err)
		}
		for _, cond := range r.GetPipeline().GetStatus().GetConditions() {
			if cond.GetType() == condReady {
				return cond.GetStatus() == controlv1.ConditionStatus_CONDITION_STATUS_TRUE
			}
		}
		return false
	})
	c2 := d.next(t)
	if st := c.Inspect(); !st.Exited || st.Signal != 9 {
		t.Errorf("the hung child's status %+v, want killed", st)
	}
	if got := c2.arg("--run-id"); got != "2" {
		t.Errorf("the new child has run id %s", got)
	}
	runs := ts.runsOf(t, "tick")
	if len(runs) != 2 || runs[1].GetState() != controlv1.RunState_RUN_STATE_FAILED || !strings.Contains(runs[1].GetReason(), "stopped heartbeating") {
		t.Errorf("runs = %v, want the hung run FAILED for its silence", runs)
	}
}

// Delete keeps the pipeline's checkpoints: applying it again resumes
// where it stopped instead of starting over, which would truncate the
// file sinks it wrote (`mode: truncate` empties a file only on a first
// run). The spec copies and the run's socket go.
func TestReconcilerDeleteKeepsCheckpoints(t *testing.T) {
	d := newFakeDriver()
	ts := startFakeServer(t, memory.New(), d, nil)
	dir := t.TempDir()
	ts.apply(t, tickPipeline, dir)
	c := d.next(t)
	stateDir, spec := c.arg("--state-dir"), c.arg("-f")
	// What the child's checkpoint store would have written.
	checkpoint := filepath.Join(stateDir, "tick", "state.db")
	if err := os.MkdirAll(filepath.Dir(checkpoint), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(checkpoint, []byte("position"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.pl.Delete(context.Background(), &controlv1.DeletePipelineRequest{Name: "tick"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(checkpoint); err != nil || string(b) != "position" {
		t.Errorf("after delete the checkpoint holds %q, %v; want it kept", b, err)
	}
	if _, err := os.Stat(spec); !os.IsNotExist(err) {
		t.Errorf("the spec copy %s is still there after delete (%v)", spec, err)
	}
	ts.apply(t, tickPipeline, dir)
	if got := d.next(t).arg("--state-dir"); got != stateDir {
		t.Errorf("applied again, the child resumes from %q, want %q", got, stateDir)
	}
}

// A failed run's reason is the exit and what the child said about it: the
// whole of its last error (the lines indented below it included), and no
// notes of a child that was killed and so said nothing about its end.
func TestFailureReason(t *testing.T) {
	cases := []struct {
		name string
		st   drivers.Status
		want string
	}{
		{"an error of the child", drivers.Status{Exited: true, ExitCode: 1, Tail: []string{
			`{"level":"INFO","msg":"x"}`, `flowctl run: pipeline "p" failed: boom`,
		}}, `exit status 1: flowctl run: pipeline "p" failed: boom`},
		{"an error with the lines below it", drivers.Status{Exited: true, ExitCode: 1, Tail: []string{
			`  g   source   -   346`,
			`flowctl run: pipeline "p" failed: processor "p": component "p" crashed 6 times within 30s (last: exit status 7): component keeps crashing; fix it and run again; its last stderr lines:`,
			`    proc.py: crashing on purpose after 5`,
			`    proc.py: bad input`,
		}}, `exit status 1: flowctl run: pipeline "p" failed: processor "p": component "p" crashed 6 times within 30s (last: exit status 7): component keeps crashing; fix it and run again; its last stderr lines: proc.py: crashing on purpose after 5; proc.py: bad input`},
		{"killed after a note", drivers.Status{Exited: true, ExitCode: -1, Signal: 9, Tail: []string{
			`flowctl run: resuming "p" from g event 1,001 (checkpoint in /d/pipelines/p/state/p; --from-start starts over)`,
		}}, `killed by signal 9`},
		{"no flowctl line", drivers.Status{Exited: true, ExitCode: 2, Tail: []string{"panic: x", "main.main()"}}, `exit status 2: main.main()`},
		{"nothing said", drivers.Status{Exited: true, ExitCode: 2}, `exit status 2`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.st.ExitString() + failureDetail(tc.st); got != tc.want {
				t.Errorf("reason\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// failingRuns is a store whose UpdateRun fails while fail is set (a full
// disk, say).
type failingRuns struct {
	store.Store
	fail atomic.Bool
}

func (s *failingRuns) UpdateRun(ctx context.Context, run store.Run) error {
	if s.fail.Load() {
		return errors.New("write flowctl.db: no space left on device")
	}
	return s.Store.UpdateRun(ctx, run)
}

// The end of a run that could not be written (the store failed) is
// written once the store works again: the history never shows a run
// that ended as still running beside the one that replaced it.
func TestReconcilerRecordsRunEndAfterStoreFailure(t *testing.T) {
	d := newFakeDriver()
	st := &failingRuns{Store: memory.New()}
	ts := startFakeServer(t, st, d, nil)
	ts.apply(t, tickPipeline, t.TempDir())
	c := d.next(t)
	eventually(t, "phase RUNNING", func() bool {
		return ts.status(t, "tick").GetPhase() == controlv1.Phase_PHASE_RUNNING
	})
	st.fail.Store(true)
	c.Exit(2, "flowctl run: boom")
	d.next(t) // the restart
	st.fail.Store(false)
	eventually(t, "run 1 recorded as failed", func() bool {
		for _, r := range ts.runsOf(t, "tick") {
			if r.GetId() == 1 {
				return r.GetState() == controlv1.RunState_RUN_STATE_FAILED && r.GetReason() == "exit status 2: flowctl run: boom"
			}
		}
		return false
	})
}

// holdingRuns is a store that holds a write of a running run (the
// counters a running child's record is saved with) until release is
// closed, and reports the write of its end on ended.
type holdingRuns struct {
	store.Store
	held, release, ended chan struct{}
	heldOnce, endOnce    sync.Once
}

func (s *holdingRuns) UpdateRun(ctx context.Context, run store.Run) error {
	if run.State == store.RunStarted {
		s.heldOnce.Do(func() { close(s.held) })
		<-s.release
	} else {
		defer s.endOnce.Do(func() { close(s.ended) })
	}
	return s.Store.UpdateRun(ctx, run)
}

// A save of a running run's counters that is still being written when
// the child exits never lands after the record of its end: the history
// would show the run Running for good.
func TestReconcilerRunEndNotOverwrittenByCounters(t *testing.T) {
	ctx := context.Background()
	st := &holdingRuns{Store: memory.New(), held: make(chan struct{}), release: make(chan struct{}), ended: make(chan struct{})}
	reg := controlplane.NewRegistry(controlplane.Options{HeartbeatInterval: time.Second})
	logs, err := newLogStore("", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := newReconciler(reconcilerOptions{store: st, registry: reg, logs: logs,
		log: slog.New(slog.DiscardHandler), backoff: time.Second, maxBackoff: time.Second, hungGrace: time.Minute})
	defer r.queue.ShutDown()
	if _, err := reg.Register(controlplane.Registration{
		ID: report.ID("tick", "gen"), Role: flow.RoleSource, Endpoint: "127.0.0.1:1", TTL: time.Minute,
		Metadata: map[string]string{report.MetaPipeline: "tick", report.MetaComponent: "gen", report.MetaRevision: "1"},
	}); err != nil {
		t.Fatal(err)
	}
	run, err := st.StartRun(ctx, store.Run{Pipeline: "tick", Revision: 1, StartedAt: time.Now()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h, err := newFakeDriver().Start(ctx, drivers.TaskConfig{})
	if err != nil {
		t.Fatal(err)
	}
	task := h.(*fakeTask)
	c := &child{h: h, run: run, started: time.Now(), exited: make(chan struct{})}
	c.rev.Store(1)
	o := &observed{child: c}
	r.wg.Add(1)
	go r.await("tick", o, c)

	saved := make(chan struct{})
	go func() {
		defer close(saved)
		r.observeRunning(ctx, store.Pipeline{Name: "tick", Revision: 1}, o, c)
	}()
	<-st.held // the counters are being written
	task.Exit(2, "flowctl run: boom")
	// The end is written now, unless it waits for the save (the fix);
	// either way the save lands next.
	select {
	case <-st.ended:
	case <-time.After(500 * time.Millisecond):
	}
	close(st.release)
	<-saved
	<-c.exited
	runs, err := st.ListRuns(ctx, "tick", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].State != store.RunFailed {
		t.Errorf("the run's record = %+v, want it FAILED", runs)
	}
}

// A pipeline's run serves its taps on a socket whose path fits the
// system's limit whatever the length of its name: the run's folder holds
// it when that is short enough, else a folder of short names in the data
// dir.
func TestReconcilerRunSocketFits(t *testing.T) {
	long := "a" + strings.Repeat("b", 61) + "c" // the longest name Apply takes
	for _, name := range []string{"tick", long} {
		t.Run(fmt.Sprintf("name of %d bytes", len(name)), func(t *testing.T) {
			d := newFakeDriver()
			dataDir := t.TempDir()
			ts := startFakeServer(t, memory.New(), d, func(o *Options) { o.DataDir = dataDir })
			ts.apply(t, strings.Replace(tickPipeline, "name: tick", "name: "+name, 1), t.TempDir())
			sock := d.next(t).arg("--socket")
			if len(sock) > maxSocketPath() {
				t.Errorf("--socket %s is %d bytes, more than the %d a socket path may have", sock, len(sock), maxSocketPath())
			}
			if !strings.HasPrefix(sock, dataDir+string(filepath.Separator)) {
				t.Errorf("--socket %s is outside the data dir %s", sock, dataDir)
			}
			if got := ts.srv.rec.runSocket(name); got != sock {
				t.Errorf("the server taps the run at %s, but the run serves %s", got, sock)
			}
		})
	}
}
