package controlplane

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/pkg/wire/flowctlpb"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

// TestLegacyRegisterHeartbeatStatus: a component registers through the
// older flowctl.ControlPlane under its component_id, heartbeats, shows in
// ListServices next to a flowctl.v1 registration (one registry), and is
// unhealthy once its TTL passes without a heartbeat.
func TestLegacyRegisterHeartbeatStatus(t *testing.T) {
	clock := newFakeClock()
	s, conn := startServer(t, Options{Clock: clock, HeartbeatInterval: time.Second})
	ctx := testContext(t)
	c := flowctlpb.NewControlPlaneClient(conn)

	ack, err := c.Register(ctx, &flowctlpb.ServiceInfo{
		ServiceId: "stellar-live-source", ComponentId: "ledger", ServiceType: flowctlpb.ServiceType_SERVICE_TYPE_SOURCE,
		OutputEventTypes: []string{"raw_ledger"}, HealthEndpoint: "http://127.0.0.1:8088/health",
	})
	if err != nil {
		t.Fatal(err)
	}
	if ack.GetServiceId() != "ledger" {
		t.Fatalf("service_id = %q, want the component_id ledger", ack.GetServiceId())
	}
	if got := ack.GetConnectionInfo()["heartbeat_interval"]; got != "1s" {
		t.Errorf("connection_info heartbeat_interval = %q, want 1s", got)
	}
	e, ok := s.Registry().Get("ledger")
	if !ok || e.Protocol != ProtocolLegacy || e.Metadata[MetaHealthEndpoint] != "http://127.0.0.1:8088/health" || e.Endpoint != "" {
		t.Fatalf("registry entry = %+v, %v", e, ok)
	}
	// Without a component_id the service_id is the id.
	if ack, err := c.Register(ctx, &flowctlpb.ServiceInfo{ServiceId: "ttp", ServiceType: flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR}); err != nil || ack.GetServiceId() != "ttp" {
		t.Fatalf("register by service_id = %v, %v", ack, err)
	}
	if _, err := c.Register(ctx, &flowctlpb.ServiceInfo{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("register without ids = %v, want InvalidArgument", err)
	}
	if _, err := flowctlv1.NewControlPlaneServiceClient(conn).RegisterComponent(ctx, &flowctlv1.RegisterRequest{
		Component: &flowctlv1.ComponentInfo{Id: "sink", Type: flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER, Endpoint: "127.0.0.1:4000"},
	}); err != nil {
		t.Fatal(err)
	}

	clock.Advance(2 * time.Second)
	if _, err := c.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: "ledger", Timestamp: timestamppb.Now(), Metrics: map[string]float64{"ledgers": 42.5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: "nobody"}); status.Code(err) != codes.NotFound {
		t.Fatalf("heartbeat of an unknown id = %v, want NotFound", err)
	}
	clock.Advance(2 * time.Second) // ledger beat 2s ago; ttp and sink 4s ago (TTL 3s)

	st, err := c.GetServiceStatus(ctx, &flowctlpb.ServiceInfo{ComponentId: "ledger"})
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetIsHealthy() || st.GetServiceType() != flowctlpb.ServiceType_SERVICE_TYPE_SOURCE || st.GetMetrics()["ledgers"] != 42.5 || st.GetComponentId() != "ledger" {
		t.Fatalf("status = %v", st)
	}
	if _, err := c.GetServiceStatus(ctx, &flowctlpb.ServiceInfo{ServiceId: "nobody"}); status.Code(err) != codes.NotFound {
		t.Fatalf("status of an unknown id = %v, want NotFound", err)
	}
	list, err := c.ListServices(ctx, &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range list.GetServices() {
		got[s.GetServiceId()] = s.GetIsHealthy()
	}
	want := map[string]bool{"ledger": true, "ttp": false, "sink": false}
	if len(got) != len(want) {
		t.Fatalf("ListServices = %v, want %v", got, want)
	}
	for id, h := range want {
		if g, ok := got[id]; !ok || g != h {
			t.Errorf("ListServices %s healthy = %v (listed %v), want %v", id, g, ok, h)
		}
	}
}

// TestLegacyRuns: the run calls answer from the run history given with
// SetRuns (Unavailable before); creating, updating and stopping a run are
// refused with FailedPrecondition.
func TestLegacyRuns(t *testing.T) {
	s, conn := startServer(t, Options{})
	ctx := testContext(t)
	c := flowctlpb.NewControlPlaneClient(conn)

	if _, err := c.ListPipelineRuns(ctx, &flowctlpb.ListPipelineRunsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("ListPipelineRuns before SetRuns = %v, want Unavailable", err)
	}
	start := time.Now().Add(-10 * time.Second)
	s.SetRuns(OneRun(func() Run {
		return Run{ID: "payments/local", Pipeline: "payments", Status: RunRunning, Start: start,
			Components: []string{"ledger", "ttp"}, EventsProcessed: 100,
			Out: map[string]int64{"ledger": 100}}
	}))

	refused := map[string]func() error{
		"create": func() error {
			_, err := c.CreatePipelineRun(ctx, &flowctlpb.CreatePipelineRunRequest{RunId: "x", PipelineName: "payments"})
			return err
		},
		"update": func() error {
			_, err := c.UpdatePipelineRun(ctx, &flowctlpb.UpdatePipelineRunRequest{RunId: "payments/local", Status: flowctlpb.RunStatus_RUN_STATUS_COMPLETED})
			return err
		},
		"stop": func() error {
			_, err := c.StopPipelineRun(ctx, &flowctlpb.StopPipelineRunRequest{RunId: "payments/local"})
			return err
		},
	}
	for name, call := range refused {
		if err := call(); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%s = %v, want FailedPrecondition", name, err)
		}
	}

	tests := []struct {
		name string
		req  *flowctlpb.ListPipelineRunsRequest
		want int
	}{
		{"all", &flowctlpb.ListPipelineRunsRequest{}, 1},
		{"by pipeline", &flowctlpb.ListPipelineRunsRequest{PipelineName: "payments"}, 1},
		{"other pipeline", &flowctlpb.ListPipelineRunsRequest{PipelineName: "other"}, 0},
		{"running", &flowctlpb.ListPipelineRunsRequest{Status: flowctlpb.RunStatus_RUN_STATUS_RUNNING}, 1},
		{"completed", &flowctlpb.ListPipelineRunsRequest{Status: flowctlpb.RunStatus_RUN_STATUS_COMPLETED}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.ListPipelineRuns(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetRuns()) != tt.want {
				t.Fatalf("runs = %v, want %d", resp.GetRuns(), tt.want)
			}
		})
	}

	run, err := c.GetPipelineRun(ctx, &flowctlpb.GetPipelineRunRequest{RunId: "payments/local"})
	if err != nil {
		t.Fatal(err)
	}
	if run.GetStatus() != flowctlpb.RunStatus_RUN_STATUS_RUNNING || run.GetPipelineName() != "payments" ||
		run.GetMetrics().GetEventsProcessed() != 100 || run.GetMetrics().GetComponentMetrics()["ledger"].GetEventsOut() != 100 ||
		len(run.GetComponentIds()) != 2 || run.GetStartTime() == nil || run.GetEndTime() != nil {
		t.Fatalf("run = %v", run)
	}
	if _, err := c.GetPipelineRun(ctx, &flowctlpb.GetPipelineRunRequest{RunId: "payments/7"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown run = %v, want NotFound", err)
	}
}

