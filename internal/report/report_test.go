package report

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// startRegistry serves a real control plane on loopback.
func startRegistry(t *testing.T, interval time.Duration) (*controlplane.Registry, string) {
	t.Helper()
	reg := controlplane.NewRegistry(controlplane.Options{HeartbeatInterval: interval})
	srv := controlplane.NewServer(reg, nil)
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return reg, addr
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReporter(t *testing.T) {
	reg, addr := startRegistry(t, 50*time.Millisecond)
	var out atomic.Int64
	r, err := Start(context.Background(), Options{
		Addr: addr, Pipeline: "p", Revision: 3, RunID: 7,
		Components: []Component{{Name: "src", Role: flow.RoleSource, Kind: "generate"}, {Name: "dl", Role: flow.RoleSink, DeadLetter: true, Kind: "file"}},
		Counters: func() Counters {
			return Counters{"src": {CounterOut: out.Add(1)}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval() != 50*time.Millisecond {
		t.Errorf("interval %s, want the server's 50ms", r.Interval())
	}
	e, ok := reg.Get("p/src")
	if !ok {
		t.Fatal("p/src not registered")
	}
	for k, want := range map[string]string{MetaPipeline: "p", MetaComponent: "src", MetaRevision: "3", MetaRun: "7", MetaKind: "generate"} {
		if e.Metadata[k] != want {
			t.Errorf("metadata %s = %q, want %q", k, e.Metadata[k], want)
		}
	}
	if e.TTL != 150*time.Millisecond || e.Role != flow.RoleSource {
		t.Errorf("ttl %s role %s", e.TTL, e.Role)
	}
	if dl, _ := reg.Get("p/dl"); dl.Metadata[MetaDeadLetter] != "true" {
		t.Errorf("dead letter not marked: %v", dl.Metadata)
	}
	waitUntil(t, "counters in heartbeats", func() bool {
		e, _ := reg.Get("p/src")
		return ParseMetrics(e.Metrics)[CounterOut] >= 2
	})

	// The server forgot it (it restarted): the next heartbeat registers again.
	reg.Deregister("p/src")
	waitUntil(t, "registering again", func() bool { _, ok := reg.Get("p/src"); return ok })

	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e, _ := reg.Get("p/src"); e.Reported != controlplane.HealthStopping {
		t.Errorf("after Close: reported %v, want stopping", e.Reported)
	}
	// No more heartbeats: UNHEALTHY once the TTL passes, whatever was
	// reported last.
	waitUntil(t, "the TTL to expire", func() bool {
		e, _ := reg.Get("p/src")
		return e.Health == controlplane.HealthUnhealthy
	})
}

func TestStartFailsWithoutServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, Options{Addr: "127.0.0.1:1", Pipeline: "p", Components: []Component{{Name: "x", Role: flow.RoleSink}}})
	if err == nil {
		t.Fatal("Start succeeded with no server")
	}
}

// TestSetRevision: after a reload in place every registration carries the
// new revision, with its counters right away.
func TestSetRevision(t *testing.T) {
	reg, addr := startRegistry(t, time.Hour) // no heartbeat but SetRevision's
	r, err := Start(context.Background(), Options{
		Addr: addr, Pipeline: "p", Revision: 1, Interval: time.Hour,
		Components: []Component{{Name: "a", Role: flow.RoleSource}, {Name: "b", Role: flow.RoleSink}},
		Counters:   func() Counters { return Counters{"a": {CounterOut: 42}} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	if err := r.SetRevision(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"p/a", "p/b"} {
		e, ok := reg.Get(id)
		if !ok || e.Metadata[MetaRevision] != "2" {
			t.Errorf("%s: registered %v with metadata %v, want revision 2", id, ok, e.Metadata)
		}
	}
	if e, _ := reg.Get("p/a"); ParseMetrics(e.Metrics)[CounterOut] != 42 {
		t.Errorf("p/a counters after SetRevision: %v", e.Metrics)
	}
}

// TestUpdateComponents: a reload that added and removed components
// registers the new ones and deregisters the removed ones.
func TestUpdateComponents(t *testing.T) {
	reg, addr := startRegistry(t, time.Hour)
	r, err := Start(context.Background(), Options{
		Addr: addr, Pipeline: "p", Revision: 1, Interval: time.Hour,
		Components: []Component{{Name: "a", Role: flow.RoleSource}, {Name: "b", Role: flow.RoleSink}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	next := []Component{{Name: "a", Role: flow.RoleSource}, {Name: "c", Role: flow.RoleProcessor}, {Name: "b", Role: flow.RoleSink}}
	if err := r.Update(context.Background(), 2, next[1:]); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.Get("p/a"); ok {
		t.Error("p/a still registered after it was removed")
	}
	for _, id := range []string{"p/b", "p/c"} {
		e, ok := reg.Get(id)
		if !ok || e.Metadata[MetaRevision] != "2" {
			t.Errorf("%s: registered %v with metadata %v, want revision 2", id, ok, e.Metadata)
		}
	}
	// A removed component the server already forgot is not an error.
	reg.Deregister("p/b")
	if err := r.Update(context.Background(), 3, next[:1]); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.Get("p/a"); !ok {
		t.Error("p/a not registered again")
	}
	if _, ok := reg.Get("p/c"); ok {
		t.Error("p/c still registered")
	}
}

// TestHealthOverride: a component whose health the process reports for
// it (an external one it supervises) heartbeats that health; the others
// heartbeat HEALTHY; the final heartbeat says STOPPING for all.
func TestHealthOverride(t *testing.T) {
	reg, addr := startRegistry(t, time.Hour)
	r, err := Start(context.Background(), Options{
		Addr: addr, Pipeline: "p", Revision: 1, Interval: time.Hour,
		Components: []Component{{Name: "a", Role: flow.RoleProcessor}, {Name: "b", Role: flow.RoleSink}},
		Health: func() map[string]streamv1.HealthStatus {
			return map[string]streamv1.HealthStatus{"a": streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.beat(context.Background(), streamv1.HealthStatus_HEALTH_STATUS_HEALTHY)
	if e, _ := reg.Get("p/a"); e.Health != controlplane.HealthUnhealthy {
		t.Errorf("p/a health %v, want its own UNHEALTHY", e.Health)
	}
	if e, _ := reg.Get("p/b"); e.Health != controlplane.HealthHealthy {
		t.Errorf("p/b health %v, want HEALTHY", e.Health)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e, _ := reg.Get("p/a"); e.Reported != controlplane.HealthStopping {
		t.Errorf("p/a after Close: %v, want STOPPING", e.Reported)
	}
}

// TestSinkRetryingReported: a sink reported retrying heartbeats DEGRADED
// (then UNHEALTHY) with its reason as the metric MetricHealthReason, which
// the counters parser skips; once it writes again it is HEALTHY and the
// reason is gone. (How engine stats become these maps is tested in
// internal/cli, where the engine and the reporter meet.)
func TestSinkRetryingReported(t *testing.T) {
	reg, addr := startRegistry(t, time.Hour)
	type state struct {
		health streamv1.HealthStatus
		why    string
	}
	var cur atomic.Pointer[state]
	cur.Store(&state{})
	r, err := Start(context.Background(), Options{
		Addr: addr, Pipeline: "p", Revision: 1, Interval: time.Hour,
		Components: []Component{{Name: "gen", Role: flow.RoleSource}, {Name: "out", Role: flow.RoleSink}},
		Counters: func() Counters {
			return Counters{"gen": {CounterOut: 10}, "out": {CounterIn: 10, CounterErrors: 4, CounterRetries: 4}}
		},
		Health: func() map[string]streamv1.HealthStatus {
			if h := cur.Load().health; h != streamv1.HealthStatus_HEALTH_STATUS_UNKNOWN {
				return map[string]streamv1.HealthStatus{"out": h}
			}
			return nil
		},
		Reasons: func() map[string]string {
			if why := cur.Load().why; why != "" {
				return map[string]string{"out": why}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	const why = "retrying for 3s (4 failed attempts): status 503: endpoint down"
	for _, tc := range []struct {
		name   string
		health streamv1.HealthStatus
		want   controlplane.Health
		reason string
	}{
		{"degraded", streamv1.HealthStatus_HEALTH_STATUS_DEGRADED, controlplane.HealthDegraded, why},
		{"unhealthy", streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY, controlplane.HealthUnhealthy, why},
		{"healthy again", streamv1.HealthStatus_HEALTH_STATUS_UNKNOWN, controlplane.HealthHealthy, ""},
	} {
		cur.Store(&state{tc.health, tc.reason})
		r.beat(context.Background(), streamv1.HealthStatus_HEALTH_STATUS_HEALTHY)
		e, _ := reg.Get("p/out")
		if e.Health != tc.want || e.Metrics[MetricHealthReason] != tc.reason {
			t.Errorf("%s: registry has %v, reason %q; want %v, %q", tc.name, e.Health, e.Metrics[MetricHealthReason], tc.want, tc.reason)
		}
		if c := ParseMetrics(e.Metrics); c[CounterRetries] != 4 {
			t.Errorf("%s: counters %v", tc.name, c)
		}
		if g, _ := reg.Get("p/gen"); g.Health != controlplane.HealthHealthy {
			t.Errorf("source health %v", g.Health)
		}
	}
}

func TestWorse(t *testing.T) {
	const (
		unknown   = streamv1.HealthStatus_HEALTH_STATUS_UNKNOWN
		healthy   = streamv1.HealthStatus_HEALTH_STATUS_HEALTHY
		degraded  = streamv1.HealthStatus_HEALTH_STATUS_DEGRADED
		unhealthy = streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY
		stopping  = streamv1.HealthStatus_HEALTH_STATUS_STOPPING
	)
	for _, tc := range []struct{ a, b, want streamv1.HealthStatus }{
		{unknown, healthy, healthy}, {unknown, stopping, stopping}, {healthy, degraded, degraded},
		{unhealthy, degraded, unhealthy}, {degraded, stopping, degraded}, {unknown, unknown, unknown},
	} {
		if got := Worse(tc.a, tc.b); got != tc.want {
			t.Errorf("Worse(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestKindOf: what runs a component, as the server shows it; a component
// given by reference shows its reference, not the cache path it ran from.
func TestKindOf(t *testing.T) {
	cases := []struct {
		c    spec.Component
		want string
	}{
		{spec.Component{Runner: spec.RunBuiltin, Type: "file"}, "file"},
		{spec.Component{Runner: spec.RunProcess, Command: []string{"python3", "x.py"}}, "process: python3"},
		{spec.Component{Runner: spec.RunProcess, Type: "usd@v1", Ref: "usd@v1", Command: []string{"/cache/withobsrvr/usd/v1/component"}}, "component: usd@v1"},
		{spec.Component{Runner: spec.RunContainer, Image: "postgres:16"}, "container: postgres:16"},
	}
	for _, tc := range cases {
		if got := KindOf(&tc.c); got != tc.want {
			t.Errorf("KindOf(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}
