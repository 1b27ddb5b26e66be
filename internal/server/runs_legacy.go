package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/store"
)

// storeRuns answers flowctl.ControlPlane's run calls (GetPipelineRun,
// ListPipelineRuns) from the store's run history. A run's id there is
// "PIPELINE/N", N being the number `flowctl get runs` shows.
type storeRuns struct{ st store.Store }

// LegacyRunID is the flowctl.ControlPlane id of run n of pipeline.
func LegacyRunID(pipeline string, n int64) string {
	return pipeline + "/" + strconv.FormatInt(n, 10)
}

func (r storeRuns) GetRun(ctx context.Context, id string) (controlplane.Run, error) {
	i := strings.LastIndex(id, "/")
	n, err := strconv.ParseInt(id[i+1:], 10, 64)
	if i <= 0 || err != nil {
		return controlplane.Run{}, fmt.Errorf("run %q: %w (a run id is PIPELINE/N)", id, controlplane.ErrRunNotFound)
	}
	pipeline := id[:i]
	// Runs are listed newest first; the store keeps a bounded history.
	runs, err := r.st.ListRuns(ctx, pipeline, 0)
	if err != nil {
		return controlplane.Run{}, err
	}
	for _, run := range runs {
		if run.ID == n {
			return r.convert(ctx, run), nil
		}
	}
	return controlplane.Run{}, fmt.Errorf("run %q: %w", id, controlplane.ErrRunNotFound)
}

func (r storeRuns) ListRuns(ctx context.Context, pipeline string, limit int) ([]controlplane.Run, error) {
	runs, err := r.st.ListRuns(ctx, pipeline, limit)
	if err != nil {
		return nil, err
	}
	out := make([]controlplane.Run, 0, len(runs))
	for _, run := range runs {
		out = append(out, r.convert(ctx, run))
	}
	return out, nil
}

// convert maps a stored run. The pipeline's file and its components come
// from the applied pipeline when it is still at the run's revision.
func (r storeRuns) convert(ctx context.Context, run store.Run) controlplane.Run {
	out := controlplane.Run{
		ID: LegacyRunID(run.Pipeline, run.ID), Pipeline: run.Pipeline,
		Start: run.StartedAt, End: run.EndedAt, In: map[string]int64{}, Out: map[string]int64{},
	}
	switch run.State {
	case store.RunStarted:
		out.Status = controlplane.RunRunning
	case store.RunCompleted:
		out.Status = controlplane.RunCompleted
	case store.RunStopped:
		out.Status = controlplane.RunStopped
		out.Error = run.Reason
	case store.RunFailed, store.RunInterrupted:
		out.Status = controlplane.RunFailed
		out.Error = run.Reason
	}
	for k, v := range run.Counters {
		comp, counter, ok := strings.Cut(k, "/")
		if !ok {
			continue
		}
		switch counter {
		case "in":
			out.In[comp] = v
		case "out":
			out.Out[comp] = v
		}
	}
	p, err := r.st.GetPipeline(ctx, run.Pipeline)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			out.Error = strings.TrimSpace(out.Error + " (pipeline unreadable: " + err.Error() + ")")
		}
		return out
	}
	if p.Revision == run.Revision {
		out.Config = string(p.Spec)
	}
	if ps := parseSpec("", p.Spec); ps.pl != nil {
		out.Components = ps.order
		for _, name := range ps.order {
			if ps.roles[name] == "source" {
				out.EventsProcessed += out.Out[name]
			}
		}
	}
	return out
}
