package external

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// lockedBuffer collects the children's output lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGuardedControlPlaneWithRealComponents runs real components against
// a control plane guarded as flowctl run's is: the Go SDK processor gets
// the run's token in FLOWCTL_TOKEN and starts; the same binary given
// another token is refused and says which variable to check; the
// flowctl.v1 module component, which cannot send a token, still starts,
// because the run is awaiting its id; and an outsider can neither
// register over the native service nor take over the v1 component's id
// once it is running.
func TestGuardedControlPlaneWithRealComponents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds examples/sdk-processor and test/v1component")
	}
	sdkBin := buildSDKProcessor(t, t.TempDir())
	v1Bin := buildV1Component(t)
	guard, err := controlplane.NewGuard()
	if err != nil {
		t.Fatal(err)
	}
	cp := controlplane.NewGuardedServer(controlplane.NewRegistry(controlplane.Options{}), nil, guard)
	addr, err := cp.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	out := &lockedBuffer{}
	rt := &Runtime{Pipeline: "guarded", Logger: grpcLogger(t), ControlPlane: cp, Endpoint: addr, HeartbeatInterval: time.Second, Output: out, Dir: t.TempDir()}
	ctx := testCtx(t)
	start := func(c *spec.Component, proto Protocol) (*Supervisor, error) {
		s := NewSupervisor(rt, c, proto)
		err := s.Start(ctx)
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.Stop(sctx)
		})
		return s, err
	}

	if _, err := start(&spec.Component{Name: "usd", Role: flow.RoleProcessor, Command: []string{sdkBin}}, grpcProtocol{}); err != nil {
		t.Fatalf("the SDK processor with the run's token: %v\n%s", err, out.String())
	}
	// The file's env cannot change FLOWCTL_TOKEN (flowctl's own variables
	// win), so the process itself swaps it, through env(1).
	envBin, lerr := exec.LookPath("env")
	if lerr != nil {
		t.Skip("no env(1) to start a component with another token")
	}
	_, err = start(&spec.Component{Name: "intruder", Role: flow.RoleProcessor, Command: []string{envBin, EnvToken + "=not-the-runs", sdkBin},
		StartupTimeout: 10 * time.Second, RestartPolicy: RestartNo}, grpcProtocol{})
	if err == nil {
		t.Fatal("a component with the wrong token became ready")
	}
	if !strings.Contains(err.Error()+out.String(), EnvToken) {
		t.Errorf("the refusal does not name %s:\n%v\n%s", EnvToken, err, out.String())
	}
	if _, ok := cp.Registry().Get("intruder"); ok {
		t.Error("the refused component is in the registry")
	}
	if _, err := start(&spec.Component{Name: "legacy", Role: flow.RoleProcessor, Command: []string{v1Bin}}, v1Protocol{}); err != nil {
		t.Fatalf("the flowctl.v1 component: %v\n%s", err, out.String())
	}

	// An outsider on the same machine.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = streamv1.NewControlPlaneServiceClient(conn).Register(ctx, &streamv1.RegisterRequest{Registration: &streamv1.Registration{
		Id: "usd", Role: streamv1.Role_ROLE_PROCESSOR, Endpoint: "127.0.0.1:1"}})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("outsider native register = %v, want Unauthenticated", err)
	}
	_, err = flowctlv1.NewControlPlaneServiceClient(conn).RegisterComponent(ctx, &flowctlv1.RegisterRequest{ComponentId: "legacy",
		Component: &flowctlv1.ComponentInfo{Id: "legacy", Endpoint: "127.0.0.1:1"}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("outsider v1 register of the running component's id = %v, want PermissionDenied", err)
	}
	for _, id := range []string{"usd", "legacy"} {
		if e, ok := cp.Registry().Get(id); !ok || e.Endpoint == "127.0.0.1:1" {
			t.Errorf("%s's registration = %+v, %v: the outsider changed it", id, e, ok)
		}
	}
}
