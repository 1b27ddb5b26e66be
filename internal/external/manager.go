package external

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// IsExternal reports whether c is run outside flowctl: by a command, an
// image or at a url.
func IsExternal(c *spec.Component) bool {
	switch c.Runner {
	case spec.RunBuiltin:
		return false
	case "":
		return c.Image != "" || len(c.Command) > 0 || c.URL != ""
	}
	return true
}

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// Logger is the run's logger [discard].
	Logger *slog.Logger
	// Dir is the pipeline file's directory.
	Dir string
	// Output receives the children's output lines [stderr].
	Output io.Writer
	// HeartbeatInterval is what components are told to heartbeat at
	// (FLOWCTL_HEARTBEAT_INTERVAL) [DefaultRunHeartbeatInterval].
	HeartbeatInterval time.Duration
	// HeartbeatTTL is how long a component stays healthy without a
	// heartbeat; a component silent for longer is UNHEALTHY and its
	// supervisor kills and restarts it. Positive values are also passed as
	// FLOWCTL_TTL. [3 × HeartbeatInterval, FLOWCTL_TTL unset]
	HeartbeatTTL time.Duration
}

// DefaultRunHeartbeatInterval is the heartbeat interval flowctl run tells
// its components when ManagerOptions sets none: with the default TTL of
// three intervals, a hung component is found within about 3 s.
const DefaultRunHeartbeatInterval = time.Second

// Manager builds the external components of one run: it checks each can be
// run, starts the embedded control plane when one speaks a gRPC protocol,
// and keeps the supervisors for their stats.
//
//	NewManager ──► Build (per component; the engine opens and closes them) ──► Close
type Manager struct {
	rt *Runtime

	mu   sync.Mutex
	sups map[string]*Supervisor
	cp   *controlplane.Server
	// none starts the `protocol: none` components in input order.
	none *noneGroup
}

// needsControlPlane reports whether protocol name is reached through the
// control plane.
func needsControlPlane(name string) bool { return name != "stdio" && name != "http" }

// protocolOf returns c's protocol name with the default applied.
func protocolOf(c *spec.Component) string {
	switch {
	case c.Protocol != "":
		return c.Protocol
	case c.Runner == spec.RunRemote:
		return "http"
	}
	return ProtocolAuto
}

// Check reports why c cannot be run by this build, nil if it can.
func Check(c *spec.Component) error {
	if isContainer(c) {
		if err := checkContainer(c); err != nil {
			return err
		}
	}
	name := protocolOf(c)
	if _, err := LookupProtocol(name); err != nil {
		return fmt.Errorf("component %q: %w", c.Name, err)
	}
	if c.Role == flow.RoleProcessor && (name == ProtocolV1 || name == ProtocolAuto) {
		if _, err := V1AnswerTimeout(c); err != nil {
			return err
		}
	}
	if c.Runner == spec.RunRemote && name == ProtocolGRPC && strings.HasPrefix(c.URL, GRPCScheme) {
		return nil // a node's component in another container (flowctl node --peer)
	}
	if c.Runner == spec.RunRemote && name != "http" {
		return fmt.Errorf("component %q has a url and protocol %q: a component flowctl does not start is reached over http; set `protocol: http` or give a command", c.Name, name)
	}
	return nil
}

