package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flowctl/flowctl/pkg/backoff"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
	"github.com/flowctl/flowctl/pkg/wire/wiretls"
)

// maxMsgSize bounds one gRPC message: a batch of 256 events with payloads
// of up to a few hundred KiB each.
const maxMsgSize = 64 << 20

// streamWindow is the HTTP/2 flow-control window the component advertises,
// per stream and per connection: a few batches in flight never wait for a
// window update.
const streamWindow = 4 << 20

// Serve runs component until it is told to stop, then drains and returns.
// component must implement exactly one of Processor, Source and Sink; use
// ServeProcessor, ServeSource or ServeSink for a value that implements
// several. ctx ending starts a drain like SIGTERM does.
//
// Serve returns nil after a clean drain (or, for a source, once it is
// exhausted and all it emitted was acknowledged), ErrFlowctlGone when its
// flowctl died, or an error when it could not start (bad environment, port
// taken, control plane unreachable) or the source's Run failed.
func Serve(ctx context.Context, component any, opts ...Option) error {
	p, isP := component.(Processor)
	src, isSrc := component.(Source)
	snk, isSnk := component.(Sink)
	n := 0
	for _, b := range []bool{isP, isSrc, isSnk} {
		if b {
			n++
		}
	}
	switch {
	case n == 0:
		return fmt.Errorf("serve %T: it implements none of sdk.Processor, sdk.Source, sdk.Sink; add a Process, Run or Write method", component)
	case n > 1:
		return fmt.Errorf("serve %T: it implements more than one of sdk.Processor, sdk.Source, sdk.Sink; call ServeProcessor, ServeSource or ServeSink", component)
	case isP:
		return ServeProcessor(ctx, p, opts...)
	case isSrc:
		return ServeSource(ctx, src, opts...)
	default:
		return ServeSink(ctx, snk, opts...)
	}
}

// ServeProcessor serves p as a processor; see Serve.
func ServeProcessor(ctx context.Context, p Processor, opts ...Option) error {
	return run(ctx, streamv1.Role_ROLE_PROCESSOR, opts, func(rt *runtime) roleServer {
		return &processorService{rt: rt, p: p}
	})
}

// ServeSink serves s as a sink; see Serve.
func ServeSink(ctx context.Context, s Sink, opts ...Option) error {
	return run(ctx, streamv1.Role_ROLE_SINK, opts, func(rt *runtime) roleServer {
		return &sinkService{rt: rt, s: s}
	})
}

// ServeSource serves s as a source; see Serve.
func ServeSource(ctx context.Context, s Source, opts ...Option) error {
	return run(ctx, streamv1.Role_ROLE_SOURCE, opts, func(rt *runtime) roleServer {
		return newSourceService(rt, s)
	})
}

// roleServer is the part of the runtime that differs per role.
type roleServer interface {
	// register adds the role's gRPC service to gs.
	register(gs grpcRegistrar)
	// finished is closed when the component has nothing more to do
	// (a source that is exhausted and fully acknowledged); nil otherwise.
	finished() <-chan struct{}
	// drain stops taking new work and waits until the work in hand is
	// answered or ctx ends. It reports whether it finished in time.
	drain(ctx context.Context, reason string) bool
	// result is the component's own error, returned by Serve.
	result() error
}

// runtime is one Serve call: settings, the gRPC server, the control-plane
// session, and the drain state shared by every stream.
//
//	serving ──(SIGTERM | ctx | source finished)──► draining ──► stopped
//	   └──────────────(flowctl gone)──────────────────────────────┘
type runtime struct {
	s    *settings
	role streamv1.Role
	log  *slog.Logger

	drainCh   chan struct{} // closed when the drain starts
	drainOnce sync.Once

	streamMu    sync.Mutex
	openStreams int           // open batch streams
	noStreams   chan struct{} // closed when openStreams drops to 0 during a drain

	cp       streamv1.ControlPlaneServiceClient
	cpConn   *grpc.ClientConn
	endpoint string

	// hbMu serialises heartbeats. A heartbeat reads the drain state and
	// waits for its answer while holding it, and the drain sends its
	// STOPPING heartbeat under it too: a HEALTHY heartbeat read before the
	// drain started has been answered before STOPPING goes out, and every
	// one after reads the drain. So the control plane never sees HEALTHY
	// after STOPPING (it could before: the goroutine's HEALTHY, read just
	// before the drain, landed after the drain's STOPPING on a loaded
	// machine).
	hbMu sync.Mutex

	batches, eventsIn, eventsOut, failures atomic.Int64
	// tracer is nil unless tracing is on (trace.go); spanName names the
	// component in its spans.
	tracer   trace.Tracer
	spanName string
}

