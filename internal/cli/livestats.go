package cli

import (
	"encoding/json"
	"net/http"

	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
)

// liveStatsPath is where a run's socket serves its live counters (GET, JSON
// liveStats); the server relays them through LiveService.Stats.
const liveStatsPath = "/v1/stats"

// liveStats is a run's live counters as flowctl top reads them. Rates are
// the reader's business: it polls and takes differences.
type liveStats struct {
	Pipeline       string  `json:"pipeline"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Ready          bool    `json:"ready"`
	Finished       bool    `json:"finished"`
	// LatencyBoundsSeconds are the upper bounds of every component's
	// LatencyBuckets (the last bucket: above them all).
	LatencyBoundsSeconds []float64       `json:"latency_bounds_seconds"`
	Components           []liveComponent `json:"components"`
}

// liveComponent is one component's counters (see engine.ComponentStats).
type liveComponent struct {
	Name          string `json:"name"`
	Role          string `json:"role"`
	DeadLetter    bool   `json:"dead_letter,omitempty"`
	External      bool   `json:"external,omitempty"`
	In            int64  `json:"in"`
	Out           int64  `json:"out"`
	Filtered      int64  `json:"filtered"`
	Errors        int64  `json:"errors"`
	Dropped       int64  `json:"dropped"`
	DeadLettered  int64  `json:"dead_lettered"`
	Retries       int64  `json:"retries"`
	QueueDepth    int    `json:"queue_depth"`
	QueueCapacity int    `json:"queue_capacity"`
	Batches       int64  `json:"batches"`
	// LatencyBuckets count the batches the component finished by their
	// age since the source emitted them.
	LatencyBuckets []int64 `json:"latency_buckets"`
	// ProcessingBuckets count a processor's or sink's batches by the time
	// it spent on them (this hop alone); EndToEndBuckets a source's
	// batches by the time from emitting to acknowledgement by every sink.
	ProcessingBuckets []int64 `json:"processing_buckets,omitempty"`
	EndToEndBuckets   []int64 `json:"end_to_end_buckets,omitempty"`
	Health            string  `json:"health"`
	Reason            string  `json:"reason,omitempty"`
	Restarts          int64   `json:"restarts"`
}

// collectLiveStats snapshots e (and ext's restarts, when there are
// external components).
func collectLiveStats(name string, e *engine.Engine, ext *external.Manager) liveStats {
	st := e.Stats()
	out := liveStats{Pipeline: name, ElapsedSeconds: st.Elapsed.Seconds(), Ready: st.Ready, Finished: st.Finished}
	for _, b := range engine.LatencyBuckets {
		out.LatencyBoundsSeconds = append(out.LatencyBoundsSeconds, b.Seconds())
	}
	restarts := map[string]int64{}
	if ext != nil {
		for _, c := range ext.Stats() {
			restarts[c.Name] = c.Restarts
		}
	}
	for _, c := range st.Components {
		r, isExt := restarts[c.Name]
		out.Components = append(out.Components, liveComponent{
			Name: c.Name, Role: string(c.Role), DeadLetter: c.DeadLetter, External: isExt,
			In: c.In, Out: c.Out, Filtered: c.Filtered, Errors: c.Errors, Dropped: c.Dropped,
			DeadLettered: c.DeadLettered, Retries: c.Retries,
			QueueDepth: c.QueueDepth, QueueCapacity: c.QueueCapacity,
			Batches: c.Batches, LatencyBuckets: c.LatencyBucketHits,
			ProcessingBuckets: c.Processing.BucketHits, EndToEndBuckets: c.EndToEnd.BucketHits,
			Health: string(c.Health), Reason: c.Reason, Restarts: r,
		})
	}
	return out
}

// liveStatsHandler serves collectLiveStats as JSON.
func liveStatsHandler(name string, e *engine.Engine, ext *external.Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(collectLiveStats(name, e, ext))
	})
}
