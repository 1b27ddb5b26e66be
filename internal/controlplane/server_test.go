package controlplane

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// startServer serves a registry on a real loopback port and returns a
// client connection to it.
func startServer(t *testing.T, opts Options) (*Server, *grpc.ClientConn) {
	t.Helper()
	s := NewServer(NewRegistry(opts), nil)
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return s, conn
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestTTLExpiryUnhealthyOverGRPC: a component that stops heartbeating is
// UNHEALTHY through both services once its TTL passes, and healthy again
// after a heartbeat.
func TestTTLExpiryUnhealthyOverGRPC(t *testing.T) {
	clock := newFakeClock()
	s, conn := startServer(t, Options{Clock: clock, HeartbeatInterval: time.Second})
	ctx := testContext(t)
	native := streamv1.NewControlPlaneServiceClient(conn)
	v1 := flowctlv1.NewControlPlaneServiceClient(conn)

	resp, err := native.Register(ctx, &streamv1.RegisterRequest{Registration: &streamv1.Registration{
		Id: "enrich", Role: streamv1.Role_ROLE_PROCESSOR, Endpoint: "127.0.0.1:4000", Ttl: durationpb.New(5 * time.Second),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetHeartbeatInterval().AsDuration(); got != time.Second {
		t.Fatalf("heartbeat interval = %v, want 1s", got)
	}

	health := func() (streamv1.HealthStatus, flowctlv1.HealthStatus) {
		t.Helper()
		l, err := native.List(ctx, &streamv1.ListRequest{})
		if err != nil || len(l.GetComponents()) != 1 {
			t.Fatalf("list: %v %v", l, err)
		}
		st, err := v1.GetComponentStatus(ctx, &flowctlv1.ComponentStatusRequest{ServiceId: "enrich"})
		if err != nil {
			t.Fatal(err)
		}
		return l.GetComponents()[0].GetHealth(), st.GetStatus()
	}
	steps := []struct {
		name      string
		advance   time.Duration
		heartbeat bool
		want      streamv1.HealthStatus
	}{
		{"fresh", 0, false, streamv1.HealthStatus_HEALTH_STATUS_HEALTHY},
		{"at TTL", 5 * time.Second, false, streamv1.HealthStatus_HEALTH_STATUS_HEALTHY},
		{"past TTL", time.Second, false, streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY},
		{"heartbeat", 0, true, streamv1.HealthStatus_HEALTH_STATUS_HEALTHY},
	}
	for _, st := range steps {
		clock.Advance(st.advance)
		if st.heartbeat {
			if _, err := native.Heartbeat(ctx, &streamv1.HeartbeatRequest{Id: "enrich"}); err != nil {
				t.Fatal(err)
			}
		}
		n, o := health()
		if n != st.want || int32(o) != int32(st.want) {
			t.Fatalf("%s: native %v, flowctl.v1 %v, want %v", st.name, n, o, st.want)
		}
	}
	// Healthy-only discovery leaves an expired component out.
	clock.Advance(6 * time.Second)
	d, err := v1.DiscoverComponents(ctx, &flowctlv1.DiscoveryRequest{})
	if err != nil || len(d.GetComponents()) != 0 {
		t.Fatalf("discover after expiry: %v %v, want none", d, err)
	}
	if e, _ := s.Registry().Get("enrich"); e.Health != HealthUnhealthy {
		t.Fatalf("registry health = %v", e.Health)
	}
	_, err = native.Heartbeat(ctx, &streamv1.HeartbeatRequest{Id: "ghost"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("heartbeat of unknown id: %v, want NotFound", err)
	}
}

// TestV1ClientRegistersAndIsDiscovered: a component speaking the earlier
// flowctl.v1 contract registers, is found by flowctl (WaitRegistered,
// Endpoint, native Discover) and through its own service, heartbeats and
// unregisters.
func TestV1ClientRegistersAndIsDiscovered(t *testing.T) {
	s, conn := startServer(t, Options{})
	ctx := testContext(t)
	v1 := flowctlv1.NewControlPlaneServiceClient(conn)
	native := streamv1.NewControlPlaneServiceClient(conn)

	waited := make(chan Entry, 1)
	go func() {
		e, err := s.Registry().WaitRegistered(ctx, "ttp-processor")
		if err != nil {
			t.Error(err)
		}
		waited <- e
	}()

	resp, err := v1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{
		ComponentId: "ttp-processor",
		Component: &flowctlv1.ComponentInfo{
			Id: "ignored-when-component-id-set", Name: "TTP", Version: "1.2.0", Type: flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR,
			InputEventTypes: []string{"stellar.ledger"}, OutputEventTypes: []string{"token.transfer"},
			Endpoint: "127.0.0.1:50051", Metadata: map[string]string{"network": "testnet"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetServiceId() != "ttp-processor" {
		t.Fatalf("service_id = %q, want the component id", resp.GetServiceId())
	}
	e := <-waited
	if e.Endpoint != "127.0.0.1:50051" || e.Protocol != ProtocolV1 || e.Role != "processor" {
		t.Fatalf("waited entry = %+v", e)
	}
	if ep, ok := s.Registry().Endpoint("ttp-processor"); !ok || ep != "127.0.0.1:50051" {
		t.Fatalf("endpoint lookup = %q %v", ep, ok)
	}

	cases := []struct {
		name string
		req  *flowctlv1.DiscoveryRequest
		want int
	}{
		{"everything", &flowctlv1.DiscoveryRequest{}, 1},
		{"by type", &flowctlv1.DiscoveryRequest{Type: flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR}, 1},
		{"other type", &flowctlv1.DiscoveryRequest{Type: flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER}, 0},
		{"by output event type", &flowctlv1.DiscoveryRequest{EventTypes: []string{"token.transfer"}}, 1},
		{"by metadata", &flowctlv1.DiscoveryRequest{MetadataFilters: map[string]string{"network": "testnet"}}, 1},
		{"metadata mismatch", &flowctlv1.DiscoveryRequest{MetadataFilters: map[string]string{"network": "pubnet"}}, 0},
	}
	for _, c := range cases {
		d, err := v1.DiscoverComponents(ctx, c.req)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.GetComponents()) != c.want {
			t.Fatalf("%s: %d components, want %d", c.name, len(d.GetComponents()), c.want)
		}
		if c.want == 1 && d.GetComponents()[0].GetEndpoint() != "127.0.0.1:50051" {
			t.Fatalf("%s: endpoint %q", c.name, d.GetComponents()[0].GetEndpoint())
		}
	}
	nd, err := native.Discover(ctx, &streamv1.DiscoverRequest{Role: streamv1.Role_ROLE_PROCESSOR, EventTypes: []string{"stellar.ledger"}})
	if err != nil || len(nd.GetComponents()) != 1 || nd.GetComponents()[0].GetProtocol() != ProtocolV1 {
		t.Fatalf("native discover: %v %v", nd, err)
	}

	if _, err := v1.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "ttp-processor",
		Status: flowctlv1.HealthStatus_HEALTH_STATUS_DEGRADED, Metrics: map[string]string{"processed": "42"}}); err != nil {
		t.Fatal(err)
	}
	l, err := v1.ListComponents(ctx, &flowctlv1.ListComponentsRequest{TypeFilter: flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR})
	if err != nil || len(l.GetComponents()) != 1 {
		t.Fatalf("list: %v %v", l, err)
	}
	got := l.GetComponents()[0]
	if got.GetStatus() != flowctlv1.HealthStatus_HEALTH_STATUS_DEGRADED || got.GetMetrics()["processed"] != "42" ||
		got.GetRegisteredAt() == nil || got.GetLastHeartbeat() == nil || got.GetComponent().GetVersion() != "1.2.0" {
		t.Fatalf("listed status = %v", got)
	}

	if _, err := v1.UnregisterComponent(ctx, &flowctlv1.UnregisterRequest{ServiceId: "ttp-processor"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.GetComponentStatus(ctx, &flowctlv1.ComponentStatusRequest{ServiceId: "ttp-processor"}); status.Code(err) != codes.NotFound {
		t.Fatalf("status after unregister: %v, want NotFound", err)
	}
	if _, err := v1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "x"}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("register without endpoint: %v, want InvalidArgument", err)
	}
}

// TestWatchSeesChanges: a native Watch stream sees existing entries, new
// registrations, re-registrations, TTL expiry (announced by the server's own
// sweeper), reported health and deregistration, in order.
func TestWatchSeesChanges(t *testing.T) {
	clock := newFakeClock()
	s, conn := startServer(t, Options{Clock: clock, HeartbeatInterval: time.Second})
	ctx := testContext(t)
	native := streamv1.NewControlPlaneServiceClient(conn)
	v1 := flowctlv1.NewControlPlaneServiceClient(conn)
	reg := func(id, ep string) {
		t.Helper()
		_, err := native.Register(ctx, &streamv1.RegisterRequest{Registration: &streamv1.Registration{Id: id, Endpoint: ep, Role: streamv1.Role_ROLE_SINK}})
		if err != nil {
			t.Fatal(err)
		}
	}
	reg("before", "127.0.0.1:1")

	w, err := native.Watch(ctx, &streamv1.WatchRequest{Initial: true})
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		kind   streamv1.ChangeKind
		id     string
		health streamv1.HealthStatus
	}
	next := func() ev {
		t.Helper()
		c, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return ev{c.GetKind(), c.GetComponent().GetRegistration().GetId(), c.GetComponent().GetHealth()}
	}
	const (
		healthy   = streamv1.HealthStatus_HEALTH_STATUS_HEALTHY
		unhealthy = streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY
		stopping  = streamv1.HealthStatus_HEALTH_STATUS_STOPPING
	)
	if got := next(); got != (ev{streamv1.ChangeKind_CHANGE_KIND_ADDED, "before", healthy}) {
		t.Fatalf("initial: %+v", got)
	}
	// Wait until the watch is registered server-side before changing
	// anything: the initial change proves it is.
	reg("sink", "127.0.0.1:2")
	reg("sink", "127.0.0.1:3")
	clock.Advance(4 * time.Second) // past both TTLs (3s); the sweeper announces it
	want := []ev{
		{streamv1.ChangeKind_CHANGE_KIND_ADDED, "sink", healthy},
		{streamv1.ChangeKind_CHANGE_KIND_UPDATED, "sink", healthy},
	}
	for _, wnt := range want {
		if got := next(); got != wnt {
			t.Fatalf("got %+v, want %+v", got, wnt)
		}
	}
	expired := map[string]bool{}
	for len(expired) < 2 {
		got := next()
		if got.kind != streamv1.ChangeKind_CHANGE_KIND_HEALTH || got.health != unhealthy {
			t.Fatalf("got %+v, want a TTL expiry", got)
		}
		expired[got.id] = true
	}
	if _, err := v1.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "sink", Status: flowctlv1.HealthStatus_HEALTH_STATUS_STOPPING}); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != (ev{streamv1.ChangeKind_CHANGE_KIND_HEALTH, "sink", stopping}) {
		t.Fatalf("got %+v, want reported stopping", got)
	}
	if _, err := native.Deregister(ctx, &streamv1.DeregisterRequest{Id: "sink"}); err != nil {
		t.Fatal(err)
	}
	if got := next(); got.kind != streamv1.ChangeKind_CHANGE_KIND_REMOVED || got.id != "sink" {
		t.Fatalf("got %+v, want removed", got)
	}
	// Stopping the server ends the watch instead of hanging the stop.
	s.Stop()
	if _, err := w.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch after stop: %v, want Unavailable", err)
	}
}