func run(ctx context.Context, role streamv1.Role, opts []Option, newRole func(*runtime) roleServer) error {
	s, err := loadSettings(opts)
	if err != nil {
		return fmt.Errorf("flowctl sdk: %w", err)
	}
	rt := &runtime{s: s, role: role, log: s.log.With("component", s.info.Name), drainCh: make(chan struct{})}
	if s.id != "" {
		rt.log = rt.log.With("id", s.id)
	}
	rs := newRole(rt)
	defer rt.startTracing()()
	if s.cpuProfile != "" {
		stop, err := startCPUProfile(s.cpuProfile)
		if err != nil {
			return fmt.Errorf("flowctl sdk: %s: %w", EnvCPUProfile, err)
		}
		defer stop()
	}

	lis := s.listener
	if lis == nil {
		addr := listenAddr(s.port)
		if lis, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("flowctl sdk: listen on %s (from %s): %w", addr, EnvPort, err)
		}
	}
	rt.endpoint = advertiseAddr(lis.Addr(), s.advertise)
	// wireCodec reads and writes processor batches without the generated
	// types (wire.go); every other message as gRPC's proto codec does.
	// A fixed flow-control window, as flowctl's side has (streamWindow in
	// internal/external): with gRPC's default, dynamic one, every batch
	// received also costs a BDP ping and its ack, two more frames and
	// wake-ups each way. The credit already bounds what a peer sends.
	sopts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxMsgSize), grpc.MaxSendMsgSize(maxMsgSize),
		grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(streamWindow),
		grpc.ForceServerCodecV2(newWireCodec())}
	if s.streamToken != "" {
		// Only flowctl, which started this process, knows the token.
		sopts = append(sopts, wiretls.TokenServerOptions(s.streamToken)...)
	}
	gs := grpc.NewServer(sopts...)
	rs.register(gs)
	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	rt.log.Info("serving", "role", roleName(role), "addr", lis.Addr().String())

	stopHealth := rt.serveHealthPort()
	defer stopHealth()

	var sigc chan os.Signal
	if len(s.signals) > 0 {
		sigc = make(chan os.Signal, 1)
		signal.Notify(sigc, s.signals...)
		defer signal.Stop(sigc)
	}

	gone := make(chan string, 1)
	sessCtx, stopSession := context.WithCancel(context.Background())
	defer stopSession()
	if s.enabled {
		if err := rt.connect(ctx); err != nil {
			gs.Stop()
			return err
		}
		defer rt.cpConn.Close()
		go rt.heartbeat(sessCtx, gone)
		go rt.watchParent(sessCtx, gone)
	}

	var why string
	var lost bool
	select {
	case <-ctx.Done():
		why = "context done"
	case sig := <-sigc:
		why = sig.String()
	case <-rs.finished():
		why = "finished"
	case why = <-gone:
		lost = true
	case err := <-serveErr:
		stopSession()
		return fmt.Errorf("flowctl sdk: serve: %w", err)
	}

	drainTimeout := s.drainTimeout
	if lost {
		// Nobody is left to answer to; give work in hand a moment only.
		drainTimeout = min(drainTimeout, time.Second)
		rt.log.Error("flowctl is gone; stopping", "reason", why)
	} else {
		rt.log.Info("draining", "reason", why)
	}
	rt.startDrain()
	if s.enabled && !lost {
		rt.hbMu.Lock()
		_ = rt.sendHeartbeat(streamv1.HealthStatus_HEALTH_STATUS_STOPPING)
		rt.hbMu.Unlock()
	}
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	clean := rs.drain(dctx, why)
	cancel()
	stopSession()
	if s.enabled && !lost {
		rt.deregister()
	}
	// Streams still open after the drain are cut: their unanswered batches
	// are redelivered by flowctl to the next instance.
	if clean {
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(time.Second):
			gs.Stop()
			<-stopped
		}
	} else {
		gs.Stop()
	}
	rt.log.Info("stopped", "batches", rt.batches.Load(), "events_in", rt.eventsIn.Load(),
		"events_out", rt.eventsOut.Load(), "failed", rt.failures.Load())
	if lost {
		return fmt.Errorf("%w: %s", ErrFlowctlGone, why)
	}
	return rs.result()
}

// startDrain closes drainCh once; under streamMu so that beginStream
// either counts a stream before the drain or refuses it.
func (rt *runtime) startDrain() {
	rt.streamMu.Lock()
	defer rt.streamMu.Unlock()
	rt.drainOnce.Do(func() { close(rt.drainCh) })
}

