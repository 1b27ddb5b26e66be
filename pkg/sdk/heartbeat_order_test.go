package sdk_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// orderCP is a control plane that records heartbeats in the order it
// finishes handling them, and holds the first HEALTHY one until told: a
// control plane slow to answer while the component starts draining.
type orderCP struct {
	streamv1.UnimplementedControlPlaneServiceServer
	held     chan struct{} // closed when the first HEALTHY heartbeat is held
	release  chan struct{} // closed by the test to let it finish
	stopping chan struct{} // closed when a STOPPING heartbeat arrives

	mu       sync.Mutex
	order    []streamv1.HealthStatus
	holdOnce sync.Once
	stopOnce sync.Once
}

func (c *orderCP) Register(context.Context, *streamv1.RegisterRequest) (*streamv1.RegisterResponse, error) {
	return &streamv1.RegisterResponse{}, nil
}

func (c *orderCP) Deregister(context.Context, *streamv1.DeregisterRequest) (*streamv1.DeregisterResponse, error) {
	return &streamv1.DeregisterResponse{}, nil
}

func (c *orderCP) Heartbeat(_ context.Context, req *streamv1.HeartbeatRequest) (*streamv1.HeartbeatResponse, error) {
	switch req.GetHealth() {
	case streamv1.HealthStatus_HEALTH_STATUS_HEALTHY:
		first := false
		c.holdOnce.Do(func() { first = true })
		if first {
			close(c.held)
			<-c.release
		}
	case streamv1.HealthStatus_HEALTH_STATUS_STOPPING:
		c.stopOnce.Do(func() { close(c.stopping) })
	}
	c.mu.Lock()
	c.order = append(c.order, req.GetHealth())
	c.mu.Unlock()
	return &streamv1.HeartbeatResponse{}, nil
}

// TestHeartbeatNeverHealthyAfterStopping: a HEALTHY heartbeat that is
// still being answered when the drain starts is answered before the
// drain's STOPPING one is sent, so the control plane never sees the
// component healthy again once it said it was stopping.
func TestHeartbeatNeverHealthyAfterStopping(t *testing.T) {
	cp := &orderCP{held: make(chan struct{}), release: make(chan struct{}), stopping: make(chan struct{})}
	gs := grpc.NewServer()
	streamv1.RegisterControlPlaneServiceServer(gs, cp)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	proc := sdk.ProcessorFunc(func(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) { return []*sdk.Event{e}, nil })
	// A heartbeat interval longer than the hold, so the held call does
	// not time out on the component's side.
	getenv := env(lis.Addr().String(), "c-order", map[string]string{sdk.EnvHeartbeatInterval: "2s"})
	go func() {
		done <- sdk.Serve(ctx, proc, sdk.WithEnv(getenv), sdk.WithSignals(), sdk.WithLogger(testLogger(t)))
	}()

	select {
	case <-cp.held:
	case <-time.After(15 * time.Second):
		t.Fatal("no HEALTHY heartbeat arrived")
	}
	cancel() // the drain starts while HEALTHY is being answered
	// Before the fix the drain's STOPPING arrived now, ahead of the held
	// HEALTHY; with it, STOPPING waits for HEALTHY's answer. Give it the
	// chance to arrive early (the bound only limits how long the test
	// looks for the old bug), then let HEALTHY finish.
	select {
	case <-cp.stopping:
	case <-time.After(500 * time.Millisecond):
	}
	close(cp.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}

	cp.mu.Lock()
	defer cp.mu.Unlock()
	stopped := false
	for _, h := range cp.order {
		switch h {
		case streamv1.HealthStatus_HEALTH_STATUS_STOPPING:
			stopped = true
		case streamv1.HealthStatus_HEALTH_STATUS_HEALTHY:
			if stopped {
				t.Fatalf("heartbeats %v: HEALTHY after STOPPING", cp.order)
			}
		}
	}
	if !stopped {
		t.Fatalf("heartbeats %v: no STOPPING", cp.order)
	}
}
