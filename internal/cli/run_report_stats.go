package cli

import (
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// The engine's stats in the reporter's terms. They live here, where the
// engine and the reporter meet, so that package report (which the server
// imports for the registration metadata) does not import the engine.

// countersFromStats turns an engine snapshot into Counters.
func countersFromStats(s engine.Stats) report.Counters {
	out := make(report.Counters, len(s.Components))
	for _, c := range s.Components {
		out[c.Name] = map[string]int64{
			report.CounterIn: c.In, report.CounterOut: c.Out, report.CounterErrors: c.Errors,
			report.CounterDropped: c.Dropped, report.CounterDeadLettered: c.DeadLettered,
			report.CounterFiltered: c.Filtered, report.CounterRetries: c.Retries, report.CounterUnrouted: c.Unrouted,
		}
	}
	return out
}

// healthFromStats is the health the engine sees of each component that is
// not healthy (a sink retrying a failed write), and why.
func healthFromStats(s engine.Stats) (map[string]streamv1.HealthStatus, map[string]string) {
	var health map[string]streamv1.HealthStatus
	var reasons map[string]string
	for _, c := range s.Components {
		var h streamv1.HealthStatus
		switch c.Health {
		case engine.HealthDegraded:
			h = streamv1.HealthStatus_HEALTH_STATUS_DEGRADED
		case engine.HealthUnhealthy:
			h = streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY
		default:
			continue
		}
		if health == nil {
			health, reasons = map[string]streamv1.HealthStatus{}, map[string]string{}
		}
		health[c.Name] = h
		if c.Reason != "" {
			reasons[c.Name] = c.Reason
		}
	}
	return health, reasons
}
