package sdk_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// harness is a real control plane plus a component served by the SDK in
// this process, found through its registration like flowctl finds it.
type harness struct {
	t    *testing.T
	cp   *controlplane.Server
	conn *grpc.ClientConn // to the component
	id   string
	done chan error // Serve's result
	stop context.CancelFunc
}

// env builds the environment flowctl gives a component.
func env(cpAddr, id string, extra map[string]string) func(string) string {
	m := map[string]string{
		sdk.EnvEnable:            "true",
		sdk.EnvEndpoint:          cpAddr,
		sdk.EnvComponentID:       id,
		sdk.EnvPort:              "127.0.0.1:0",
		sdk.EnvHeartbeatInterval: "100ms",
	}
	for k, v := range extra {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// start serves component with the SDK and connects to it once it has
// registered.
func start(t *testing.T, component any, extraEnv map[string]string, opts ...sdk.Option) *harness {
	t.Helper()
	cp := controlplane.NewServer(controlplane.NewRegistry(controlplane.Options{}), nil)
	addr, err := cp.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	id := "c-" + t.Name()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, cp: cp, id: id, done: make(chan error, 1), stop: cancel}
	opts = append([]sdk.Option{sdk.WithEnv(env(addr, id, extraEnv)), sdk.WithSignals(), sdk.WithLogger(testLogger(t))}, opts...)
	go func() { h.done <- sdk.Serve(ctx, component, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})

	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	e, err := cp.Registry().WaitRegistered(wctx, id)
	if err != nil {
		t.Fatal(err)
	}
	h.conn, err = grpc.NewClient(e.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.conn.Close() })
	return h
}

// wait returns Serve's result.
func (h *harness) wait() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		h.t.Fatal("Serve did not return")
		return nil
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// jsonEvents makes n wire events with data {"n": i}.
func jsonEvents(prefix string, n int) []*streamv1.Event {
	out := make([]*streamv1.Event, n)
	for i := range out {
		out[i] = &streamv1.Event{Id: fmt.Sprintf("%s-%d", prefix, i), Type: "t", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	return out
}
