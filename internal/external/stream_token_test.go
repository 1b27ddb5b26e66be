package external

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// TestGRPCStreamTokenKeepsOthersOut starts the Go SDK's example processor
// as flowctl does (the supervisor, the process driver, BuildEnv) and
// checks that flowctl's own connection is served while another client of
// the component's port, without the start's FLOWCTL_STREAM_TOKEN, is
// refused: it could otherwise feed the processor or, for a source, read
// its events.
func TestGRPCStreamTokenKeepsOthersOut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds examples/sdk-processor")
	}
	bin := buildSDKProcessor(t, t.TempDir())
	rt := newGRPCRuntime(t)
	c := &spec.Component{
		Name: "usd", Role: flow.RoleProcessor, Runner: spec.RunProcess,
		Command: []string{bin}, Protocol: "grpc", Config: flow.Config{},
		StartupTimeout: 20 * time.Second, StopGrace: 5 * time.Second, RestartPolicy: RestartOnFailure,
	}
	p := openProcessor(t, rt, c)
	in := jsonBatch("k", 10, func(i int) string { return fmt.Sprintf(`,"amount":%d,"kind":"fee"`, i*100) })
	outs, fails, err := p.ProcessBatch(testCtx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if fails[i] != nil || len(outs[i]) != 1 {
			t.Fatalf("event %d through flowctl's connection: outputs %v, failure %v", i, outs[i], fails[i])
		}
	}

	e, ok := rt.ControlPlane.Registry().Get("usd")
	if !ok {
		t.Fatal("usd is not registered")
	}
	cc, err := DialEndpoint(e.Endpoint, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := streamv1.NewProcessorServiceClient(cc)
	if _, err := cl.GetInfo(ctx, &streamv1.InfoRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetInfo without the token: %v, want Unauthenticated", err)
	}
	s, err := cl.Process(ctx)
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Process without the token: %v, want Unauthenticated", err)
	}
}
