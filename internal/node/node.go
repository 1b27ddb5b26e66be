package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/metrics"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// TLS names the PEM files of a node: its certificate and key (served to
// upstream nodes and presented to downstream ones) and the CA both sides
// are checked against. All three, or none.
type TLS struct {
	CertFile, KeyFile, CAFile string
}

// Enabled reports whether any file is set.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" }

// Options configure a node.
type Options struct {
	// Pipeline is the validated pipeline file; Registry its built-ins.
	Pipeline *spec.Pipeline
	Registry *flow.Registry
	// Component names the component this node runs.
	Component string
	// Listen is where upstream nodes reach this one [DefaultListen].
	Listen string
	// Peers overrides the address of downstream components' nodes
	// [NAME:DefaultPort].
	Peers map[string]Peer
	// TLS secures both directions with mutual TLS; Insecure allows
	// plaintext off loopback.
	TLS      TLS
	Insecure bool
	// HTTP, when set, serves /healthz, /readyz and /metrics.
	HTTP string
	// StateDir holds the checkpoints [state.DefaultRoot()].
	StateDir string
	// Grace bounds the drain after ctx ends [engine.DefaultGrace].
	Grace time.Duration
	// Logger receives the node's logs [discard]; Output the output of a
	// command component [stderr].
	Logger *slog.Logger
	Output io.Writer
	// OnListening, if set, is called with the gRPC and HTTP addresses once
	// they listen ("" for none).
	OnListening func(grpcAddr, httpAddr string)
}

// CheckSecurity refuses plaintext between nodes off loopback unless
// insecure is set: the listen address and every peer address must be
// loopback ones without TLS. It also checks the TLS files come together.
func CheckSecurity(listen string, peers map[string]Peer, t TLS, insecure bool, listens bool) error {
	if t.Enabled() {
		if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
			return errors.New("mutual TLS between nodes needs all of --tls-cert, --tls-key and --tls-ca (`flowctl certs init` makes them)")
		}
		if insecure {
			return errors.New("--insecure and --tls-* contradict each other: give one")
		}
		return nil
	}
	if insecure {
		return nil
	}
	var errs []error
	if listens {
		if !tlsutil.IsLoopback(listen) {
			errs = append(errs, fmt.Errorf("--listen %s: plaintext from nodes off this machine: give --tls-cert, --tls-key and --tls-ca (see `flowctl certs init`) or pass --insecure", listen))
		}
	}
	for name, p := range peers {
		for _, a := range p.Addrs {
			if !tlsutil.IsLoopback(a) {
				errs = append(errs, fmt.Errorf("--peer %s=%s: plaintext to a node off this machine: give --tls-cert, --tls-key and --tls-ca (see `flowctl certs init`) or pass --insecure", name, a))
			}
		}
	}
	return errors.Join(errs...)
}

// gracefulStopWait bounds how long a finished node waits for its
// upstream streams to end before it cuts them.
const gracefulStopWait = 5 * time.Second

// InsecureWarning is what a node prints when --insecure lets plaintext
// leave the machine.
const InsecureWarning = "flowctl node: WARNING: --insecure: events travel between nodes unencrypted and any host that reaches --listen can send into this pipeline"

// Result is what a node did.
type Result struct {
	// Completed is true when the node finished on its own (its source was
	// exhausted, or every upstream node sent End) and told its downstream
	// nodes so; false when it was stopped.
	Completed bool
	// Stats is the engine's last snapshot.
	Stats engine.Stats
	// Received and Redelivered count the batches from upstream nodes and
	// those among them marked redelivered (possible duplicates).
	Received, RedeliveredBatches, RedeliveredEvents int64
}

