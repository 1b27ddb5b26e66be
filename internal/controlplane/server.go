package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/pkg/wire/flowctlpb"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// sweepInterval is how often a serving Server turns TTL expiries into
// watch changes. Reads are exact regardless.
const sweepInterval = 250 * time.Millisecond

// stopGrace bounds how long Stop waits for unary calls in flight.
const stopGrace = 2 * time.Second

// Server serves the native, the flowctl.v1 and the older flowctl
// control-plane services over one Registry on one listener.
//
//	NewServer ──► Start(addr) / Serve(ctx, lis) ──► Stop
//
// A Server serves once; Stop (or the end of Serve's context) is final.
type Server struct {
	reg   *Registry
	log   *slog.Logger
	gs    *grpc.Server
	done  chan struct{}
	guard *Guard // nil: anyone who reaches the listener may call
	// legacy serves flowctl.ControlPlane; SetRuns gives it the run history.
	legacy *legacyService

	stopOnce sync.Once
	wg       sync.WaitGroup
	addr     string
}

// NewServer returns a server of reg's services. opts are passed to
// grpc.NewServer (for example TLS credentials). log may be nil.
func NewServer(reg *Registry, log *slog.Logger, opts ...grpc.ServerOption) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{reg: reg, log: log, gs: grpc.NewServer(opts...), done: make(chan struct{})}
	s.legacy = attach(s.gs, reg, s.done, nil)
	return s
}

// Attach registers the control-plane services for reg on gs, for callers
// that serve other services on the same grpc.Server: the native one,
// flowctl.v1's and the older flowctl.ControlPlane, whose run calls answer
// from runs (nil: Unavailable). Watch streams end when done is closed
// (nil: only when their client leaves), so that a graceful stop is not held
// up by watchers.
func Attach(gs *grpc.Server, reg *Registry, done <-chan struct{}, runs Runs) {
	attach(gs, reg, done, runs)
}

func attach(gs *grpc.Server, reg *Registry, done <-chan struct{}, runs Runs) *legacyService {
	streamv1.RegisterControlPlaneServiceServer(gs, &streamService{reg: reg, done: done})
	flowctlv1.RegisterControlPlaneServiceServer(gs, &v1Service{reg: reg})
	legacy := &legacyService{reg: reg}
	legacy.setRuns(runs)
	flowctlpb.RegisterControlPlaneServer(gs, legacy)
	return legacy
}

// SetRuns gives flowctl.ControlPlane's run calls their history (the
// current run of `flowctl run`); until then they answer Unavailable.
func (s *Server) SetRuns(r Runs) { s.legacy.setRuns(r) }

// WaitRegistered waits for id to register; see Registry.WaitRegistered.
func (s *Server) WaitRegistered(ctx context.Context, id string) (Entry, error) {
	return s.reg.WaitRegistered(ctx, id)
}

// Endpoint returns the host:port id registered; see Registry.Endpoint.
func (s *Server) Endpoint(id string) (string, bool) { return s.reg.Endpoint(id) }

// Registry returns the registry the server serves.
func (s *Server) Registry() *Registry { return s.reg }

// Start listens on addr (for example "127.0.0.1:0"), serves in the
// background and returns the bound host:port, which is what components get
// as FLOWCTL_ENDPOINT.
func (s *Server) Start(addr string) (string, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("control plane: listen on %s: %w", addr, err)
	}
	s.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		if err := s.serve(ctx, lis); err != nil {
			s.log.Error("control plane stopped", "err", err)
		}
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.addr, nil
}

// Addr returns the address Start bound, or "" before Start.
func (s *Server) Addr() string { return s.addr }

// Serve serves on lis until ctx is done or Stop is called, then stops
// gracefully. It returns nil after a requested stop.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.serve(ctx, lis)
}

func (s *Server) serve(ctx context.Context, lis net.Listener) error {
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	go s.reg.Run(sweepCtx, sweepInterval)

	errc := make(chan error, 1)
	go func() { errc <- s.gs.Serve(lis) }()
	s.log.Debug("control plane serving", "addr", lis.Addr().String())
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("control plane: serve: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	s.stopOnce.Do(func() { close(s.done) })
	stopped := make(chan struct{})
	go func() { s.gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(stopGrace):
		s.gs.Stop()
		<-stopped
	}
	<-errc
	return nil
}

// Stop stops the server: watch streams end, unary calls in flight get a
// short grace. It waits for a Start-ed server to finish and is safe to call
// more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() { close(s.done) })
	s.wg.Wait()
}
