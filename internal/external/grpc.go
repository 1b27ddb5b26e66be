package external

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/drivers/process"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/backoff"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
	"github.com/flowctl/flowctl/pkg/wire/wiretls"
)

// Protocol names, as written in `protocol:`.
const (
	ProtocolGRPC = "grpc"
	ProtocolV1   = "flowctl-v1"
	ProtocolAuto = "auto"
)

// MaxMessageSize bounds one gRPC message flowctl sends or receives (a
// batch, an answer): 64 MiB, room for 256 large events.
const MaxMessageSize = 64 << 20

// streamWindow is the HTTP/2 flow-control window flowctl's side of a
// component connection advertises, per stream and per connection: large
// enough that a few batches in flight never wait for a window update.
const streamWindow = 4 << 20

func init() {
	RegisterProtocol(grpcProtocol{})
	RegisterProtocol(v1Protocol{})
	RegisterProtocol(autoProtocol{})
}

// grpcProtocol is flowctl's native protocol (flowctl.stream.v1): the
// component registers through the native ControlPlaneService and serves
// the stream service of its role.
type grpcProtocol struct{}

func (grpcProtocol) Name() string { return ProtocolGRPC }

// Launch gives the child PORT=127.0.0.1:0: the Go SDK binds a free port
// and registers the address it bound, so there is no port race.
func (grpcProtocol) Launch(_ *Runtime, c *spec.Component) (Launch, error) {
	return portLaunch(c, false)
}

func (grpcProtocol) Ready(ctx context.Context, rt *Runtime, inst *Instance) (Conns, error) {
	if c := inst.Component; c.Runner == spec.RunRemote && strings.HasPrefix(c.URL, GRPCScheme) {
		return connectRemoteGRPC(ctx, rt, inst) // flowctl started nothing
	}
	e, err := waitRegistration(ctx, rt, inst)
	if err != nil {
		return Conns{}, err
	}
	if e.Protocol == controlplane.ProtocolV1 {
		return Conns{}, fmt.Errorf("component %q registered through the earlier flowctl.v1 control plane, not flowctl's native one: set `protocol: flowctl-v1` (or `auto`)", inst.ID)
	}
	return connectGRPC(ctx, rt, inst, e.Endpoint)
}

// GRPCScheme prefixes the url of a native component that flowctl does not
// start and that registers nowhere: `grpc://HOST:PORT`. Pipeline files
// cannot write it (a url there is http); flowctl node sets it for its own
// component when --peer names it (an image run as a container of its
// own, served on PORT without the control plane).
const GRPCScheme = "grpc://"