// Run runs the node until its work is done or ctx ends (SIGTERM: it
// drains within Grace). A bounded pipeline's node returns Completed once
// its End went downstream.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	p := o.Pipeline
	pl, err := derive(p, o.Component, o.Peers)
	if err != nil {
		return res, err
	}
	listens := len(pl.expected) > 0
	// The link to the node's own component (--peer with its own name) is
	// the component's protocol, which has no TLS: it is not a node.
	nodePeers := map[string]Peer{}
	for _, d := range pl.downstreams {
		nodePeers[d.name] = d.peer
	}
	if err := CheckSecurity(o.Listen, nodePeers, o.TLS, o.Insecure, listens); err != nil {
		return res, err
	}
	if listens && !o.TLS.Enabled() && !o.Insecure {
		// CheckSecurity lets plaintext through on loopback, which keeps
		// other machines out but not the other users of this one.
		log.Warn("serving plaintext on loopback: any user of this machine can send events into this pipeline; give --tls-cert, --tls-key and --tls-ca to admit only nodes with a certificate", "listen", o.Listen)
	}
	// The engine and the external manager add the pipeline name
	// themselves; the node's own parts get it here.
	log = log.With("node", o.Component)
	own := log.With("pipeline", p.Name)
	var serverTLS, clientTLS *tls.Config
	if o.TLS.Enabled() {
		serverTLS, err = tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: o.TLS.CertFile, KeyFile: o.TLS.KeyFile, ClientCAFile: o.TLS.CAFile})
		if err != nil {
			return res, err
		}
		clientTLS, err = tlsutil.ClientConfig(tlsutil.ClientOptions{CAFile: o.TLS.CAFile, CertFile: o.TLS.CertFile, KeyFile: o.TLS.KeyFile})
		if err != nil {
			return res, err
		}
	}
	nodeID := nodeIdentity(o.Component)

	// The component itself, when it is a command: supervised as under
	// flowctl run, with its own embedded control plane on loopback.
	dir := ""
	if p.File != "" {
		dir = filepath.Dir(p.File)
	}
	var ext *external.Manager
	if external.IsExternal(pl.self) {
		mini := &spec.Pipeline{Name: p.Name, File: p.File}
		switch pl.self.Role {
		case flow.RoleSource:
			mini.Sources = []*spec.Component{pl.self}
		case flow.RoleProcessor:
			mini.Processors = []*spec.Component{pl.self}
		default:
			mini.Sinks = []*spec.Component{pl.self}
		}
		ext, err = external.NewManager(mini, external.ManagerOptions{Logger: log, Dir: dir, Output: o.Output})
		if err != nil {
			return res, err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), max(o.Grace, time.Second))
			defer cancel()
			_ = ext.Close(cctx)
		}()
	}

	var in *inbound
	if listens {
		in = newInbound(o.Component, pl.self.Role, pl.expected, own.With("part", "inbound"))
	}
	senders := map[string]*sender{}
	var senderList []*sender
	for _, d := range pl.downstreams {
		s := newSender(d.name, o.Component, nodeID, d.peer, d.replicas, clientTLS, own)
		senders[d.name] = s
		senderList = append(senderList, s)
	}

	st, err := state.Open(stateRootOf(o.StateDir), p.Name+"."+o.Component, time.Second)
	switch {
	case errors.Is(err, state.ErrInUse):
		return res, fmt.Errorf("the state of node %q of pipeline %q is in use by another process (%v); give this node its own --state-dir", o.Component, p.Name, err)
	case err != nil:
		return res, fmt.Errorf("checkpoints of node %q: %w", o.Component, err)
	}
	defer st.Close()
	if err := appendIfRanBefore(pl.self, o.Registry, stateRootOf(o.StateDir), p.Name, own); err != nil {
		return res, err
	}

	eopts := engine.Options{Grace: o.Grace, Logger: log, Dir: dir, Checkpoints: st, StateDir: filepath.Dir(st.Path())}
	eopts.External = func(c *spec.Component, _ flow.BuildContext) (any, error) {
		switch {
		case c.Name == inboundName && in != nil:
			return in, nil
		case c == pl.self:
			return ext.Build(c)
		}
		if s, ok := senders[c.Name]; ok {
			return s, nil
		}
		return nil, fmt.Errorf("component %q has no place in node %q", c.Name, o.Component)
	}
	e, err := engine.New(pl.pipeline, o.Registry, eopts)
	if err != nil {
		return res, err
	}

	// Inbound listener: up before the engine, so upstream nodes connect
	// while it opens (their batches wait for Run).
	var grpcAddr string
	if listens {
		ln, err := net.Listen("tcp", o.Listen)
		if err != nil {
			return res, fmt.Errorf("--listen %s: %w", o.Listen, err)
		}
		srv := grpc.NewServer(tlsutil.ServerCredentials(serverTLS),
			grpc.MaxRecvMsgSize(external.MaxMessageSize), grpc.MaxSendMsgSize(external.MaxMessageSize),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}))
		streamv1.RegisterSinkServiceServer(srv, in)
		served := make(chan struct{})
		go func() { defer close(served); _ = srv.Serve(ln) }()
		defer func() {
			// Finished: let the handlers end their streams properly (the
			// answer to an upstream's End must reach it, or it sends End
			// again to a node that is gone); stopped: cut them.
			if ctx.Err() == nil {
				stopped := make(chan struct{})
				go func() { srv.GracefulStop(); close(stopped) }()
				select {
				case <-stopped:
				case <-time.After(gracefulStopWait):
				}
			}
			srv.Stop()
			<-served
		}()
		grpcAddr = ln.Addr().String()
		own.Info("serving upstream nodes", "addr", grpcAddr, "tls", serverTLS != nil, "upstreams", in.upstreams())
	}

	var httpAddr string
	if o.HTTP != "" {
		hs, addr, err := serveHTTP(o.HTTP, p.Name, e, in, grpcAddr != "" || !listens, senderList)
		if err != nil {
			return res, err
		}
		httpAddr = addr
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		}()
	}
	if o.OnListening != nil {
		o.OnListening(grpcAddr, httpAddr)
	}

	runErr := e.Run(ctx)
	res.Stats = e.Stats()
	if in != nil {
		res.Received = in.batches.Load()
		res.RedeliveredBatches, res.RedeliveredEvents = in.redeliveredBatches.Load(), in.redeliveredEvents.Load()
	}
	if runErr != nil {
		return res, runErr
	}
	if ctx.Err() != nil {
		return res, nil // stopped: drained, but not finished; no End
	}
	// Finished on its own: everything was acknowledged downstream. Tell
	// every downstream node, concurrently, and wait for each to answer.
	var wg sync.WaitGroup
	errs := make([]error, len(pl.downstreams))
	for i, d := range pl.downstreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := senders[d.name]
			if err := s.Open(ctx); err == nil { // Close dropped the connection
				errs[i] = s.sendEnd(ctx, d.replicas, "exhausted")
				_ = s.Close(context.Background())
			} else {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil {
			return res, nil
		}
		return res, err
	}
	own.Info("node finished; End sent downstream", "downstreams", len(pl.downstreams))
	res.Completed = true
	return res, nil
}

