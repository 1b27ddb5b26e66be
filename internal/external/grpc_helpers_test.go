package external

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// grpcLogger logs to the test's log.
func grpcLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// newGRPCRuntime starts a real control plane on loopback, as flowctl run
// does, and returns the runtime protocols see.
func newGRPCRuntime(t testing.TB) *Runtime {
	t.Helper()
	cp := controlplane.NewServer(controlplane.NewRegistry(controlplane.Options{}), nil)
	addr, err := cp.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	return &Runtime{Pipeline: "test", Logger: grpcLogger(t), ControlPlane: cp, Endpoint: addr, HeartbeatInterval: time.Second}
}

// testCtx is bounded so that a hang fails the test instead of the run.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// instance describes a component incarnation starting now.
func instance(t testing.TB, id string, role flow.Role) *Instance {
	return &Instance{
		Component: &spec.Component{Name: id, Role: role},
		ID:        id,
		Started:   time.Now(),
		Logger:    grpcLogger(t).With("component", id),
	}
}

// serveSDK serves component with the Go SDK in this process, registered
// with rt's control plane as id, until the test ends (or stop is called;
// ending its context makes it drain).
func serveSDK(t testing.TB, rt *Runtime, id string, component any, opts ...sdk.Option) (stop func(), done <-chan error) {
	t.Helper()
	env := map[string]string{
		sdk.EnvEnable:            "true",
		sdk.EnvEndpoint:          rt.Endpoint,
		sdk.EnvComponentID:       id,
		sdk.EnvPort:              "127.0.0.1:0",
		sdk.EnvHeartbeatInterval: "1s", // short ones make a loaded machine look like a dead flowctl
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	finished := make(chan struct{})
	opts = append([]sdk.Option{sdk.WithEnv(func(k string) string { return env[k] }), sdk.WithSignals(), sdk.WithLogger(grpcLogger(t))}, opts...)
	go func() {
		ch <- sdk.Serve(ctx, component, opts...)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(15 * time.Second):
			t.Error("sdk.Serve did not return")
		}
	})
	return cancel, ch
}

// readyConns connects proto to the registered component.
func readyConns(t *testing.T, proto Protocol, rt *Runtime, inst *Instance) Conns {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := proto.Ready(ctx, rt, inst)
	if err != nil {
		t.Fatalf("Ready: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serveGRPC serves services registered by reg on a loopback port until
// the test ends and returns the address.
func serveGRPC(t *testing.T, reg func(*grpc.Server)) (addr string, gs *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs = grpc.NewServer()
	reg(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String(), gs
}

// registerNative registers a hand-written native component with rt's
// control plane, as the SDK would.
func registerNative(t *testing.T, rt *Runtime, id string, role flow.Role, endpoint string) {
	t.Helper()
	cc, err := DialEndpoint(rt.Endpoint, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = streamv1.NewControlPlaneServiceClient(cc).Register(testCtx(t), &streamv1.RegisterRequest{
		Registration: &streamv1.Registration{Id: id, Role: controlplane.RoleToStream(role), Endpoint: endpoint},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// registerV1 registers a flowctl.v1 component with rt's control plane
// through the earlier ControlPlaneService.
func registerV1(t *testing.T, rt *Runtime, id string, role flow.Role, endpoint string) {
	t.Helper()
	cc, err := DialEndpoint(rt.Endpoint, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = flowctlv1.NewControlPlaneServiceClient(cc).RegisterComponent(testCtx(t), &flowctlv1.RegisterRequest{
		ComponentId: id,
		Component:   &flowctlv1.ComponentInfo{Id: id, Name: id, Type: controlplane.RoleToV1(role), Endpoint: endpoint},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// jsonBatch makes n events with data {"n": i, ...extra(i)}.
func jsonBatch(prefix string, n int, extra func(i int) string) []*flow.Event {
	out := make([]*flow.Event, n)
	for i := range out {
		x := ""
		if extra != nil {
			x = extra(i)
		}
		out[i] = &flow.Event{ID: fmt.Sprintf("%s-%d", prefix, i), Type: "t", Source: "src", Data: []byte(fmt.Sprintf(`{"n":%d%s}`, i, x))}
	}
	return out
}
