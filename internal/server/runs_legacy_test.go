package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/store/memory"
)

// TestStoreRunsLegacy: flowctl.ControlPlane's runs are the store's, with
// ids PIPELINE/N, their states mapped, sources' output as events
// processed, and the applied file while its revision is the run's.
func TestStoreRunsLegacy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := memory.New()
	defer st.Close()
	spec := []byte("name: payments\nsources:\n  - name: gen\n    type: generate\n    config: {count: 3, data: {k: 1}}\nsinks:\n  - name: out\n    type: stdout\n    inputs: [gen]\n")
	if _, err := st.PutPipeline(ctx, store.Pipeline{Name: "payments", Hash: "h1", Spec: spec}, store.NoRevision); err != nil {
		t.Fatal(err)
	}
	first, err := st.StartRun(ctx, store.Run{Pipeline: "payments", Revision: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	first.State, first.Reason, first.EndedAt = store.RunFailed, "exit status 1", time.Now()
	first.Counters = map[string]int64{"gen/out": 3, "out/in": 3, "out/out": 3}
	if err := st.UpdateRun(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StartRun(ctx, store.Run{Pipeline: "payments", Revision: 1}, 0); err != nil {
		t.Fatal(err)
	}
	r := storeRuns{st}

	tests := []struct {
		id      string
		status  controlplane.RunStatus
		events  int64
		wantErr bool
	}{
		{"payments/1", controlplane.RunFailed, 3, false},
		{"payments/2", controlplane.RunRunning, 0, false},
		{"payments/3", 0, 0, true},
		{"payments", 0, 0, true},
		{"other/1", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			run, err := r.GetRun(ctx, tt.id)
			if tt.wantErr {
				if !errors.Is(err, controlplane.ErrRunNotFound) {
					t.Fatalf("GetRun = %+v, %v; want ErrRunNotFound", run, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if run.ID != tt.id || run.Status != tt.status || run.EventsProcessed != tt.events || run.Config != string(spec) || len(run.Components) != 2 {
				t.Fatalf("run = %+v", run)
			}
		})
	}
	list, err := r.ListRuns(ctx, "", 1)
	if err != nil || len(list) != 1 || list[0].ID != "payments/2" {
		t.Fatalf("ListRuns(limit 1) = %+v, %v; want the newest", list, err)
	}
}
