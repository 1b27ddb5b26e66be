package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/store/memory"
	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// flowctlBinary builds the real flowctl once: the server runs it as its
// pipelines' children.
func flowctlBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds flowctl and runs pipelines as child processes")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowctl-server-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "flowctl")
		if out, err := exec.Command("go", "build", "-o", binPath, "github.com/flowctl/flowctl/cmd/flowctl").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// testServer is a Server serving on loopback in this process.
type testServer struct {
	srv    *Server
	cancel context.CancelFunc
	done   chan error
	conn   *grpc.ClientConn
	pl     controlv1.PipelineServiceClient
	runs   controlv1.RunServiceClient
	stat   controlv1.StatusServiceClient
	cp     streamv1.ControlPlaneServiceClient
	once   sync.Once
}

func startTestServer(t *testing.T, st store.Store) *testServer {
	t.Helper()
	return startTestServerWith(t, st, nil)
}

// startTestServerWith is startTestServer with options changed by set.
func startTestServerWith(t *testing.T, st store.Store, set func(*Options)) *testServer {
	t.Helper()
	opts := Options{Store: st, Executable: flowctlBinary(t), Grace: 3 * time.Second, Backoff: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
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

func (ts *testServer) stop() {
	ts.once.Do(func() {
		ts.cancel()
		<-ts.done
		ts.conn.Close()
	})
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

const tickPipeline = `name: tick
sources:
  - name: gen
    type: generate
    config: {count: 0, rate: 100, data: {n: 1}}
processors:
  - name: keep
    type: filter
    inputs: [gen]
    config: {expr: "true"}
sinks:
  - name: out
    type: drop
    inputs: [keep]
`

func TestApplyValidation(t *testing.T) {
	ts := startTestServer(t, memory.New())
	ctx := context.Background()
	cases := []struct {
		name     string
		req      *controlv1.ApplyRequest
		code     codes.Code
		rejected bool
	}{
		{name: "names disagree", req: &controlv1.ApplyRequest{Name: "other", Spec: []byte(tickPipeline)}, code: codes.InvalidArgument},
		{name: "bad name in file", req: &controlv1.ApplyRequest{Spec: []byte(strings.Replace(tickPipeline, "name: tick", "name: Tick!", 1))}, code: codes.InvalidArgument},
		{name: "empty", req: &controlv1.ApplyRequest{}, code: codes.InvalidArgument},
		{name: "does not validate", req: &controlv1.ApplyRequest{Spec: []byte(strings.Replace(tickPipeline, "inputs: [keep]", "inputs: [kep]", 1))}, rejected: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := ts.pl.Apply(ctx, tc.req)
			if status.Code(err) != tc.code {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tc.code)
			}
			if err == nil && resp.GetRejected() != tc.rejected {
				t.Fatalf("rejected = %v, want %v: %v", resp.GetRejected(), tc.rejected, resp)
			}
			if tc.rejected && (len(resp.GetDiagnostics()) == 0 || !strings.Contains(resp.GetDiagnostics()[0].GetHint()+resp.GetDiagnostics()[0].GetMessage(), "kep")) {
				t.Errorf("diagnostics %v do not name the bad input", resp.GetDiagnostics())
			}
		})
	}
	// A dry run stores nothing.
	resp, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(tickPipeline), DryRun: true})
	if err != nil || !resp.GetChanged() || resp.GetRevision() != 1 || len(resp.GetPlan()) != 3 {
		t.Fatalf("dry run = %v, %v", resp, err)
	}
	if _, err := ts.pl.Get(ctx, &controlv1.GetPipelineRequest{Name: "tick"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get after a dry run: %v, want NotFound", err)
	}
}

