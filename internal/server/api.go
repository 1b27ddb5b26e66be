package server

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/internal/store"
	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// api serves the flowctl.control.v1 services.
type api struct {
	controlv1.UnimplementedPipelineServiceServer
	controlv1.UnimplementedRunServiceServer
	controlv1.UnimplementedLogServiceServer
	controlv1.UnimplementedStatusServiceServer
	controlv1.UnimplementedLiveServiceServer
	s *Server
}

// storeError maps a store error to a gRPC status.
func storeError(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s: %v", what, err)
	case errors.Is(err, store.ErrConflict):
		return status.Errorf(codes.Aborted, "%s: %v", what, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	default:
		return status.Errorf(codes.Unavailable, "%s: %v", what, err)
	}
}

func (a *api) shutting() bool {
	a.s.rec.mu.Lock()
	defer a.s.rec.mu.Unlock()
	return a.s.rec.shutting
}

// hashWithDir is the content hash of an applied file: its normalised spec
// and the directory its relative paths resolve against.
func hashWithDir(p *parsed, dir string) string { return contentHash(p.canon, dir) }

// Apply implements PipelineService.Apply.
func (a *api) Apply(ctx context.Context, req *controlv1.ApplyRequest) (*controlv1.ApplyResponse, error) {
	if a.shutting() && !req.GetDryRun() {
		return nil, status.Error(codes.FailedPrecondition, "apply: the server is shutting down")
	}
	if len(req.GetSpec()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "apply: the pipeline file is empty")
	}
	p := parseSpec(req.GetFile(), req.GetSpec())
	name := req.GetName()
	if p.pl != nil && p.pl.Name != "" {
		if name != "" && name != p.pl.Name {
			return nil, status.Errorf(codes.InvalidArgument, "apply: the request names pipeline %q but the file names it %q: drop one or make them agree", name, p.pl.Name)
		}
		name = p.pl.Name
	}
	resp := &controlv1.ApplyResponse{Name: name, DryRun: req.GetDryRun(), Diagnostics: diagsToProto(p.diags)}
	if name != "" {
		if err := validName(name); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "apply: %v", err)
		}
	}
	var old *store.Pipeline
	if name != "" {
		got, err := a.s.opts.Store.GetPipeline(ctx, name)
		switch {
		case err == nil:
			old = &got
			resp.Revision = got.Revision
		case !errors.Is(err, store.ErrNotFound):
			return nil, storeError("apply", err)
		}
	}
	if p.diags.HasErrors() || p.pl == nil || name == "" {
		resp.Rejected = true
		return resp, nil
	}
	var oldParsed *parsed
	if old != nil {
		if op := parseSpec("", old.Spec); !op.diags.HasErrors() {
			oldParsed = op
		}
	}
	hash := hashWithDir(p, req.GetDir())
	resp.Hash = hash
	resp.Plan = plan(p, oldParsed)
	changed := old == nil || old.Hash != hash
	// A change a running child applies in place (see engine.Reload)
	// leaves the other components running.
	inPlace, why := false, ""
	if old != nil {
		inPlace, why = reloadable(oldParsed, p, old.Dir, req.GetDir())
	}
	resp.RestartsAll = changed && old != nil && !inPlace
	if resp.RestartsAll {
		resp.RestartReason = why
	}
	if req.GetDryRun() {
		resp.Changed = changed
		if changed {
			// The store numbers revisions (a pipeline applied again after
			// a delete continues its old numbers): ask it what the real
			// apply would get.
			next, err := a.s.opts.Store.NextRevision(ctx, name)
			if err != nil {
				return nil, storeError("apply", err)
			}
			resp.Revision = next
		}
		return resp, nil
	}
	res, err := a.s.opts.Store.PutPipeline(ctx, store.Pipeline{Name: name, Hash: hash, Spec: req.GetSpec(), Dir: req.GetDir()}, store.AnyRevision)
	if err != nil {
		return nil, storeError("apply", err)
	}
	resp.Revision = res.Pipeline.Revision
	resp.Changed = res.Changed
	resp.RestartsAll = res.Changed && !res.Created && !inPlace
	if !resp.RestartsAll {
		resp.RestartReason = ""
	}
	if res.Changed {
		a.s.log.Info("pipeline applied", logKeyPipeline, name, logKeyRevision, res.Pipeline.Revision, logKeyHash, hash)
		a.s.rec.queue.Add(name)
	}
	return resp, nil
}

