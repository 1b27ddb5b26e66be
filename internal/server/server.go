package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/drivers/process"
	"github.com/flowctl/flowctl/internal/store"
	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
)

// Defaults of Options.
const (
	DefaultGrace             = 10 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultBackoff           = time.Second
	DefaultMaxBackoff        = time.Minute
	DefaultKeepRuns          = 100
)

// Options configure a Server.
type Options struct {
	// Store keeps pipelines, registrations and runs. The caller opens it
	// and closes it after Serve returns.
	Store store.Store
	// DataDir holds the spec files children run and the log files; ""
	// keeps logs in memory and spec files in a temporary directory.
	DataDir string
	// Executable is the flowctl binary children run; "" means this one.
	Executable string
	// Grace bounds how long a child may drain when it is stopped [10s].
	Grace time.Duration
	// HeartbeatInterval is what components are told to heartbeat at [1s];
	// their default TTL is three intervals.
	HeartbeatInterval time.Duration
	// Backoff and MaxBackoff bound the restarts of a crashing pipeline
	// [1s doubling to 1m].
	Backoff, MaxBackoff time.Duration
	// KeepRuns is how many runs of each pipeline the history keeps: each
	// new run prunes the ended runs older than the newest KeepRuns (a run
	// still running is never pruned). Negative keeps every run [100].
	KeepRuns int
	// HungGrace: a child whose every component is UNHEALTHY (no heartbeat
	// for longer than the TTL: the child hangs although its process lives)
	// is killed and restarted once this much more has passed, so that a
	// child only starved of CPU for a moment is not killed [one TTL: three
	// heartbeat intervals].
	HungGrace time.Duration
	// ServerOptions are passed to grpc.NewServer (TLS credentials, the
	// bearer-token interceptors).
	ServerOptions []grpc.ServerOption
	// ChildReportArgs are extra `flowctl run` flags children need to
	// report back (--report-ca, --report-cert, --report-key,
	// --report-token-file).
	ChildReportArgs []string
	// TLS and MTLS say how the listener is secured (shown by Status).
	TLS, MTLS bool
	// Version is shown by Status.
	Version string
	// Logger receives the server's own log; nil discards it.
	Logger *slog.Logger
	// Driver starts the pipelines' `flowctl run` children; nil is the
	// process driver. Tests pass a fake to check the reconciler alone.
	Driver drivers.Driver
}

// Server is `flowctl server`.
//
//	New ──► Serve(ctx, lis) ── ctx done ──► drain children ──► return
//
// A Server serves once.
type Server struct {
	opts     Options
	log      *slog.Logger
	registry *controlplane.Registry
	clock    *restoreClock
	logs     *logStore
	gs       *grpc.Server
	rec      *reconciler
	persist  *regPersister

	started  time.Time
	listen   atomic.Value // string
	done     chan struct{}
	tmpDir   string
	closeOne sync.Once
}

// New builds a server; nothing runs until Serve.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("server: no store")
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.KeepRuns == 0 {
		opts.KeepRuns = DefaultKeepRuns
	}
	if opts.HungGrace <= 0 {
		opts.HungGrace = controlplane.DefaultTTLFactor * opts.HeartbeatInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Driver == nil {
		opts.Driver = process.Driver{}
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("server: find the flowctl binary to run pipelines with: %w", err)
		}
		opts.Executable = exe
	}
	s := &Server{opts: opts, log: opts.Logger, clock: &restoreClock{}, done: make(chan struct{})}
	s.registry = controlplane.NewRegistry(controlplane.Options{Clock: s.clock, HeartbeatInterval: opts.HeartbeatInterval})
	specDir, logDir := "", ""
	if opts.DataDir != "" {
		specDir = filepath.Join(opts.DataDir, "pipelines")
		logDir = filepath.Join(opts.DataDir, "logs")
	} else {
		d, err := os.MkdirTemp("", "flowctl-server-")
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.tmpDir = d
		specDir = filepath.Join(d, "pipelines")
	}
	logs, err := newLogStore(logDir, 0)
	if err != nil {
		return nil, err
	}
	s.logs = logs
	s.persist = newRegPersister(opts.Store, s.registry, s.log)
	s.rec = newReconciler(reconcilerOptions{
		store: opts.Store, registry: s.registry, logs: logs, log: s.log, driver: opts.Driver,
		exe: opts.Executable, specDir: specDir, reportArgs: opts.ChildReportArgs,
		grace: opts.Grace, backoff: opts.Backoff, maxBackoff: opts.MaxBackoff,
		hungGrace: opts.HungGrace, keepRuns: max(opts.KeepRuns, 0),
	})
	sopts := append([]grpc.ServerOption{}, opts.ServerOptions...)
	// A fixed pool of stream workers: thousands of heartbeats a second
	// then reuse warm goroutines instead of starting (and growing the
	// stack of) one per call.
	sopts = append(sopts, grpc.ChainUnaryInterceptor(s.persist.interceptor), grpc.NumStreamWorkers(uint32(max(4, runtime.NumCPU()))))
	s.gs = grpc.NewServer(sopts...)
	controlplane.Attach(s.gs, s.registry, s.done, storeRuns{opts.Store})
	api := &api{s: s}
	controlv1.RegisterPipelineServiceServer(s.gs, api)
	controlv1.RegisterRunServiceServer(s.gs, api)
	controlv1.RegisterLogServiceServer(s.gs, api)
	controlv1.RegisterStatusServiceServer(s.gs, api)
	controlv1.RegisterLiveServiceServer(s.gs, api)
	return s, nil
}