func TestApplyChangeRestartsChild(t *testing.T) {
	st := memory.New()
	ts := startTestServer(t, st)
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(tickPipeline), Dir: dir}); err != nil {
		t.Fatal(err)
	}
	var p1 *controlv1.Pipeline
	eventually(t, "every component healthy with counters", func() bool {
		r, err := ts.pl.Get(ctx, &controlv1.GetPipelineRequest{Name: "tick"})
		if err != nil {
			t.Fatal(err)
		}
		p1 = r.GetPipeline()
		for _, c := range p1.GetComponents() {
			if c.GetHealth() != streamv1.HealthStatus_HEALTH_STATUS_HEALTHY || c.GetCounters()["out"] == 0 {
				return false
			}
		}
		return p1.GetStatus().GetPid() > 0
	})
	// Components are registered in the registry under PIPELINE/COMPONENT.
	list, err := ts.cp.List(ctx, &streamv1.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, c := range list.GetComponents() {
		ids = append(ids, c.GetRegistration().GetId())
	}
	if strings.Join(ids, ",") != "tick/gen,tick/keep,tick/out" {
		t.Errorf("registry ids = %v", ids)
	}

	// A new dead-letter sink cannot be applied in place (every component
	// would feed it; other changes can: see TestApplyChangeReloadsInPlace).
	changed := tickPipeline + "dead_letter: {name: failed, type: drop}\n"
	resp, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(changed), Dir: dir})
	if err != nil || !resp.GetChanged() || resp.GetRevision() != 2 || !resp.GetRestartsAll() {
		t.Fatalf("apply changed = %v, %v", resp, err)
	}
	eventually(t, "revision 2 to run in a new child", func() bool {
		r, _ := ts.pl.Get(ctx, &controlv1.GetPipelineRequest{Name: "tick"})
		s := r.GetPipeline().GetStatus()
		return s.GetRunningRevision() == 2 && s.GetPid() != 0 && s.GetPid() != p1.GetStatus().GetPid()
	})
	runs, err := ts.runs.ListRuns(ctx, &controlv1.ListRunsRequest{Pipeline: "tick"})
	if err != nil {
		t.Fatal(err)
	}
	if r := runs.GetRuns()[1]; r.GetState() != controlv1.RunState_RUN_STATE_STOPPED || r.GetReason() != "revision 2 applied" || len(r.GetCounters()) == 0 {
		t.Errorf("revision 1's run = %v, want STOPPED by revision 2 with counters", r)
	}
	s, err := ts.stat.Status(ctx, &controlv1.StatusRequest{})
	if err != nil || s.GetPipelines()["running"] != 1 {
		t.Errorf("status = %v, %v", s, err)
	}
}

// TestApplyChangeReloadsInPlace: a revision that changes only a filter's
// condition is applied by the running child (SIGHUP): the same pid, the
// same run, now of revision 2, restarts_all false, and the source's
// counter keeps rising from where it was.
func TestApplyChangeReloadsInPlace(t *testing.T) {
	st := memory.New()
	ts := startTestServer(t, st)
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(tickPipeline), Dir: dir}); err != nil {
		t.Fatal(err)
	}
	genOut := func(p *controlv1.Pipeline) int64 {
		for _, c := range p.GetComponents() {
			if c.GetName() == "gen" {
				return c.GetCounters()["out"]
			}
		}
		return -1
	}
	get := func() *controlv1.Pipeline {
		r, err := ts.pl.Get(ctx, &controlv1.GetPipelineRequest{Name: "tick"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetPipeline()
	}
	var p1 *controlv1.Pipeline
	eventually(t, "the child to run with counters", func() bool {
		p1 = get()
		return p1.GetStatus().GetPid() > 0 && genOut(p1) > 0 && len(p1.GetComponents()) == 3
	})
	before := genOut(p1)

	changed := strings.Replace(tickPipeline, `expr: "true"`, `expr: "data.n == 1"`, 1)
	resp, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(changed), Dir: dir})
	if err != nil || !resp.GetChanged() || resp.GetRevision() != 2 || resp.GetRestartsAll() {
		t.Fatalf("apply changed = %v, %v; want revision 2 without restarts_all", resp, err)
	}
	var p2 *controlv1.Pipeline
	eventually(t, "revision 2 to run", func() bool {
		p2 = get()
		return p2.GetStatus().GetRunningRevision() == 2
	})
	if p2.GetStatus().GetPid() != p1.GetStatus().GetPid() {
		t.Fatalf("pid %d after the reload, want the same %d", p2.GetStatus().GetPid(), p1.GetStatus().GetPid())
	}
	eventually(t, "the source's counter to keep rising", func() bool { return genOut(get()) > before+20 })
	runs, err := ts.runs.ListRuns(ctx, &controlv1.ListRunsRequest{Pipeline: "tick"})
	if err != nil {
		t.Fatal(err)
	}
	if rs := runs.GetRuns(); len(rs) != 1 || rs[0].GetRevision() != 2 || rs[0].GetState() != controlv1.RunState_RUN_STATE_RUNNING {
		t.Fatalf("runs = %v, want the one run, now of revision 2", rs)
	}
}