// Get implements PipelineService.Get.
func (a *api) Get(ctx context.Context, req *controlv1.GetPipelineRequest) (*controlv1.GetPipelineResponse, error) {
	p, err := a.s.opts.Store.GetPipeline(ctx, req.GetName())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "pipeline %q not found: `flowctl get pipelines` lists them", req.GetName())
		}
		return nil, storeError("get pipeline", err)
	}
	return &controlv1.GetPipelineResponse{Pipeline: a.pipelineProto(p)}, nil
}

// List implements PipelineService.List.
func (a *api) List(ctx context.Context, _ *controlv1.ListPipelinesRequest) (*controlv1.ListPipelinesResponse, error) {
	pls, err := a.s.opts.Store.ListPipelines(ctx)
	if err != nil {
		return nil, storeError("list pipelines", err)
	}
	resp := &controlv1.ListPipelinesResponse{}
	for _, p := range pls {
		resp.Pipelines = append(resp.Pipelines, a.pipelineProto(p))
	}
	return resp, nil
}

// Delete implements PipelineService.Delete: it returns once the child and
// every process it started are gone.
func (a *api) Delete(ctx context.Context, req *controlv1.DeletePipelineRequest) (*controlv1.DeletePipelineResponse, error) {
	name := req.GetName()
	notFound := func() error {
		return status.Errorf(codes.NotFound, "pipeline %q not found: `flowctl get pipelines` lists them", name)
	}
	// The applied file names the components whose registrations go with
	// the pipeline, whatever metadata they carry.
	var components []string
	switch p, err := a.s.opts.Store.GetPipeline(ctx, name); {
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound()
	case err != nil:
		return nil, storeError("delete pipeline", err)
	default:
		if ps := parseSpec("", p.Spec); ps.pl != nil {
			components = ps.order
		}
	}
	if err := a.s.opts.Store.DeletePipeline(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound()
		}
		return nil, storeError("delete pipeline", err)
	}
	a.s.log.Info("pipeline deleted", logKeyPipeline, name)
	wctx := context.WithoutCancel(ctx)
	_, res, err := a.s.rec.sync(wctx, name)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "delete pipeline %q: %v", name, err)
	}
	// The child is gone: nothing registers for the pipeline any more, so
	// what is left of it goes now rather than when its TTL runs out.
	a.s.dropRegistrations(wctx, name, components)
	resp := &controlv1.DeletePipelineResponse{}
	for _, pid := range res.stoppedPIDs {
		resp.StoppedPids = append(resp.StoppedPids, int32(pid))
	}
	return resp, nil
}

// phaseToProto maps a stored phase.
func phaseToProto(p store.Phase) controlv1.Phase {
	switch p {
	case store.PhasePending, "":
		return controlv1.Phase_PHASE_PENDING
	case store.PhaseRunning:
		return controlv1.Phase_PHASE_RUNNING
	case store.PhaseCompleted:
		return controlv1.Phase_PHASE_COMPLETED
	case store.PhaseFailed:
		return controlv1.Phase_PHASE_FAILED
	case store.PhaseStopped:
		return controlv1.Phase_PHASE_STOPPED
	}
	return controlv1.Phase_PHASE_UNSPECIFIED
}