// Registry is the server's component registry.
func (s *Server) Registry() *controlplane.Registry { return s.registry }

// Addr is the address Serve listens on ("" before Serve).
func (s *Server) Addr() string {
	a, _ := s.listen.Load().(string)
	return a
}

// addrOf is lis's address as clients write it: unix:PATH for a Unix
// socket, host:port for TCP.
func addrOf(lis net.Listener) string {
	if a, ok := lis.Addr().(*net.UnixAddr); ok {
		return "unix:" + a.Name
	}
	return lis.Addr().String()
}

// reportAddr is the address a child dials to reach lis: the socket, or
// the bound port on loopback when the listener takes every interface.
func reportAddr(lis net.Listener) string {
	a, ok := lis.Addr().(*net.TCPAddr)
	if !ok {
		return addrOf(lis)
	}
	host := a.IP.String()
	if a.IP == nil || a.IP.IsUnspecified() {
		host = "127.0.0.1"
		if a.IP != nil && a.IP.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// Serve restores what was applied, starts the reconciler and serves on
// lis until ctx is done. Then it stops every pipeline within the grace
// (their runs recorded as stopped, their status Stopped so that the next
// start brings them back), stops serving and returns. It does not close
// the store.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.started = time.Now()
	s.listen.Store(addrOf(lis))
	s.rec.opts.reportAddr = reportAddr(lis)
	defer s.cleanup()

	// A run still Started belongs to a server that died without a clean
	// shutdown: its child died with it.
	interrupted, err := store.InterruptRuns(ctx, s.opts.Store, "the server stopped without a clean shutdown (killed or crashed) while the run was in progress", time.Now())
	if err != nil {
		return fmt.Errorf("server: mark interrupted runs: %w", err)
	}
	for _, r := range interrupted {
		s.log.Warn("run interrupted by the previous server's death", logKeyPipeline, r.Pipeline, logKeyRun, r.ID, logKeyPID, r.PID)
	}
	if err := s.restoreRegistrations(ctx); err != nil {
		return err
	}

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	var bgWG sync.WaitGroup
	bgWG.Add(2)
	go func() { defer bgWG.Done(); s.registry.Run(bg, 500*time.Millisecond) }()
	go func() { defer bgWG.Done(); s.persist.run(bg) }()

	if err := s.rec.start(bg); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.gs.Serve(lis) }()
	s.log.Info("flowctl server serving", logKeyAddr, addrOf(lis), logKeyDataDir, s.opts.DataDir, logKeyTLS, s.opts.TLS, logKeyMTLS, s.opts.MTLS)

	var serveErr error
	select {
	case err := <-errc:
		serveErr = err
	case <-ctx.Done():
	}
	s.log.Info("flowctl server stopping: draining pipelines", logKeyGrace, s.opts.Grace)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.Grace+10*time.Second)
	s.rec.shutdown(sctx)
	cancel()
	s.closeOne.Do(func() { close(s.done) })
	stopped := make(chan struct{})
	go func() { s.gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		s.gs.Stop()
		<-stopped
	}
	stopBG()
	bgWG.Wait()
	s.persist.flush(context.Background())
	if serveErr != nil && !errors.Is(serveErr, grpc.ErrServerStopped) {
		return fmt.Errorf("server: serve: %w", serveErr)
	}
	return nil
}

func (s *Server) cleanup() {
	s.logs.Close()
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
}