func TestRegistrationsSurviveRestart(t *testing.T) {
	st := memory.New()
	ts := startTestServer(t, st)
	ctx := context.Background()
	if _, err := ts.cp.Register(ctx, &streamv1.RegisterRequest{Registration: &streamv1.Registration{Id: "ext-1", Endpoint: "127.0.0.1:9", Role: streamv1.Role_ROLE_SINK}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the registration to be stored", func() bool {
		regs, _ := st.ListRegistrations(ctx, "")
		return len(regs) == 1
	})
	ts.stop()
	// One stored long ago comes back as stale as it is.
	if err := st.PutRegistration(ctx, store.Registration{ID: "ext-old", Endpoint: "127.0.0.1:9", RegisteredAt: time.Now().Add(-time.Hour), TTL: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}

	ts2 := startTestServer(t, st)
	list, err := ts2.cp.List(ctx, &streamv1.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetComponents()) != 2 || list.GetComponents()[0].GetRegistration().GetId() != "ext-1" {
		t.Fatalf("after restart: %v", list.GetComponents())
	}
	if h := list.GetComponents()[1].GetHealth(); h != streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY {
		t.Errorf("a registration last seen an hour ago is %v, want UNHEALTHY", h)
	}
	// It was restored, not faked alive: healthy only once it heartbeats.
	c := list.GetComponents()[0]
	if time.Since(c.GetLastHeartbeat().AsTime()) > 30*time.Second {
		t.Fatalf("last heartbeat %v is not the stored one", c.GetLastHeartbeat().AsTime())
	}
	if _, err := ts2.cp.Heartbeat(ctx, &streamv1.HeartbeatRequest{Id: "ext-1"}); err != nil {
		t.Fatalf("heartbeat of a restored registration: %v", err)
	}
}

func TestLogsFollowUntilDelete(t *testing.T) {
	ts := startTestServer(t, memory.New())
	ctx := context.Background()
	if _, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(tickPipeline), Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	logs := controlv1.NewLogServiceClient(ts.conn)
	stream, err := logs.Logs(ctx, &controlv1.LogsRequest{Pipeline: "tick", Tail: -1, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the child is Ready (its components registered): only then
	// has it installed its signal handling, so the delete's SIGTERM drains
	// it and it prints its summary, instead of the default action killing
	// a process still starting up.
	eventually(t, "the child to be ready", func() bool {
		r, _ := ts.pl.Get(ctx, &controlv1.GetPipelineRequest{Name: "tick"})
		if r.GetPipeline().GetStatus().GetPid() == 0 {
			return false
		}
		for _, c := range r.GetPipeline().GetStatus().GetConditions() {
			if c.GetType() == "Ready" && c.GetStatus() == controlv1.ConditionStatus_CONDITION_STATUS_TRUE {
				return true
			}
		}
		return false
	})
	delAt := time.Now()
	del, err := ts.pl.Delete(ctx, &controlv1.DeletePipelineRequest{Name: "tick"})
	t.Logf("delete took %s", time.Since(delAt))
	if err != nil || len(del.GetStoppedPids()) == 0 {
		t.Fatalf("delete = %v, %v", del, err)
	}
	var lines []string
	for {
		l, err := stream.Recv()
		if err != nil {
			break // the stream ends with the pipeline
		}
		if l.GetPipeline() != "tick" || l.GetRunId() != 1 || l.GetStream() != "stderr" {
			t.Errorf("line %v: want pipeline tick, run 1, stderr", l)
		}
		lines = append(lines, l.GetText())
	}
	if !strings.Contains(strings.Join(lines, "\n"), `pipeline "tick" stopped`) {
		t.Errorf("followed lines lack the child's summary:\n%s", strings.Join(lines, "\n"))
	}
	// The logs outlive the pipeline.
	after, err := logs.Logs(ctx, &controlv1.LogsRequest{Pipeline: "tick", Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := after.Recv(); err != nil {
		t.Errorf("logs of the deleted pipeline: %v", err)
	}
	missing, _ := logs.Logs(ctx, &controlv1.LogsRequest{Pipeline: "never"})
	if _, err := missing.Recv(); status.Code(err) != codes.NotFound {
		t.Errorf("logs of an unknown pipeline: %v, want NotFound", err)
	}
}

// TestDeleteDeregisters: once `delete` returns, no registration of the
// pipeline is left, in the registry or the store — those its child made,
// one left by an older revision, one of its component ids that carries no
// metadata — while other registrations stay.
func TestDeleteDeregisters(t *testing.T) {
	st := memory.New()
	ts := startTestServer(t, st)
	ctx := context.Background()
	if _, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(tickPipeline), Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	registryIDs := func() []string {
		list, err := ts.cp.List(ctx, &streamv1.ListRequest{})
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, c := range list.GetComponents() {
			ids = append(ids, c.GetRegistration().GetId())
		}
		return ids
	}
	eventually(t, "the child's components to register", func() bool {
		return strings.Join(registryIDs(), ",") == "tick/gen,tick/keep,tick/out"
	})
	for _, reg := range []*streamv1.Registration{
		// Left by an older revision of tick.
		{Id: "tick/old", Endpoint: "pid:1", Role: streamv1.Role_ROLE_SINK,
			Metadata: map[string]string{report.MetaPipeline: "tick", report.MetaRevision: "0"}},
		// A component of no pipeline: it stays.
		{Id: "ext-1", Endpoint: "127.0.0.1:9", Role: streamv1.Role_ROLE_SINK},
	} {
		if _, err := ts.cp.Register(ctx, &streamv1.RegisterRequest{Registration: reg}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the registrations to be stored", func() bool {
		regs, _ := st.ListRegistrations(ctx, "")
		return len(regs) == 5
	})

	if _, err := ts.pl.Delete(ctx, &controlv1.DeletePipelineRequest{Name: "tick"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(registryIDs(), ","); got != "ext-1" {
		t.Fatalf("registry right after delete = %s, want ext-1", got)
	}
	regs, err := st.ListRegistrations(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	stored := []string{}
	for _, r := range regs {
		stored = append(stored, r.ID)
	}
	if got := strings.Join(stored, ","); got != "ext-1" {
		t.Fatalf("stored registrations right after delete = %s, want ext-1", got)
	}
}

// TestDeleteDeregistersWithoutChild: a pipeline whose child never started
// (its directory is gone) still takes along, when deleted, the
// registrations under its component ids, metadata or not.
func TestDeleteDeregistersWithoutChild(t *testing.T) {
	st := memory.New()
	ts := startTestServer(t, st)
	ctx := context.Background()
	gone := filepath.Join(t.TempDir(), "gone")
	if _, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(tickPipeline), Dir: gone}); err != nil {
		t.Fatal(err)
	}
	for _, reg := range []*streamv1.Registration{
		// A component registered by hand under the pipeline's id for it.
		{Id: "tick/gen", Endpoint: "127.0.0.1:7", Role: streamv1.Role_ROLE_SOURCE},
		{Id: "ext-1", Endpoint: "127.0.0.1:9", Role: streamv1.Role_ROLE_SINK},
	} {
		if _, err := ts.cp.Register(ctx, &streamv1.RegisterRequest{Registration: reg}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the registrations to be stored", func() bool {
		regs, _ := st.ListRegistrations(ctx, "")
		return len(regs) == 2
	})
	if _, err := ts.pl.Delete(ctx, &controlv1.DeletePipelineRequest{Name: "tick"}); err != nil {
		t.Fatal(err)
	}
	list, err := ts.cp.List(ctx, &streamv1.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if cs := list.GetComponents(); len(cs) != 1 || cs[0].GetRegistration().GetId() != "ext-1" {
		t.Fatalf("registry right after delete = %v, want only ext-1", cs)
	}
	if regs, err := st.ListRegistrations(ctx, ""); err != nil || len(regs) != 1 || regs[0].ID != "ext-1" {
		t.Fatalf("stored registrations right after delete = %+v, %v; want only ext-1", regs, err)
	}
}

// TestDryRunRevisionAfterDelete: a pipeline applied again after a delete
// continues its revisions; a dry run says the revision the real apply then
// gets, not 1.
func TestDryRunRevisionAfterDelete(t *testing.T) {
	ts := startTestServer(t, memory.New())
	ctx := context.Background()
	// A directory that is not there: no child starts, none has to stop.
	dir := filepath.Join(t.TempDir(), "gone")
	apply := func(spec string, dry bool) *controlv1.ApplyResponse {
		t.Helper()
		resp, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(spec), Dir: dir, DryRun: dry})
		if err != nil || resp.GetRejected() {
			t.Fatalf("apply (dry run %v) = %v, %v", dry, resp, err)
		}
		return resp
	}
	changed := strings.Replace(tickPipeline, `rate: 100`, `rate: 200`, 1)
	apply(tickPipeline, false)
	if r := apply(changed, false); r.GetRevision() != 2 {
		t.Fatalf("second apply: revision %d, want 2", r.GetRevision())
	}
	if r := apply(changed, true); r.GetChanged() || r.GetRevision() != 2 {
		t.Fatalf("dry run of the applied file = %v; want unchanged at revision 2", r)
	}
	if r := apply(tickPipeline, true); !r.GetChanged() || r.GetRevision() != 3 {
		t.Fatalf("dry run of a change = %v; want changed, revision 3", r)
	}
	if _, err := ts.pl.Delete(ctx, &controlv1.DeletePipelineRequest{Name: "tick"}); err != nil {
		t.Fatal(err)
	}
	dry := apply(changed, true)
	real := apply(changed, false)
	if !dry.GetChanged() || !real.GetChanged() || dry.GetRevision() != real.GetRevision() || real.GetRevision() != 3 {
		t.Fatalf("after delete: dry run says revision %d (changed %v), the apply got %d (changed %v); want both 3",
			dry.GetRevision(), dry.GetChanged(), real.GetRevision(), real.GetChanged())
	}
}

// TestCreatedAt: created_at is when the pipeline was created, kept by
// later revisions, new when it is created again after a delete.
func TestCreatedAt(t *testing.T) {
	ts := startTestServer(t, memory.New())
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "gone") // no child starts
	apply := func(spec string) *controlv1.Pipeline {
		t.Helper()
		if resp, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(spec), Dir: dir}); err != nil || !resp.GetChanged() {
			t.Fatalf("apply = %v, %v", resp, err)
		}
		r, err := ts.pl.Get(ctx, &controlv1.GetPipelineRequest{Name: "tick"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetPipeline()
	}
	changed := strings.Replace(tickPipeline, `rate: 100`, `rate: 200`, 1)
	p1 := apply(tickPipeline)
	created := p1.GetCreatedAt().AsTime()
	if p1.GetCreatedAt() == nil || !created.Equal(p1.GetUpdatedAt().AsTime()) {
		t.Fatalf("revision 1: created_at %v, updated_at %v; want both, equal", p1.GetCreatedAt(), p1.GetUpdatedAt())
	}
	p2 := apply(changed)
	if p2.GetRevision() != 2 || !p2.GetCreatedAt().AsTime().Equal(created) || p2.GetUpdatedAt().AsTime().Before(created) {
		t.Fatalf("revision 2: created_at %v, updated_at %v; want created_at kept at %v",
			p2.GetCreatedAt().AsTime(), p2.GetUpdatedAt().AsTime(), created)
	}
	if _, err := ts.pl.Delete(ctx, &controlv1.DeletePipelineRequest{Name: "tick"}); err != nil {
		t.Fatal(err)
	}
	p3 := apply(tickPipeline)
	if p3.GetRevision() != 3 || p3.GetCreatedAt().AsTime().Equal(created) || !p3.GetCreatedAt().AsTime().Equal(p3.GetUpdatedAt().AsTime()) {
		t.Fatalf("created again: revision %d, created_at %v, updated_at %v; want revision 3 created when applied",
			p3.GetRevision(), p3.GetCreatedAt().AsTime(), p3.GetUpdatedAt().AsTime())
	}
}

// TestRunHistoryPruned: with KeepRuns 2, a pipeline whose child keeps
// failing (its input file is missing) keeps only its two newest runs, and
// their ids keep counting.
func TestRunHistoryPruned(t *testing.T) {
	ts := startTestServerWith(t, memory.New(), func(o *Options) { o.KeepRuns = 2 })
	ctx := context.Background()
	const broken = `name: broken
sources:
  - name: in
    type: file
    config: {path: does-not-exist.jsonl}
sinks:
  - name: out
    type: drop
    inputs: [in]
`
	if _, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(broken), Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	var runs []*controlv1.Run
	eventually(t, "a fourth run", func() bool {
		resp, err := ts.runs.ListRuns(ctx, &controlv1.ListRunsRequest{Pipeline: "broken"})
		if err != nil {
			t.Fatal(err)
		}
		runs = resp.GetRuns()
		return len(runs) > 0 && runs[0].GetId() >= 4
	})
	// The newest run has just started or failed; the one before it ended
	// before the newest started. Nothing older is left.
	if len(runs) != 2 || runs[1].GetId() != runs[0].GetId()-1 || runs[1].GetState() != controlv1.RunState_RUN_STATE_FAILED {
		t.Fatalf("runs = %v; want the newest two, the older FAILED", runs)
	}
}

func TestKeepRunsOption(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  int
		want int
	}{
		{"default", 0, DefaultKeepRuns},
		{"set", 7, 7},
		{"keep all", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Options{Store: memory.New(), Executable: "flowctl", KeepRuns: tc.opt})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.cleanup)
			if got := s.rec.opts.keepRuns; got != tc.want {
				t.Fatalf("the reconciler keeps %d runs, want %d", got, tc.want)
			}
		})
	}
}