func condStatus(s string) controlv1.ConditionStatus {
	switch s {
	case "True":
		return controlv1.ConditionStatus_CONDITION_STATUS_TRUE
	case "False":
		return controlv1.ConditionStatus_CONDITION_STATUS_FALSE
	}
	return controlv1.ConditionStatus_CONDITION_STATUS_UNKNOWN
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// pipelineProto joins the stored pipeline, what the reconciler observes
// and the registry.
func (a *api) pipelineProto(p store.Pipeline) *controlv1.Pipeline {
	out := &controlv1.Pipeline{
		Name: p.Name, Revision: p.Revision, Hash: p.Hash, Spec: p.Spec, Dir: p.Dir,
		CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.AppliedAt),
	}
	live, _ := a.s.rec.statusOf(p)
	st := &controlv1.PipelineStatus{Phase: phaseToProto(live.Phase), LastError: live.LastError}
	for _, c := range live.Conditions {
		st.Conditions = append(st.Conditions, &controlv1.Condition{Type: c.Type, Status: condStatus(c.Status),
			Reason: c.Reason, Message: c.Message, LastTransitionTime: ts(c.LastTransition)})
	}
	var running int64
	if v := a.s.rec.snapshot(p.Name); v != nil {
		if v.phase != "" {
			st.Phase = phaseToProto(v.phase)
		}
		st.Pid, st.RunId, st.RunningRevision = int32(v.pid), v.runID, v.revision
		st.Restarts = int32(v.restarts)
		st.Since = ts(v.since)
		if v.lastError != "" {
			st.LastError = v.lastError
		}
		if v.pid == 0 && v.nextRetry.After(time.Now()) {
			st.NextRetry = ts(v.nextRetry)
		}
		running = v.revision
	}
	out.Status = st

	entries := map[string]controlplane.Entry{}
	if running > 0 {
		for _, e := range a.s.rec.components(p.Name, running) {
			entries[e.Metadata[report.MetaComponent]] = e
		}
	}
	if ps := parseSpec("", p.Spec); ps.pl != nil {
		for _, name := range ps.order {
			c := ps.pl.Component(name)
			cs := &controlv1.ComponentState{Name: name, Role: ps.roles[name], Kind: report.KindOf(c),
				RegistryId: report.ID(p.Name, name)}
			for _, in := range c.Inputs {
				cs.Inputs = append(cs.Inputs, in.From)
			}
			if e, ok := entries[name]; ok {
				cs.Health = streamv1.HealthStatus(e.Health)
				cs.LastHeartbeat = ts(e.LastHeartbeat)
				cs.Counters = report.ParseMetrics(e.Metrics)
			}
			out.Components = append(out.Components, cs)
		}
	}
	return out
}

// ListRuns implements RunService.ListRuns.
func (a *api) ListRuns(ctx context.Context, req *controlv1.ListRunsRequest) (*controlv1.ListRunsResponse, error) {
	limit := int(req.GetLimit())
	if limit <= 0 {
		limit = 100
	}
	runs, err := a.s.opts.Store.ListRuns(ctx, req.GetPipeline(), limit)
	if err != nil {
		return nil, storeError("list runs", err)
	}
	resp := &controlv1.ListRunsResponse{}
	for _, r := range runs {
		resp.Runs = append(resp.Runs, runProto(r))
	}
	return resp, nil
}

func runStateProto(s store.RunState) controlv1.RunState {
	switch s {
	case store.RunStarted:
		return controlv1.RunState_RUN_STATE_RUNNING
	case store.RunCompleted:
		return controlv1.RunState_RUN_STATE_COMPLETED
	case store.RunStopped:
		return controlv1.RunState_RUN_STATE_STOPPED
	case store.RunFailed:
		return controlv1.RunState_RUN_STATE_FAILED
	case store.RunInterrupted:
		return controlv1.RunState_RUN_STATE_INTERRUPTED
	}
	return controlv1.RunState_RUN_STATE_UNSPECIFIED
}

func runProto(r store.Run) *controlv1.Run {
	out := &controlv1.Run{Id: r.ID, Pipeline: r.Pipeline, Revision: r.Revision, State: runStateProto(r.State),
		StartedAt: ts(r.StartedAt), EndedAt: ts(r.EndedAt), Pid: int32(r.PID), Reason: r.Reason,
		ExitCode: int32(r.ExitCode)}
	byComp := map[string]*controlv1.ComponentCounters{}
	var order []string
	for k, v := range r.Counters {
		comp, counter, ok := strings.Cut(k, "/")
		if !ok {
			comp, counter = "", k
		}
		cc := byComp[comp]
		if cc == nil {
			cc = &controlv1.ComponentCounters{Component: comp, Counters: map[string]int64{}}
			byComp[comp] = cc
			order = append(order, comp)
		}
		cc.Counters[counter] = v
	}
	slices.Sort(order)
	for _, c := range order {
		out.Counters = append(out.Counters, byComp[c])
	}
	return out
}

