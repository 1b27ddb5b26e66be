package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/pkg/wire/flowctlpb"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

// Guard keeps the control plane a run embeds to the run's own components.
// The control plane listens on a loopback port, which every local user can
// reach; without a guard any of them could register an endpoint under a
// component's id and receive its events.
//
//   - flowctl.stream.v1 (our SDK): every call must carry the run's random
//     bearer token, given to the children as FLOWCTL_TOKEN (Token).
//   - flowctl.v1 and the older flowctl.ControlPlane (the earlier SDKs,
//     which cannot send a token): a component
//     may register only under an id the run is starting right now (Expect
//     opens that window from before the process starts until it is ready);
//     heartbeats, status and unregistering only under ids the run started.
//     Discovery and listing, which change nothing, are answered.
//
// The zero Guard is not usable; make one with NewGuard.
type Guard struct {
	token string

	mu       sync.Mutex
	expected map[string]int  // ids awaited now: open Expect windows
	started  map[string]bool // ids the run ever started
	refused  []Attempt       // the last registrations refused (RegisteredSince)
}

// NewGuard returns a guard with a fresh random token.
func NewGuard() (*Guard, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("make the control plane's token: %w", err)
	}
	return &Guard{token: hex.EncodeToString(b[:]), expected: map[string]int{}, started: map[string]bool{}}, nil
}

// Token is the bearer token the run's native components must send.
func (g *Guard) Token() string { return g.token }

// Expect admits a flowctl.v1 registration under id until release is
// called; call it before the component's process starts and release once
// it is ready (or failed to be). From then on id counts as the run's own
// for heartbeats. Windows for the same id may overlap.
func (g *Guard) Expect(id string) (release func()) {
	g.mu.Lock()
	g.expected[id]++
	g.started[id] = true
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			if g.expected[id]--; g.expected[id] <= 0 {
				delete(g.expected, id)
			}
			g.mu.Unlock()
		})
	}
}

// admitV1 checks one flowctl.v1 control-plane call.
func (g *Guard) admitV1(method string, req any) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch r := req.(type) {
	case *flowctlv1.RegisterRequest:
		id := r.GetComponentId()
		if id == "" {
			id = r.GetComponent().GetId()
		}
		if g.expected[id] == 0 {
			g.noteRefusedLocked(id, ProtocolV1)
			return status.Errorf(codes.PermissionDenied, "register %q: this run is not starting a component of that id", id)
		}
	case *flowctlv1.HeartbeatRequest:
		return g.startedLocked(method, r.GetServiceId())
	case *flowctlv1.UnregisterRequest:
		return g.startedLocked(method, r.GetServiceId())
	case *flowctlv1.ComponentStatusRequest:
		return g.startedLocked(method, r.GetServiceId())
	case *flowctlv1.DiscoveryRequest, *flowctlv1.ListComponentsRequest:
	default:
		return status.Errorf(codes.PermissionDenied, "%s is not open to components", method)
	}
	return nil
}

// admitLegacy checks one flowctl.ControlPlane call: as for flowctl.v1,
// registering only under an id being started, heartbeats and status only
// of ids the run started. Listing and reading runs change nothing; the
// calls that would change a run reach the service, which refuses them.
func (g *Guard) admitLegacy(method string, req any) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch r := req.(type) {
	case *flowctlpb.ServiceInfo:
		id := legacyID(r)
		if strings.HasSuffix(method, "/GetServiceStatus") {
			return g.startedLocked(method, id)
		}
		if g.expected[id] == 0 {
			g.noteRefusedLocked(id, ProtocolLegacy)
			return status.Errorf(codes.PermissionDenied, "register %q: this run is not starting a component of that id (flowctl gives it as FLOWCTL_COMPONENT_ID; register with component_id set to it)", id)
		}
	case *flowctlpb.ServiceHeartbeat:
		return g.startedLocked(method, r.GetServiceId())
	case *emptypb.Empty, *flowctlpb.GetPipelineRunRequest, *flowctlpb.ListPipelineRunsRequest,
		*flowctlpb.CreatePipelineRunRequest, *flowctlpb.UpdatePipelineRunRequest, *flowctlpb.StopPipelineRunRequest:
	default:
		return status.Errorf(codes.PermissionDenied, "%s is not open to components", method)
	}
	return nil
}

func (g *Guard) startedLocked(method, id string) error {
	if !g.started[id] {
		return status.Errorf(codes.PermissionDenied, "%s %q: not a component this run started", method, id)
	}
	return nil
}

// v1Prefix is the method prefix of the flowctl.v1 control-plane service.
var v1Prefix = "/" + flowctlv1.ControlPlaneService_ServiceDesc.ServiceName + "/"

// legacyPrefix is the method prefix of the older flowctl.ControlPlane.
var legacyPrefix = "/" + flowctlpb.ControlPlane_ServiceDesc.ServiceName + "/"

// ServerOptions returns the interceptors that enforce the guard: the
// token for every service but the control planes of flowctl.v1 and of the
// older flowctl package, whose calls are admitted by id.
func (g *Guard) ServerOptions() []grpc.ServerOption {
	tokUnary := tlsutil.TokenUnaryInterceptor(g.token)
	tokStream := tlsutil.TokenStreamInterceptor(g.token)
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, v1Prefix) {
			if err := g.admitV1(info.FullMethod, req); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}
		if strings.HasPrefix(info.FullMethod, legacyPrefix) {
			if err := g.admitLegacy(info.FullMethod, req); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}
		return tokUnary(ctx, req, info, handler)
	}
	// flowctl.v1's and flowctl's control planes have no streaming call: every stream
	// needs the token.
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(tokStream)}
}

// NewGuardedServer is NewServer for the control plane `flowctl run`
// embeds: g admits only the run's own components (see Guard).
func NewGuardedServer(reg *Registry, log *slog.Logger, g *Guard, opts ...grpc.ServerOption) *Server {
	s := NewServer(reg, log, append(g.ServerOptions(), opts...)...)
	s.guard = g
	return s
}

// Token is the bearer token components of this server must send, "" when
// it has no guard.
func (s *Server) Token() string {
	if s.guard == nil {
		return ""
	}
	return s.guard.Token()
}

// Expect opens the window in which a flowctl.v1 component may register
// under id (see Guard.Expect); without a guard it does nothing.
func (s *Server) Expect(id string) (release func()) {
	if s.guard == nil {
		return func() {}
	}
	return s.guard.Expect(id)
}
