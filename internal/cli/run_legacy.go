package cli

import (
	"os"
	"strconv"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// setCurrentRun gives the embedded control plane's flowctl.ControlPlane
// this run as its one run: id PIPELINE/N under flowctl server (N its run
// id), PIPELINE/local otherwise.
func setCurrentRun(ext *external.Manager, pl *spec.Pipeline, o runOptions, e *engine.Engine) {
	if ext == nil {
		return
	}
	id := pl.Name + "/local"
	if o.runID > 0 {
		id = pl.Name + "/" + strconv.FormatInt(o.runID, 10)
	}
	var config string
	if pl.File != "" && pl.File != "-" {
		if b, err := os.ReadFile(pl.File); err == nil {
			config = string(b)
		}
	}
	var names []string
	for _, c := range pl.Components() {
		names = append(names, c.Name)
	}
	ext.SetRuns(controlplane.OneRun(func() controlplane.Run {
		s := e.Stats()
		r := controlplane.Run{
			ID: id, Pipeline: pl.Name, Status: controlplane.RunStarting, Start: s.Started,
			Config: config, Components: names, In: map[string]int64{}, Out: map[string]int64{},
		}
		switch {
		case s.Finished:
			r.Status, r.End = controlplane.RunCompleted, s.Started.Add(s.Elapsed)
		case s.Ready:
			r.Status = controlplane.RunRunning
		}
		for _, c := range s.Components {
			r.In[c.Name], r.Out[c.Name] = c.In, c.Out
			if c.Role == flow.RoleSource {
				r.EventsProcessed += c.Out
			}
		}
		return r
	}))
}