// NewManager checks every external component of p and starts the
// embedded control plane on a loopback port if one needs it, guarded so
// that only the run's own components can register (controlplane.Guard).
// Close stops it.
func NewManager(p *spec.Pipeline, opts ManagerOptions) (*Manager, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultRunHeartbeatInterval
	}
	if opts.HeartbeatTTL < 0 {
		opts.HeartbeatTTL = 0
	}
	m := &Manager{
		rt: &Runtime{
			Pipeline: p.Name, Dir: opts.Dir, Logger: log.With("pipeline", p.Name),
			HeartbeatInterval: opts.HeartbeatInterval, HeartbeatTTL: opts.HeartbeatTTL,
			Output: opts.Output,
		},
		sups: map[string]*Supervisor{},
		none: newNoneGroup(),
	}
	needCP := false
	ttls := map[string]time.Duration{} // components' own TTLs (ownTTL)
	var errs []error
	for _, c := range append(p.Components(), p.DeadLetter) {
		if c == nil || !IsExternal(c) {
			continue
		}
		if err := Check(c); err != nil {
			errs = append(errs, err)
			continue
		}
		if c.Runner != spec.RunRemote && needsControlPlane(protocolOf(c)) {
			needCP = true
			ttl, err := ownTTL(c)
			if err != nil {
				errs = append(errs, err)
			} else if ttl > 0 {
				ttls[c.Name] = ttl
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if needCP {
		reg := controlplane.NewRegistry(controlplane.Options{HeartbeatInterval: opts.HeartbeatInterval, DefaultTTL: opts.HeartbeatTTL})
		for id, ttl := range ttls {
			reg.SetTTLFor(id, ttl)
		}
		// Loopback is open to every local user: only this run's
		// components may register (FLOWCTL_TOKEN, or the ids it starts).
		guard, err := controlplane.NewGuard()
		if err != nil {
			return nil, err
		}
		srv := controlplane.NewGuardedServer(reg, log.With("pipeline", p.Name, "part", "controlplane"), guard)
		addr, err := srv.Start("127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("start the embedded control plane: %w", err)
		}
		m.cp, m.rt.ControlPlane, m.rt.Endpoint = srv, srv, addr
		m.rt.HeartbeatInterval = reg.HeartbeatInterval()
		log.Debug("embedded control plane serving", "addr", addr)
	}
	return m, nil
}

// SetRuns gives the embedded control plane's flowctl.ControlPlane its run
// history (the current run); without a control plane it does nothing.
func (m *Manager) SetRuns(r controlplane.Runs) {
	if m.cp != nil {
		m.cp.SetRuns(r)
	}
}

// Runtime returns what the run's external components share.
func (m *Manager) Runtime() *Runtime { return m.rt }

// Build returns the adapter for c (a *Processor, *Sink or *Source: the
// engine opens it, which starts the component, and closes it). It starts
// nothing itself.
func (m *Manager) Build(c *spec.Component) (any, error) {
	if err := Check(c); err != nil {
		return nil, err
	}
	proto, err := LookupProtocol(protocolOf(c))
	if err != nil {
		return nil, err
	}
	s := NewSupervisor(m.rt, c, proto)
	m.mu.Lock()
	m.sups[c.Name] = s
	m.mu.Unlock()
	if proto.Name() == ProtocolNone {
		return m.none.add(c, s), nil
	}
	switch c.Role {
	case flow.RoleSource:
		return NewSource(s), nil
	case flow.RoleSink:
		return NewSink(s), nil
	default:
		return NewProcessor(s), nil
	}
}

// Supervisor returns the supervisor of the named component, nil if Build
// made none.
func (m *Manager) Supervisor(name string) *Supervisor {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sups[name]
}

// ComponentStats is one external component's counters, by name.
type ComponentStats struct {
	Name string
	Stats
}

// Stats returns every external component's counters, sorted by name.
func (m *Manager) Stats() []ComponentStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ComponentStats, 0, len(m.sups))
	for name, s := range m.sups {
		out = append(out, ComponentStats{Name: name, Stats: s.Stats()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Health returns every external component's health (see
// Supervisor.Health), by name.
func (m *Manager) Health() map[string]controlplane.Health {
	m.mu.Lock()
	sups := make(map[string]*Supervisor, len(m.sups))
	maps.Copy(sups, m.sups)
	m.mu.Unlock()
	out := make(map[string]controlplane.Health, len(sups))
	for name, s := range sups {
		out[name] = s.Health()
	}
	return out
}

// Close stops every component still running (the engine normally closed
// them already) and the embedded control plane.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	sups := make([]*Supervisor, 0, len(m.sups))
	for _, s := range m.sups {
		sups = append(sups, s)
	}
	m.mu.Unlock()
	var errs []error
	for _, s := range sups {
		if err := s.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.cp != nil {
		m.cp.Stop()
	}
	return errors.Join(errs...)
}

// WriteSummary writes the run summary's table of external components: per
// component its restarts and the batches and events sent to it again after
// an incarnation died (which it may have handled twice: possible
// duplicates). It writes nothing for no components.
func WriteSummary(w io.Writer, stats []ComponentStats) {
	if len(stats) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  external\trestarts\tredelivered batches\tredelivered events (possible duplicates)")
	v1 := false
	for _, c := range stats {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", c.Name, c.Restarts, c.RedeliveredBatches, c.RedeliveredEvents)
		v1 = v1 || c.V1Processor
	}
	tw.Flush()
	if !v1 {
		return
	}
	// flowctl.v1 processors cannot say "no output for this input": how
	// their inputs were settled (docs/protocols-v1.md, Processors).
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  flowctl.v1 processor\tno answer (counted filtered)\ttimed out (on_error)\tlate answers (delivered later)\tlate, not delivered")
	for _, c := range stats {
		if c.V1Processor {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\n", c.Name, c.V1NoAnswer, c.V1TimedOut, c.V1Late, c.V1LateUndelivered)
		}
	}
	tw.Flush()
}