// TestRunThatDroppedCompletes: a bounded child that finished but dropped
// events (a malformed line, no dead-letter sink) exits with
// childExitDropped; its run is Completed, says so, and is not run again —
// that would only write its output twice.
func TestRunThatDroppedCompletes(t *testing.T) {
	ts := startTestServer(t, memory.New())
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte("{\"n\":1}\n{\"n\":1e999}\n{\"n\":3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const lossy = `name: lossy
sources:
  - name: in
    type: file
    config: {path: in.jsonl}
sinks:
  - name: out
    type: file
    inputs: [in]
    config: {path: out.jsonl}
`
	if _, err := ts.pl.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(lossy), Dir: dir}); err != nil {
		t.Fatal(err)
	}
	var runs []*controlv1.Run
	eventually(t, "the run to end", func() bool {
		resp, err := ts.runs.ListRuns(ctx, &controlv1.ListRunsRequest{Pipeline: "lossy"})
		if err != nil {
			t.Fatal(err)
		}
		runs = resp.GetRuns()
		return len(runs) > 0 && runs[0].GetState() != controlv1.RunState_RUN_STATE_RUNNING
	})
	r := runs[0]
	if len(runs) != 1 || r.GetState() != controlv1.RunState_RUN_STATE_COMPLETED ||
		!strings.Contains(r.GetReason(), "every source finished, but events were dropped") ||
		!strings.Contains(r.GetReason(), `dropped 1 events (source "in" 1)`) {
		t.Fatalf("runs = %v; want one COMPLETED run saying what was dropped", runs)
	}
	eventually(t, "the pipeline to be Completed", func() bool {
		r, err := ts.pl.Get(ctx, &controlv1.GetPipelineRequest{Name: "lossy"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetPipeline().GetStatus().GetPhase() == controlv1.Phase_PHASE_COMPLETED
	})
	if b, _ := os.ReadFile(filepath.Join(dir, "out.jsonl")); string(b) != "{\"n\":1}\n{\"n\":3}\n" {
		t.Fatalf("out.jsonl = %q", b)
	}
}
