package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/flow"
)

type fixedStats struct {
	mu sync.Mutex
	s  engine.Stats
}

func (f *fixedStats) Stats() engine.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func TestServe(t *testing.T) {
	hits := make([]int64, len(engine.LatencyBuckets)+1)
	hits[0], hits[3], hits[len(hits)-1] = 2, 1, 1
	src := &fixedStats{s: engine.Stats{Ready: true, Pending: 3, Components: []engine.ComponentStats{
		{Name: "gen", Role: flow.RoleSource, Out: 10, EndToEnd: engine.Histogram{Count: 4, Sum: 2 * time.Second, BucketHits: hits}},
		{Name: "out", Role: flow.RoleSink, In: 10, Out: 9, Errors: 1, DeadLettered: 1, QueueDepth: 5, QueueCapacity: 1024,
			Batches: 4, LatencyBucketHits: hits, LatencySum: 30 * time.Second,
			Processing: engine.Histogram{Count: 4, Sum: time.Second, BucketHits: hits},
			Health:     engine.HealthDegraded, Reason: "retrying for 1s (2 failed attempts): status 503"},
	}}}
	srv, err := Serve("127.0.0.1:0", "p", src)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	for _, want := range []string{
		`flowctl_events_out_total{component="gen",pipeline="p",role="source"} 10`,
		`flowctl_events_in_total{component="out",pipeline="p",role="sink"} 10`,
		`flowctl_errors_total{component="out",pipeline="p",role="sink"} 1`,
		`flowctl_events_dead_lettered_total{component="out",pipeline="p",role="sink"} 1`,
		`flowctl_queue_depth{component="out",pipeline="p",role="sink"} 5`,
		`flowctl_queue_capacity{component="out",pipeline="p",role="sink"} 1024`,
		`flowctl_batch_latency_seconds_bucket{component="out",pipeline="p",role="sink",le="5e-05"} 2`,
		`flowctl_batch_latency_seconds_bucket{component="out",pipeline="p",role="sink",le="0.0005"} 3`,
		`flowctl_batch_latency_seconds_bucket{component="out",pipeline="p",role="sink",le="+Inf"} 4`,
		`flowctl_batch_latency_seconds_sum{component="out",pipeline="p",role="sink"} 30`,
		`flowctl_processing_seconds_bucket{component="out",pipeline="p",role="sink",le="0.0005"} 3`,
		`flowctl_processing_seconds_count{component="out",pipeline="p",role="sink"} 4`,
		`flowctl_processing_seconds_sum{component="out",pipeline="p",role="sink"} 1`,
		`flowctl_end_to_end_seconds_bucket{component="gen",pipeline="p",role="source",le="5e-05"} 2`,
		`flowctl_end_to_end_seconds_sum{component="gen",pipeline="p",role="source"} 2`,
		`flowctl_pending_batches{pipeline="p"} 3`,
		`flowctl_ready{pipeline="p"} 1`,
		`flowctl_component_health{component="gen",pipeline="p",role="source",state="healthy"} 1`,
		`flowctl_component_health{component="out",pipeline="p",role="sink",state="healthy"} 0`,
		`flowctl_component_health{component="out",pipeline="p",role="sink",state="degraded"} 1`,
		`flowctl_component_health{component="out",pipeline="p",role="sink",state="unhealthy"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, `flowctl_queue_depth{component="gen"`) {
		t.Error("a source has no queue")
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d", code)
	}
	src.mu.Lock()
	src.s.Finished = true
	src.mu.Unlock()
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after the run %d", code)
	}
}