// draining reports whether the drain has started.
func (rt *runtime) draining() bool {
	select {
	case <-rt.drainCh:
		return true
	default:
		return false
	}
}

func roleName(r streamv1.Role) string {
	switch r {
	case streamv1.Role_ROLE_SOURCE:
		return "source"
	case streamv1.Role_ROLE_PROCESSOR:
		return "processor"
	case streamv1.Role_ROLE_SINK:
		return "sink"
	}
	return "unknown"
}

// info is the GetInfo answer.
func (rt *runtime) info() *streamv1.ComponentInfo {
	i := rt.s.info
	ci := &streamv1.ComponentInfo{
		Name:             i.Name,
		Version:          i.Version,
		Role:             rt.role,
		Description:      i.Description,
		InputEventTypes:  i.InputTypes,
		OutputEventTypes: i.OutputTypes,
		ConfigSchemaJson: i.ConfigSchemaJSON,
		ProtocolVersion:  1,
	}
	if rt.role == streamv1.Role_ROLE_SOURCE {
		ci.MaxBatch = MaxBatch
	}
	for _, f := range i.ConfigFields {
		ci.ConfigFields = append(ci.ConfigFields, &streamv1.ConfigField{
			Name: f.Name, Type: f.Type, Required: f.Required, DefaultJson: f.DefaultJSON, Description: f.Description,
		})
	}
	return ci
}

// health is the Health answer.
func (rt *runtime) health() *streamv1.HealthResponse {
	h := &streamv1.HealthResponse{Status: streamv1.HealthStatus_HEALTH_STATUS_HEALTHY, Metrics: rt.metrics()}
	if rt.draining() {
		h.Status = streamv1.HealthStatus_HEALTH_STATUS_STOPPING
		h.Message = "draining"
	}
	return h
}

func (rt *runtime) metrics() map[string]string {
	return map[string]string{
		"batches":    fmt.Sprint(rt.batches.Load()),
		"events_in":  fmt.Sprint(rt.eventsIn.Load()),
		"events_out": fmt.Sprint(rt.eventsOut.Load()),
		"failed":     fmt.Sprint(rt.failures.Load()),
	}
}

// connect dials the control plane and registers, retrying until
// LostAfter heartbeat intervals have passed (flowctl may still be starting
// its listener when a fast component is ready). A refusal that retrying
// cannot cure (a failed TLS handshake, a wrong token) ends it at once.
func (rt *runtime) connect(ctx context.Context) error {
	cpTLS := rt.s.cpTLS
	dopts, tlsCfg, err := cpTLS.dialOptions(rt.s.endpoint)
	if err != nil {
		return fmt.Errorf("flowctl sdk: %w", err)
	}
	conn, err := grpc.NewClient(rt.s.endpoint, dopts...)
	if err != nil {
		return fmt.Errorf("flowctl sdk: control plane %s=%q: %w", EnvEndpoint, rt.s.endpoint, err)
	}
	rt.cpConn = conn
	rt.cp = streamv1.NewControlPlaneServiceClient(conn)
	deadline := time.Now().Add(time.Duration(rt.s.lostAfter) * rt.s.interval)
	retry := backoff.New(backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second, Jitter: backoff.DefaultJitter})
	for {
		err = rt.register(ctx)
		if err == nil {
			rt.log.Info("registered", "control_plane", rt.s.endpoint, "security", cpTLS.describe(), "endpoint", rt.endpoint)
			return nil
		}
		if status.Code(err) == codes.Unavailable && !permanent(err) && !strings.Contains(err.Error(), "connection refused") {
			// gRPC may have hidden a refused handshake behind "broken
			// pipe": dial once more by hand to see the TLS layer's error.
			if perr := probe(ctx, rt.s.endpoint, tlsCfg); isTLSError(perr) {
				conn.Close()
				return fmt.Errorf("flowctl sdk: register with the control plane at %s (%s): %w (%s)",
					rt.s.endpoint, cpTLS.describe(), perr, cpTLS.connectHint(perr))
			}
		}
		if permanent(err) || time.Now().After(deadline) || ctx.Err() != nil {
			conn.Close()
			return fmt.Errorf("flowctl sdk: register with the control plane at %s (%s): %w (%s)",
				rt.s.endpoint, cpTLS.describe(), err, cpTLS.connectHint(err))
		}
		wait := retry.Next()
		rt.log.Debug("register failed; retrying", "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

func (rt *runtime) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, rt.s.interval)
	defer cancel()
	reg := &streamv1.Registration{
		Id:               rt.s.id,
		Role:             rt.role,
		Endpoint:         rt.endpoint,
		InputEventTypes:  rt.s.info.InputTypes,
		OutputEventTypes: rt.s.info.OutputTypes,
		Metadata:         rt.s.info.Metadata,
		Name:             rt.s.info.Name,
		Version:          rt.s.info.Version,
	}
	ttl := rt.s.ttl
	if ttl == 0 {
		ttl = time.Duration(DefaultLostAfter) * rt.s.interval
	}
	reg.Ttl = durationpb.New(ttl)
	_, err := rt.cp.Register(ctx, &streamv1.RegisterRequest{Registration: reg})
	return err
}