// TestGuardLegacy: on a guarded control plane a flowctl.ControlPlane
// component registers only under an id the run is starting, heartbeats
// only under ids it started; listing needs no token.
func TestGuardLegacy(t *testing.T) {
	g, err := NewGuard()
	if err != nil {
		t.Fatal(err)
	}
	s := NewGuardedServer(NewRegistry(Options{}), nil, g)
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
	ctx := testContext(t)
	c := flowctlpb.NewControlPlaneClient(conn)
	info := &flowctlpb.ServiceInfo{ServiceId: "stellar", ComponentId: "ledger", ServiceType: flowctlpb.ServiceType_SERVICE_TYPE_SOURCE}

	if _, err := c.Register(ctx, info); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("register before Expect = %v, want PermissionDenied", err)
	}
	if _, err := c.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: "ledger"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("heartbeat of an id never started = %v, want PermissionDenied", err)
	}
	release := s.Expect("ledger")
	if _, err := c.Register(ctx, info); err != nil {
		t.Fatalf("register while expected: %v", err)
	}
	release()
	if _, err := c.Register(ctx, info); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("register after the window = %v, want PermissionDenied", err)
	}
	if _, err := c.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: "ledger"}); err != nil {
		t.Fatalf("heartbeat of a started id: %v", err)
	}
	if _, err := c.GetServiceStatus(ctx, &flowctlpb.ServiceInfo{ComponentId: "ledger"}); err != nil {
		t.Fatalf("status of a started id: %v", err)
	}
	if _, err := c.GetServiceStatus(ctx, &flowctlpb.ServiceInfo{ComponentId: "other"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("status of another id = %v, want PermissionDenied", err)
	}
	list, err := c.ListServices(ctx, &emptypb.Empty{})
	if err != nil || len(list.GetServices()) != 1 {
		t.Fatalf("ListServices = %v, %v", list, err)
	}
	if _, err := c.CreatePipelineRun(ctx, &flowctlpb.CreatePipelineRunRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("CreatePipelineRun = %v, want FailedPrecondition from the service", err)
	}
}
