package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flowctl/flowctl/internal/backoff"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// Metadata keys every reported registration carries, so that the server
// (and `flowctl get components`) can tell which pipeline, revision, run and
// process a component belongs to.
const (
	MetaPipeline   = "flowctl.pipeline"
	MetaComponent  = "flowctl.component"
	MetaRevision   = "flowctl.revision"
	MetaRun        = "flowctl.run"
	MetaPID        = "flowctl.pid"
	MetaKind       = "flowctl.kind"
	MetaDeadLetter = "flowctl.dead_letter"
)

// Counter names in heartbeat metrics (values are decimal integers).
const (
	CounterIn           = "in"
	CounterOut          = "out"
	CounterErrors       = "errors"
	CounterDropped      = "dropped"
	CounterDeadLettered = "dead_lettered"
	CounterFiltered     = "filtered"
	CounterRetries      = "retries"
	CounterUnrouted     = "unrouted"
)

// MetricHealthReason is the heartbeat metric that says why a component is
// not healthy (a sink retrying a failed write: for how long, and the last
// error). It is absent while the component is healthy. It is text, so
// ParseMetrics skips it.
const MetricHealthReason = "health_reason"

// DefaultInterval is the heartbeat interval when neither Options nor the
// server says one.
const DefaultInterval = time.Second

// ID is the registry id of a pipeline's component.
func ID(pipeline, component string) string { return pipeline + "/" + component }

// Component is one component to register.
type Component struct {
	// Name is its name in the pipeline file.
	Name string
	// Role is its role; DeadLetter marks the dead-letter sink.
	Role       flow.Role
	DeadLetter bool
	// Kind says what runs it (see KindOf).
	Kind string
	// InputTypes and OutputTypes are the event types it takes and emits,
	// where the file says.
	InputTypes, OutputTypes []string
}

// KindOf describes what runs c: the built-in's type, or "component: REF"
// (type: NAME@VERSION), "process: CMD",
// "container: IMAGE", "remote: URL".
func KindOf(c *spec.Component) string {
	switch c.Runner {
	case spec.RunProcess:
		if c.Ref != "" {
			return "component: " + c.Ref
		}
		if len(c.Command) > 0 {
			return "process: " + c.Command[0]
		}
		return "process"
	case spec.RunContainer:
		return "container: " + c.Image
	case spec.RunRemote:
		return "remote: " + c.URL
	default:
		return c.Type
	}
}

// Components lists p's components (the dead-letter sink last).
func Components(p *spec.Pipeline) []Component {
	var out []Component
	add := func(c *spec.Component, dl bool) {
		var in []string
		for _, i := range c.Inputs {
			in = append(in, i.Types...)
		}
		out = append(out, Component{Name: c.Name, Role: c.Role, DeadLetter: dl, Kind: KindOf(c),
			InputTypes: append(in, c.InputEventTypes...), OutputTypes: c.OutputEventTypes})
	}
	for _, c := range p.Components() {
		add(c, false)
	}
	if p.DeadLetter != nil {
		add(p.DeadLetter, true)
	}
	return out
}

// Counters maps a component name to its counters.
type Counters map[string]map[string]int64

