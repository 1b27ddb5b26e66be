package cli

import (
	"reflect"
	"testing"

	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

func TestStatsForTheReporter(t *testing.T) {
	const why = "retrying for 3s (4 failed attempts)"
	stats := func(h engine.Health) engine.Stats {
		return engine.Stats{Components: []engine.ComponentStats{
			{Name: "gen", Role: flow.RoleSource, Out: 10},
			{Name: "out", Role: flow.RoleSink, In: 10, Errors: 4, Retries: 4, Dropped: 1, Health: h, Reason: why},
		}}
	}
	cases := []struct {
		name       string
		health     engine.Health
		wantHealth map[string]streamv1.HealthStatus
		wantWhy    map[string]string
	}{
		{"healthy", engine.HealthHealthy, nil, nil},
		{"degraded", engine.HealthDegraded, map[string]streamv1.HealthStatus{"out": streamv1.HealthStatus_HEALTH_STATUS_DEGRADED}, map[string]string{"out": why}},
		{"unhealthy", engine.HealthUnhealthy, map[string]streamv1.HealthStatus{"out": streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY}, map[string]string{"out": why}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := stats(tc.health)
			h, w := healthFromStats(s)
			if !reflect.DeepEqual(h, tc.wantHealth) || !reflect.DeepEqual(w, tc.wantWhy) {
				t.Errorf("health = %v, %v; want %v, %v", h, w, tc.wantHealth, tc.wantWhy)
			}
			c := countersFromStats(s)
			if c["gen"][report.CounterOut] != 10 || c["out"][report.CounterIn] != 10 || c["out"][report.CounterRetries] != 4 ||
				c["out"][report.CounterErrors] != 4 || c["out"][report.CounterDropped] != 1 {
				t.Errorf("counters = %v", c)
			}
		})
	}
}