// connectRemoteGRPC connects to a native component at its grpc:// url,
// trying again with backoff while it does not answer yet (its container
// may still be starting) until ctx (startup_timeout) ends.
func connectRemoteGRPC(ctx context.Context, rt *Runtime, inst *Instance) (Conns, error) {
	c := inst.Component
	endpoint, ok := strings.CutPrefix(c.URL, GRPCScheme)
	if !ok || endpoint == "" {
		return Conns{}, fmt.Errorf("component %q: protocol grpc needs a command to start or a url %sHOST:PORT", c.Name, GRPCScheme)
	}
	b := backoff.New(backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second, Jitter: backoff.DefaultJitter})
	for {
		conns, err := connectGRPC(ctx, rt, inst, endpoint)
		if err == nil {
			return conns, nil
		}
		t := time.NewTimer(b.Next())
		select {
		case <-ctx.Done():
			t.Stop()
			return Conns{}, fmt.Errorf("component %q at %s does not answer: %w (last error: %v)", c.Name, endpoint, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// autoProtocol picks the native protocol or flowctl.v1 by the control
// plane the component registered through.
type autoProtocol struct{}

func (autoProtocol) Name() string { return ProtocolAuto }

// Launch gives the child a free port, as an earlier flowctl.v1 component
// registers whatever PORT says (it may not understand port 0).
func (autoProtocol) Launch(_ *Runtime, c *spec.Component) (Launch, error) {
	return portLaunch(c, true)
}

func (autoProtocol) Ready(ctx context.Context, rt *Runtime, inst *Instance) (Conns, error) {
	e, err := waitRegistration(ctx, rt, inst)
	if err != nil {
		return Conns{}, err
	}
	if e.Protocol == controlplane.ProtocolV1 {
		inst.Logger.Debug("component registered through flowctl.v1; driving its flowctl.v1 services (at-most-once)")
		return connectV1(ctx, rt, inst, e.Endpoint)
	}
	return connectGRPC(ctx, rt, inst, e.Endpoint)
}

// portLaunch sets PORT unless the component's env sets it: host:0 for the
// SDK, or a port free right now for components that register PORT as is.
func portLaunch(c *spec.Component, fixed bool) (Launch, error) {
	if _, ok := c.Env["PORT"]; ok {
		return Launch{}, nil
	}
	addr := "127.0.0.1:0"
	if fixed {
		port, err := process.FreePort("127.0.0.1")
		if err != nil {
			return Launch{}, err
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	return Launch{Env: map[string]string{"PORT": addr}}, nil
}

// waitRegistration waits until this incarnation of the component has
// registered (waitRegistered) and checks it serves a stream service:
// it registered an endpoint, and not through flowctl.ControlPlane, whose
// components move their data themselves.
func waitRegistration(ctx context.Context, rt *Runtime, inst *Instance) (controlplane.Entry, error) {
	e, err := waitRegistered(ctx, rt, inst)
	if err != nil {
		return e, err
	}
	if e.Protocol == controlplane.ProtocolLegacy {
		return e, fmt.Errorf("component %q registered through the older flowctl.ControlPlane, whose components move their data themselves: set `protocol: none` (flowctl then starts and watches it but streams no events to it)", inst.ID)
	}
	if e.Endpoint == "" {
		return e, fmt.Errorf("component %q registered without an endpoint: it must register the host:port it serves on", inst.ID)
	}
	return e, nil
}

// waitRegistered waits until this incarnation of the component has
// registered (a registration made since inst.Started), gives up when the
// process exits or ctx (startup_timeout) ends, and checks the role.
func waitRegistered(ctx context.Context, rt *Runtime, inst *Instance) (controlplane.Entry, error) {
	if rt.ControlPlane == nil {
		return controlplane.Entry{}, fmt.Errorf("component %q: no control plane runs for it to register with", inst.ID)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if inst.Exited != nil {
		go func() {
			select {
			case <-inst.Exited:
				cancel()
			case <-wctx.Done():
			}
		}()
	}
	e, err := rt.ControlPlane.Registry().WaitRegisteredSince(wctx, inst.ID, inst.Started)
	if err != nil {
		switch {
		case inst.Exited != nil && closed(inst.Exited):
			return e, fmt.Errorf("component %q exited before it registered with the control plane", inst.ID)
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return e, notRegisteredError(rt, inst, ctx.Err())
		default:
			return e, err
		}
	}
	if want := inst.Component.Role; e.Role != "" && want != "" && e.Role != want {
		return e, fmt.Errorf("component %q registered as a %s, but the pipeline uses it as a %s", inst.ID, e.Role, want)
	}
	return e, nil
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// DialEndpoint returns a client connection to a component's endpoint,
// with flowctl's message limit (MaxMessageSize) and flow-control window.
// An endpoint without a host (":50051") or with a wildcard host
// ("0.0.0.0:50051") means this machine. token, unless empty, goes with
// every call as `authorization: Bearer <token>` (the component's
// EnvStreamToken). Dialing does not block; calls fail if nothing listens.
func DialEndpoint(endpoint, token string) (*grpc.ClientConn, error) {
	target := "passthrough:///" + localEndpoint(endpoint)
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(streamWindow),
	}
	if token != "" {
		// Plaintext is allowed: the token opens this one component's port,
		// which the same connection reaches anyway; it is new at every
		// start and worth nothing elsewhere.
		opts = append(opts, grpc.WithPerRPCCredentials(wiretls.TokenCredentials(token, true)))
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	return cc, nil
}

// localEndpoint replaces an empty or wildcard host by 127.0.0.1.
func localEndpoint(endpoint string) string {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return endpoint
	}
	switch host {
	case "", "0.0.0.0", "::", "[::]":
		return net.JoinHostPort("127.0.0.1", port)
	}
	return endpoint
}

// connectGRPC dials a native component, checks what it says about itself
// and opens the stream of its role.
func connectGRPC(ctx context.Context, rt *Runtime, inst *Instance, endpoint string) (Conns, error) {
	cc, err := DialEndpoint(endpoint, inst.Env[EnvStreamToken])
	if err != nil {
		return Conns{}, err
	}
	role := inst.Component.Role
	info, err := GRPCInfo(ctx, cc, role)
	if err != nil {
		cc.Close()
		return Conns{}, fmt.Errorf("component %q at %s: %w", inst.ID, endpoint, err)
	}
	if r := controlplane.RoleFromStream(info.GetRole()); r != "" && r != role {
		cc.Close()
		return Conns{}, fmt.Errorf("component %q says it is a %s, but the pipeline uses it as a %s", inst.ID, r, role)
	}
	log := inst.Logger
	if log == nil {
		log = rt.Logger
	}
	maxBatch := int(info.GetMaxBatch())
	var conns Conns
	switch role {
	case flow.RoleProcessor:
		conns.Processor, err = newGRPCProcessorConn(cc, log, maxBatch, inst.Component.Parallelism)
	case flow.RoleSink:
		conns.Sink, err = newGRPCSinkConn(cc, log, maxBatch)
	case flow.RoleSource:
		conns.Source, err = newGRPCSourceConn(cc, log)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		cc.Close()
		return Conns{}, fmt.Errorf("component %q at %s: %w", inst.ID, endpoint, err)
	}
	return conns, nil
}

// GRPCInfo asks a native component for its ComponentInfo through the
// service of role. ctx bounds the call.
func GRPCInfo(ctx context.Context, cc grpc.ClientConnInterface, role flow.Role) (*streamv1.ComponentInfo, error) {
	var (
		info *streamv1.ComponentInfo
		err  error
	)
	req := &streamv1.InfoRequest{}
	switch role {
	case flow.RoleSource:
		info, err = streamv1.NewSourceServiceClient(cc).GetInfo(ctx, req)
	case flow.RoleProcessor:
		info, err = streamv1.NewProcessorServiceClient(cc).GetInfo(ctx, req)
	case flow.RoleSink:
		info, err = streamv1.NewSinkServiceClient(cc).GetInfo(ctx, req)
	default:
		return nil, fmt.Errorf("get info: unknown role %q", role)
	}
	if err != nil {
		return nil, fmt.Errorf("get info from the %s service: %w", role, err)
	}
	return info, nil
}

// GRPCHealth asks a native component for its health through the service
// of role. ctx bounds the call.
func GRPCHealth(ctx context.Context, cc grpc.ClientConnInterface, role flow.Role) (*streamv1.HealthResponse, error) {
	var (
		h   *streamv1.HealthResponse
		err error
	)
	req := &streamv1.HealthRequest{}
	switch role {
	case flow.RoleSource:
		h, err = streamv1.NewSourceServiceClient(cc).Health(ctx, req)
	case flow.RoleProcessor:
		h, err = streamv1.NewProcessorServiceClient(cc).Health(ctx, req)
	case flow.RoleSink:
		h, err = streamv1.NewSinkServiceClient(cc).Health(ctx, req)
	default:
		return nil, fmt.Errorf("health: unknown role %q", role)
	}
	if err != nil {
		return nil, fmt.Errorf("health of the %s service: %w", role, err)
	}
	return h, nil
}

// ConnectGRPC opens the native stream of role on an endpoint directly,
// without the control plane: for the conformance command and tests,
// which start a component themselves.
func ConnectGRPC(ctx context.Context, endpoint string, role flow.Role, log *slog.Logger) (Conns, error) {
	inst := &Instance{Component: &spec.Component{Name: "component", Role: role}, ID: "component", Logger: log}
	return connectGRPC(ctx, &Runtime{Logger: log}, inst, endpoint)
}