// Worse is the worse of two health statuses: UNHEALTHY, DEGRADED,
// STARTING, then the others; UNKNOWN (nothing said) yields to anything.
func Worse(a, b streamv1.HealthStatus) streamv1.HealthStatus {
	rank := func(h streamv1.HealthStatus) int {
		switch h {
		case streamv1.HealthStatus_HEALTH_STATUS_UNKNOWN:
			return -1
		case streamv1.HealthStatus_HEALTH_STATUS_UNHEALTHY:
			return 3
		case streamv1.HealthStatus_HEALTH_STATUS_DEGRADED:
			return 2
		case streamv1.HealthStatus_HEALTH_STATUS_STARTING:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// ParseMetrics reads the counters back from heartbeat metrics; values that
// are not integers are skipped.
func ParseMetrics(m map[string]string) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// Options configure a Reporter.
type Options struct {
	// Addr is the server's host:port.
	Addr string
	// DialOptions are passed to grpc.NewClient; nil means plaintext (a
	// server on loopback).
	DialOptions []grpc.DialOption
	// Pipeline, Revision and RunID label every registration.
	Pipeline string
	Revision int64
	RunID    int64
	// Components are what to register.
	Components []Component
	// Counters returns the current counters; nil sends none.
	Counters func() Counters
	// Health returns, by component name, the health of components whose
	// health this process does not simply share (external components it
	// supervises, a sink retrying a failed write); a component missing
	// from it, or a nil Health, is as healthy as the process.
	Health func() map[string]streamv1.HealthStatus
	// Reasons returns, by component name, why a component is not healthy;
	// it is sent as the heartbeat metric MetricHealthReason.
	Reasons func() map[string]string
	// Interval is the heartbeat interval; 0 means what the server answers
	// to Register (else DefaultInterval).
	Interval time.Duration
	// TTL is each registration's TTL; 0 means three intervals.
	TTL time.Duration
	// Logger gets what goes wrong; nil discards.
	Logger *slog.Logger
}

// Reporter keeps a pipeline's components registered and heartbeating.
//
//	Start (register all) ──► heartbeat every interval ──► Close (final
//	heartbeat, health STOPPING, with the last counters)
//
// Close does not deregister: the server that started the child records the
// final counters in the run's history and then removes the registrations.
type Reporter struct {
	opts   Options
	conn   *grpc.ClientConn
	client streamv1.ControlPlaneServiceClient
	log    *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once

	// revMu guards opts.Revision and opts.Components, which SetRevision
	// and Update change.
	revMu sync.Mutex
}

// Start dials the server, registers every component (waiting up to ctx for
// the server to answer) and starts heartbeating in the background.
func Start(ctx context.Context, opts Options) (*Reporter, error) {
	if opts.Addr == "" {
		return nil, errors.New("report: no server address")
	}
	if opts.Pipeline == "" {
		return nil, errors.New("report: no pipeline name")
	}
	dopts := opts.DialOptions
	if dopts == nil {
		dopts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(opts.Addr, dopts...)
	if err != nil {
		return nil, fmt.Errorf("report: dial %s: %w", opts.Addr, err)
	}
	r := &Reporter{opts: opts, conn: conn, client: streamv1.NewControlPlaneServiceClient(conn), log: opts.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	interval := opts.Interval
	for _, c := range opts.Components {
		resp, err := r.register(ctx, c)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if interval <= 0 && resp.GetHeartbeatInterval() != nil {
			interval = resp.GetHeartbeatInterval().AsDuration()
		}
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	r.opts.Interval = interval
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go r.loop(lctx)
	return r, nil
}

// Interval is the heartbeat interval in use.
func (r *Reporter) Interval() time.Duration { return r.opts.Interval }

func (r *Reporter) registration(c Component) *streamv1.Registration {
	ttl := r.opts.TTL
	if ttl <= 0 && r.opts.Interval > 0 {
		ttl = 3 * r.opts.Interval
	}
	md := map[string]string{
		MetaPipeline:  r.opts.Pipeline,
		MetaComponent: c.Name,
		MetaRevision:  strconv.FormatInt(r.revision(), 10),
		MetaPID:       strconv.Itoa(os.Getpid()),
		MetaKind:      c.Kind,
	}
	if r.opts.RunID > 0 {
		md[MetaRun] = strconv.FormatInt(r.opts.RunID, 10)
	}
	if c.DeadLetter {
		md[MetaDeadLetter] = "true"
	}
	reg := &streamv1.Registration{
		Id:               ID(r.opts.Pipeline, c.Name),
		Role:             controlplane.RoleToStream(c.Role),
		Endpoint:         fmt.Sprintf("pid:%d", os.Getpid()),
		InputEventTypes:  c.InputTypes,
		OutputEventTypes: c.OutputTypes,
		Metadata:         md,
		Name:             c.Kind,
	}
	if ttl > 0 {
		reg.Ttl = durationpb.New(ttl)
	}
	return reg
}

// Revision is the revision the registrations carry.
func (r *Reporter) Revision() int64 { return r.revision() }

func (r *Reporter) revision() int64 {
	r.revMu.Lock()
	defer r.revMu.Unlock()
	return r.opts.Revision
}

// SetRevision labels every registration with revision rev from now on (a
// run that reloaded a new revision of its pipeline in place): it registers
// every component again with the new label, then heartbeats their
// counters at once so they stay visible. It is bounded by ctx.
func (r *Reporter) SetRevision(ctx context.Context, rev int64) error {
	return r.Update(ctx, rev, r.components())
}

// Update is SetRevision for a reload that may also have added or removed
// components: comps is the new set. Components no longer in it are
// deregistered, the others registered (again) with revision rev.
func (r *Reporter) Update(ctx context.Context, rev int64, comps []Component) error {
	r.revMu.Lock()
	old := r.opts.Components
	r.opts.Revision = rev
	r.opts.Components = slices.Clone(comps)
	r.revMu.Unlock()
	keep := make(map[string]bool, len(comps))
	var errs []error
	for _, c := range comps {
		keep[c.Name] = true
		if _, err := r.client.Register(ctx, &streamv1.RegisterRequest{Registration: r.registration(c)}); err != nil {
			errs = append(errs, fmt.Errorf("report: register %q with revision %d: %w", c.Name, rev, err))
		}
	}
	for _, c := range old {
		if keep[c.Name] {
			continue
		}
		_, err := r.client.Deregister(ctx, &streamv1.DeregisterRequest{Id: ID(r.opts.Pipeline, c.Name)})
		if err != nil && status.Code(err) != codes.NotFound {
			errs = append(errs, fmt.Errorf("report: deregister removed component %q: %w", c.Name, err))
		}
	}
	r.beat(ctx, streamv1.HealthStatus_HEALTH_STATUS_HEALTHY)
	return errors.Join(errs...)
}

// components is the current set of components.
func (r *Reporter) components() []Component {
	r.revMu.Lock()
	defer r.revMu.Unlock()
	return r.opts.Components
}

// register registers c, retrying while the server is unreachable and ctx
// lasts.
func (r *Reporter) register(ctx context.Context, c Component) (*streamv1.RegisterResponse, error) {
	wait := backoff.New(backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second, Jitter: backoff.DefaultJitter})
	for {
		resp, err := r.client.Register(ctx, &streamv1.RegisterRequest{Registration: r.registration(c)})
		if err == nil {
			return resp, nil
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return nil, fmt.Errorf("report: register %q at %s: %w", c.Name, r.opts.Addr, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("report: register %q at %s: %w", c.Name, r.opts.Addr, err)
		case <-time.After(wait.Next()):
		}
	}
}

func (r *Reporter) loop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.beat(ctx, streamv1.HealthStatus_HEALTH_STATUS_HEALTHY)
		}
	}
}

// beat heartbeats every component once; a component the server does not
// know (it restarted) is registered again.
func (r *Reporter) beat(ctx context.Context, h streamv1.HealthStatus) {
	var counters Counters
	if r.opts.Counters != nil {
		counters = r.opts.Counters()
	}
	var health map[string]streamv1.HealthStatus
	var reasons map[string]string
	if h == streamv1.HealthStatus_HEALTH_STATUS_HEALTHY {
		if r.opts.Health != nil {
			health = r.opts.Health()
		}
		if r.opts.Reasons != nil {
			reasons = r.opts.Reasons()
		}
	}
	for _, c := range r.components() {
		var m map[string]string
		if cs, ok := counters[c.Name]; ok {
			m = make(map[string]string, len(cs)+1)
			for k, v := range cs {
				m[k] = strconv.FormatInt(v, 10)
			}
		}
		if why := reasons[c.Name]; why != "" {
			if m == nil {
				m = map[string]string{}
			}
			m[MetricHealthReason] = why
		}
		cctx, cancel := context.WithTimeout(ctx, r.opts.Interval)
		ch := h
		if ov, ok := health[c.Name]; ok && ov != streamv1.HealthStatus_HEALTH_STATUS_UNKNOWN {
			ch = ov
		}
		_, err := r.client.Heartbeat(cctx, &streamv1.HeartbeatRequest{Id: ID(r.opts.Pipeline, c.Name), Health: ch, Metrics: m})
		if status.Code(err) == codes.NotFound {
			_, err = r.client.Register(cctx, &streamv1.RegisterRequest{Registration: r.registration(c)})
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log.Warn("heartbeat to the server failed", "component", c.Name, "addr", r.opts.Addr, "error", err)
		}
	}
}

// Close stops heartbeating and sends one last heartbeat per component with
// health STOPPING and the final counters, bounded by ctx. It is safe to
// call more than once.
func (r *Reporter) Close(ctx context.Context) error {
	r.closed.Do(func() {
		r.cancel()
		r.wg.Wait()
		r.beat(ctx, streamv1.HealthStatus_HEALTH_STATUS_STOPPING)
		r.conn.Close()
	})
	return nil
}