// Logs implements LogService.Logs.
func (a *api) Logs(req *controlv1.LogsRequest, stream controlv1.LogService_LogsServer) error {
	name := req.GetPipeline()
	if name == "" {
		return status.Error(codes.InvalidArgument, "logs: name the pipeline")
	}
	ctx := stream.Context()
	p, err := a.s.opts.Store.GetPipeline(ctx, name)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeError("logs", err)
	}
	filter := LogFilter{Component: req.GetComponent()}
	if req.GetSince() != nil {
		filter.Since = req.GetSince().AsTime()
	}
	if lv := req.GetLevel(); lv != "" {
		if err := filter.MinLevel.UnmarshalText([]byte(lv)); err != nil {
			return status.Errorf(codes.InvalidArgument, "logs: level %q: use debug, info, warn or error", lv)
		}
		filter.HasLevel = true
	}
	if c := filter.Component; c != "" {
		// A component is known when the applied file declares it or a
		// kept line is about it (a component since removed).
		known := a.s.logs.Components(name)
		if exists {
			if ps := parseSpec("", p.Spec); ps.pl != nil {
				known = append(known, ps.order...)
			}
		}
		slices.Sort(known)
		known = slices.Compact(known)
		if !slices.Contains(known, c) && (exists || len(known) > 0) {
			list := "it has none"
			if len(known) > 0 {
				list = "its components are " + strings.Join(known, ", ")
			}
			return status.Errorf(codes.NotFound, "pipeline %q has no component %q: %s", name, c, list)
		}
	}
	follow := req.GetFollow() && exists
	lines, f := a.s.logs.Tail(name, filter, int(req.GetTail()), follow)
	if !exists && len(lines) == 0 {
		return status.Errorf(codes.NotFound, "pipeline %q not found and has no logs: `flowctl get pipelines` lists them", name)
	}
	if f != nil {
		defer a.s.logs.Unfollow(name, f)
	}
	for _, l := range lines {
		if err := stream.Send(logProto(l)); err != nil {
			return err
		}
	}
	if f == nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			// Canceled or DeadlineExceeded, never OK: an OK end tells the
			// client the pipeline was deleted, not that its own time ran out.
			return status.FromContextError(ctx.Err()).Err()
		case <-a.s.done:
			return status.Error(codes.Unavailable, "logs: the server is shutting down")
		case l, ok := <-f.C:
			if !ok {
				if err := a.s.logs.Err(f); err != nil {
					return status.Errorf(codes.ResourceExhausted, "logs: %v", err)
				}
				return nil
			}
			if err := stream.Send(logProto(l)); err != nil {
				return err
			}
		}
	}
}

func logProto(l LogLine) *controlv1.LogLine {
	return &controlv1.LogLine{Time: ts(l.Time), Pipeline: l.Pipeline, Component: l.Component, Stream: l.Stream, Text: l.Text, RunId: l.Run,
		Level: l.Level, Source: l.Source}
}

// Status implements StatusService.Status.
func (a *api) Status(ctx context.Context, _ *controlv1.StatusRequest) (*controlv1.StatusResponse, error) {
	resp := &controlv1.StatusResponse{
		Version: a.s.opts.Version, StartedAt: ts(a.s.started), UptimeSeconds: time.Since(a.s.started).Seconds(),
		DataDir: a.s.opts.DataDir, Listen: a.s.Addr(), Tls: a.s.opts.TLS, Mtls: a.s.opts.MTLS,
		Pipelines: map[string]int32{}, Components: map[string]int32{},
	}
	pls, err := a.s.opts.Store.ListPipelines(ctx)
	if err != nil {
		return nil, storeError("status", err)
	}
	for _, p := range pls {
		phase := phaseToProto(p.Status.Phase)
		if v := a.s.rec.snapshot(p.Name); v != nil && v.phase != "" {
			phase = phaseToProto(v.phase)
		}
		resp.Pipelines[phaseName(phase)]++
	}
	for _, e := range a.s.registry.List() {
		resp.Components[e.Health.String()]++
	}
	return resp, nil
}

// phaseName is the lower-case name of a phase ("running").
func phaseName(p controlv1.Phase) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PHASE_"))
}
