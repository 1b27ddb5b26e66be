package server

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/ui"
)

// UIBackend is what `flowctl server --ui` shows (internal/ui): the same
// data as the gRPC API, read in this process.
func (s *Server) UIBackend() ui.Backend { return uiBackend{a: &api{s: s}} }

type uiBackend struct{ a *api }

// uiError turns an API error (a gRPC status) into an HTTP one.
func uiError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.InvalidArgument:
		code = http.StatusBadRequest
	case codes.FailedPrecondition, codes.Unavailable:
		code = http.StatusServiceUnavailable
	}
	return &ui.Error{Code: code, Msg: st.Message()}
}

func (b uiBackend) Pipelines(ctx context.Context) ([]ui.PipelineSummary, error) {
	pls, err := b.a.s.opts.Store.ListPipelines(ctx)
	if err != nil {
		return nil, uiError(storeError("list pipelines", err))
	}
	var out []ui.PipelineSummary
	for _, p := range pls {
		live, _ := b.a.s.rec.statusOf(p)
		ps := ui.PipelineSummary{Name: p.Name, Revision: p.Revision, Phase: string(live.Phase), LastError: live.LastError, AppliedAt: p.AppliedAt}
		if v := b.a.s.rec.snapshot(p.Name); v != nil {
			if v.phase != "" {
				ps.Phase = string(v.phase)
			}
			ps.RunID, ps.Restarts = v.runID, v.restarts
			if v.lastError != "" {
				ps.LastError = v.lastError
			}
		}
		out = append(out, ps)
	}
	return out, nil
}

func (b uiBackend) Runs(ctx context.Context, pipeline string, limit int) ([]ui.RunSummary, error) {
	runs, err := b.a.s.opts.Store.ListRuns(ctx, pipeline, limit)
	if err != nil {
		return nil, uiError(storeError("list runs", err))
	}
	var out []ui.RunSummary
	for _, r := range runs {
		rs := ui.RunSummary{ID: r.ID, Revision: r.Revision, State: string(r.State), Reason: r.Reason, StartedAt: r.StartedAt, Counters: r.Counters}
		if !r.EndedAt.IsZero() {
			t := r.EndedAt
			rs.EndedAt = &t
		}
		out = append(out, rs)
	}
	return out, nil
}

func (b uiBackend) Graph(ctx context.Context, pipeline string) (*graph.Graph, error) {
	p, err := b.a.s.opts.Store.GetPipeline(ctx, pipeline)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &ui.Error{Code: http.StatusNotFound, Msg: "pipeline " + pipeline + " not found"}
	}
	if err != nil {
		return nil, uiError(storeError("get pipeline", err))
	}
	ps := parseSpec("", p.Spec)
	if ps.pl == nil {
		return nil, &ui.Error{Code: http.StatusInternalServerError, Msg: "the stored file of " + pipeline + " does not parse"}
	}
	return graph.Build(ps.pl)
}

func (b uiBackend) Logs(ctx context.Context, pipeline, component string, tail int) ([]ui.LogLine, error) {
	lines, _ := b.a.s.logs.Tail(pipeline, LogFilter{Component: component}, tail, false)
	out := make([]ui.LogLine, 0, len(lines))
	for _, l := range lines {
		out = append(out, ui.LogLine{Time: l.Time, Component: l.Component, Stream: l.Stream, Level: l.Level, Text: l.Text, Run: l.Run})
	}
	return out, nil
}

func (b uiBackend) RunClient(ctx context.Context, pipeline string) (*http.Client, error) {
	c, err := b.a.runClient(ctx, pipeline)
	return c, uiError(err)
}
