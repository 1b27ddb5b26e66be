package controlplane

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// TestGuardAdmitsOnlyTheRunsComponents: on a guarded control plane a
// native call needs the run's token (even a read), and a flowctl.v1
// component registers only under an id the run is starting at that
// moment, then heartbeats under ids the run started.
func TestGuardAdmitsOnlyTheRunsComponents(t *testing.T) {
	g, err := NewGuard()
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Token()) < 32 {
		t.Fatalf("token %q is too short to be unguessable", g.Token())
	}
	if other, _ := NewGuard(); other.Token() == g.Token() {
		t.Fatal("two guards got the same token")
	}
	s := NewGuardedServer(NewRegistry(Options{}), nil, g)
	if s.Token() != g.Token() {
		t.Fatal("the server does not hand out its guard's token")
	}
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	dial := func(token string) *grpc.ClientConn {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(tlsutil.TokenCredentials(token, true)))
		}
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	ctx := testContext(t)
	reg := &streamv1.RegisterRequest{Registration: &streamv1.Registration{Id: "enrich", Role: streamv1.Role_ROLE_PROCESSOR, Endpoint: "127.0.0.1:4000"}}

	// Native: no token, a wrong one, then the run's.
	for name, conn := range map[string]*grpc.ClientConn{"no token": dial(""), "wrong token": dial("guess")} {
		c := streamv1.NewControlPlaneServiceClient(conn)
		if _, err := c.Register(ctx, reg); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: Register = %v, want Unauthenticated", name, err)
		}
		if _, err := c.List(ctx, &streamv1.ListRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: List = %v, want Unauthenticated", name, err)
		}
		w, err := c.Watch(ctx, &streamv1.WatchRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: Watch = %v, want Unauthenticated", name, err)
		}
	}
	if _, ok := s.Registry().Get("enrich"); ok {
		t.Fatal("a registration without the token reached the registry")
	}
	own := streamv1.NewControlPlaneServiceClient(dial(g.Token()))
	if _, err := own.Register(ctx, reg); err != nil {
		t.Fatalf("Register with the run's token: %v", err)
	}
	if _, err := own.Heartbeat(ctx, &streamv1.HeartbeatRequest{Id: "enrich"}); err != nil {
		t.Fatalf("Heartbeat with the run's token: %v", err)
	}

	// flowctl.v1 cannot send a token: admitted by id, while awaited.
	v1 := flowctlv1.NewControlPlaneServiceClient(dial(""))
	v1reg := func(id string) error {
		_, err := v1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{ComponentId: id, Component: &flowctlv1.ComponentInfo{
			Id: id, Type: flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR, Endpoint: "127.0.0.1:4001",
		}})
		return err
	}
	if err := v1reg("legacy"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("v1 register of an id nobody awaits = %v, want PermissionDenied", err)
	}
	if _, err := v1.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "legacy"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("v1 heartbeat of an id the run never started = %v, want PermissionDenied", err)
	}
	release := s.Expect("legacy")
	if err := v1reg("legacy"); err != nil {
		t.Fatalf("v1 register while awaited: %v", err)
	}
	if err := v1reg("other"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("v1 register of another id while legacy is awaited = %v, want PermissionDenied", err)
	}
	release()
	release() // idempotent
	if err := v1reg("legacy"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("v1 register after the wait ended = %v, want PermissionDenied", err)
	}
	if _, err := v1.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "legacy", Status: flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY}); err != nil {
		t.Fatalf("v1 heartbeat of a component the run started: %v", err)
	}
	if _, err := v1.DiscoverComponents(ctx, &flowctlv1.DiscoveryRequest{}); err != nil {
		t.Fatalf("v1 discovery: %v", err)
	}
	if _, err := v1.UnregisterComponent(ctx, &flowctlv1.UnregisterRequest{ServiceId: "enrich-not-ours"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("v1 unregister of an id the run never started = %v, want PermissionDenied", err)
	}
	if _, ok := s.Registry().Get("other"); ok {
		t.Fatal("a refused v1 registration reached the registry")
	}
}

// TestUnguardedServerHasNoToken: NewServer (flowctl server's registry and
// tests) neither hands out a token nor gates by id.
func TestUnguardedServerHasNoToken(t *testing.T) {
	s, conn := startServer(t, Options{})
	if s.Token() != "" {
		t.Fatalf("token %q", s.Token())
	}
	s.Expect("x")() // a no-op
	ctx := context.Background()
	if _, err := flowctlv1.NewControlPlaneServiceClient(conn).RegisterComponent(ctx, &flowctlv1.RegisterRequest{ComponentId: "x", Component: &flowctlv1.ComponentInfo{Id: "x", Endpoint: "127.0.0.1:4002"}}); err != nil {
		t.Fatal(err)
	}
}