func stateRootOf(dir string) string {
	if dir != "" {
		if abs, err := filepath.Abs(dir); err == nil {
			return abs
		}
		return dir
	}
	if root, err := state.DefaultRoot(); err == nil {
		return root
	}
	return filepath.Join(os.TempDir(), "flowctl-state")
}

// nodeIdentity names this node to its downstream nodes, which count End
// per node: the component, the host name and a random suffix, so two
// replicas on one host are told apart.
func nodeIdentity(component string) string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return component + "@" + host + "-" + hex.EncodeToString(b[:])
}

// serveHTTP serves /healthz, /readyz and /metrics for a node.
func serveHTTP(addr, pipeline string, e *engine.Engine, in *inbound, listening bool, senders []*sender) (*http.Server, string, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(pipeline, e),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if in != nil {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowctl_node_received_batches_total", Help: "Batches received from upstream nodes."},
				func() float64 { return float64(in.batches.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowctl_node_received_events_total", Help: "Events received from upstream nodes."},
				func() float64 { return float64(in.events.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowctl_node_redelivered_batches_total", Help: "Batches received marked redelivered (possible duplicates)."},
				func() float64 { return float64(in.redeliveredBatches.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowctl_node_redelivered_events_total", Help: "Events in batches received marked redelivered (possible duplicates)."},
				func() float64 { return float64(in.redeliveredEvents.Load()) }),
		)
	}
	for _, s := range senders {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowctl_node_resent_batches_total",
			Help: "Batches sent again to a downstream node after a stream broke before their ack.", ConstLabels: prometheus.Labels{"peer": s.to}},
			func() float64 { return float64(s.Redelivered()) }))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		s := e.Stats()
		if !s.Ready || s.Finished || !listening {
			http.Error(w, "not ready: the pipeline is not running", http.StatusServiceUnavailable)
			return
		}
		if in != nil { // a non-source: its peers must answer
			for _, sd := range senders {
				if err := sd.ping(r.Context()); err != nil {
					http.Error(w, fmt.Sprintf("not ready: downstream %q: %v", sd.to, err), http.StatusServiceUnavailable)
					return
				}
			}
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--http %s: %w", addr, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return hs, ln.Addr().String(), nil
}

// ping asks the downstream node for its health (one second at most).
func (s *sender) ping(ctx context.Context) error {
	if s.cc == nil {
		return errors.New("not connected")
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := streamv1.NewSinkServiceClient(s.cc).Health(cctx, &streamv1.HealthRequest{})
	return err
}