// heartbeat renews the registration every interval, registers again when
// the control plane forgot the component, and reports on gone once the
// control plane was unreachable for LostAfter intervals.
func (rt *runtime) heartbeat(ctx context.Context, gone chan<- string) {
	t := time.NewTicker(rt.s.interval)
	defer t.Stop()
	lastOK := time.Now()
	lostAfter := time.Duration(rt.s.lostAfter) * rt.s.interval
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := rt.beat(ctx)
		if err == nil {
			lastOK = time.Now()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		rt.log.Warn("heartbeat failed", "err", err)
		if time.Since(lastOK) >= lostAfter {
			select {
			case gone <- fmt.Sprintf("control plane %s unreachable for %s", rt.s.endpoint, time.Since(lastOK).Round(time.Millisecond)):
			default:
			}
			return
		}
	}
}

// beat sends one heartbeat saying HEALTHY, or STOPPING once the drain
// started, under hbMu (see there); when the control plane forgot the
// component it registers again and repeats the heartbeat, so the new
// registration has the health too.
func (rt *runtime) beat(ctx context.Context) error {
	rt.hbMu.Lock()
	defer rt.hbMu.Unlock()
	h := streamv1.HealthStatus_HEALTH_STATUS_HEALTHY
	if rt.draining() {
		h = streamv1.HealthStatus_HEALTH_STATUS_STOPPING
	}
	err := rt.sendHeartbeat(h)
	if status.Code(err) == codes.NotFound {
		rt.log.Warn("control plane forgot this component; registering again")
		if err = rt.register(ctx); err == nil {
			err = rt.sendHeartbeat(h)
		}
	}
	return err
}

// sendHeartbeat sends one heartbeat; the caller holds hbMu.
func (rt *runtime) sendHeartbeat(h streamv1.HealthStatus) error {
	ctx, cancel := context.WithTimeout(context.Background(), rt.s.interval)
	defer cancel()
	_, err := rt.cp.Heartbeat(ctx, &streamv1.HeartbeatRequest{Id: rt.s.id, Health: h, Metrics: rt.metrics()})
	return err
}

func (rt *runtime) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := rt.cp.Deregister(ctx, &streamv1.DeregisterRequest{Id: rt.s.id}); err != nil {
		rt.log.Warn("deregister failed", "err", err)
	}
}

// initialPPID is the parent process id as early as this process can read
// it, so that a parent dying during start-up is still noticed.
var initialPPID = os.Getppid()

// watchParent reports on gone when the parent process changes: flowctl
// died and the component was re-parented. A Go program cannot ask for
// PR_SET_PDEATHSIG after start, and the control-plane check takes several
// heartbeat intervals; this one takes half a second.
func (rt *runtime) watchParent(ctx context.Context, gone chan<- string) {
	ppid := initialPPID
	if ppid <= 1 {
		return // already an orphan or PID 1's child (a container): nothing to watch
	}
	t := time.NewTicker(rt.s.ppidCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if now := os.Getppid(); now != ppid {
				select {
				case gone <- fmt.Sprintf("parent process %d exited (parent is now %d)", ppid, now):
				default:
				}
				return
			}
		}
	}
}

// serveHealthPort serves GET /health on HEALTH_PORT when it is set, for
// engines that probe over HTTP. It returns a function that stops it.
func (rt *runtime) serveHealthPort() func() {
	if rt.s.healthPort == "" {
		return func() {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if rt.draining() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: healthAddr(rt.s.healthPort, rt.s.port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			rt.log.Warn("health port", "port", rt.s.healthPort, "err", err)
		}
	}()
	return func() { srv.Close() }
}

// grpcRegistrar is what a roleServer registers its service on.
type grpcRegistrar = grpc.ServiceRegistrar

// startCPUProfile starts a CPU profile written to path; stop ends it.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start the CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
