package controlplane

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// Protocol names say which control-plane API a component registered
// through, and so which stream services it serves on its endpoint.
const (
	// ProtocolStream is flowctl's native protocol (flowctl.stream.v1).
	ProtocolStream = "flowctl.stream.v1"
	// ProtocolV1 is the earlier flowctl's contract (flowctl.v1).
	ProtocolV1 = "flowctl.v1"
)

// Defaults used when Options leaves a field zero.
const (
	// DefaultHeartbeatInterval matches FLOWCTL_HEARTBEAT_INTERVAL of the
	// compat page.
	DefaultHeartbeatInterval = 10 * time.Second
	// DefaultTTLFactor sets the default TTL to three heartbeat intervals, so
	// one lost heartbeat never flags a component.
	DefaultTTLFactor = 3
	// watchBuffer is how many changes a watcher may lag behind before it is
	// dropped (a slow watcher must not block registrations).
	watchBuffer = 256
)

// Health is a component's health. The values equal the HealthStatus
// numbers of both wire protocols.
type Health int32

// Health values.
const (
	HealthUnknown   Health = 0
	HealthStarting  Health = 1
	HealthHealthy   Health = 2
	HealthDegraded  Health = 3
	HealthUnhealthy Health = 4
	HealthStopping  Health = 5
)

// String returns the lower-case name of h, as shown to users.
func (h Health) String() string {
	switch h {
	case HealthStarting:
		return "starting"
	case HealthHealthy:
		return "healthy"
	case HealthDegraded:
		return "degraded"
	case HealthUnhealthy:
		return "unhealthy"
	case HealthStopping:
		return "stopping"
	default:
		return "unknown"
	}
}

// Clock tells the time. Tests inject a fake one to expire TTLs without
// sleeping.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Registration is what a component tells the control plane about itself:
// the desired state of its entry.
type Registration struct {
	// ID is the component's id in the pipeline (FLOWCTL_COMPONENT_ID).
	ID string
	// Name and Version describe the component's kind.
	Name, Version string
	// Description says what it does (flowctl.v1 components send one).
	Description string
	// Role is the component's role.
	Role flow.Role
	// Endpoint is the host:port where it serves its stream service.
	Endpoint string
	// InputTypes and OutputTypes are the event types it accepts and
	// produces.
	InputTypes, OutputTypes []string
	// Metadata holds free-form labels, matched by Query.Metadata.
	Metadata map[string]string
	// TTL is how long a heartbeat keeps it healthy; 0 means the registry's
	// default.
	TTL time.Duration
	// Protocol is ProtocolStream, ProtocolV1 or ProtocolLegacy, set by the
	// service it registered through.
	Protocol string
}

// Entry is a registration with what the registry observed: the status of
// one component. Entries returned by the registry are copies; changing one
// changes nothing.
type Entry struct {
	Registration
	// Health is the effective health: HealthUnhealthy when LastHeartbeat
	// is older than TTL, otherwise Reported.
	Health Health
	// Reported is the health the component last reported (HealthHealthy
	// after registering).
	Reported Health
	// RegisteredAt is when it (last) registered.
	RegisteredAt time.Time
	// LastHeartbeat is when it last registered or heartbeated.
	LastHeartbeat time.Time
	// Metrics are the metrics of its last heartbeat.
	Metrics map[string]string
}

// ChangeKind says what happened to an entry.
type ChangeKind int

// Change kinds; the values equal flowctl.stream.v1's ChangeKind numbers.
const (
	ChangeAdded   ChangeKind = 1 // a new id registered
	ChangeUpdated ChangeKind = 2 // an id registered again
	ChangeHealth  ChangeKind = 3 // the effective health changed
	ChangeRemoved ChangeKind = 4 // the id deregistered
)

// String returns the lower-case name of k.
func (k ChangeKind) String() string {
	switch k {
	case ChangeAdded:
		return "added"
	case ChangeUpdated:
		return "updated"
	case ChangeHealth:
		return "health"
	case ChangeRemoved:
		return "removed"
	default:
		return fmt.Sprintf("change(%d)", int(k))
	}
}

// Change is one registry change, delivered to watchers. Every watcher
// gets the same Entry: its maps and slices are shared and read-only.
type Change struct {
	Kind ChangeKind
	// Entry is the entry after the change (before it, for ChangeRemoved).
	Entry Entry
}

// Query selects entries for Discover. Zero fields match anything.
type Query struct {
	// Role keeps entries of this role.
	Role flow.Role
	// EventTypes keeps entries that accept or produce any of these types.
	EventTypes []string
	// Metadata keeps entries whose metadata has all these pairs.
	Metadata map[string]string
	// IncludeUnhealthy keeps entries whose health is HealthUnhealthy.
	IncludeUnhealthy bool
}

// Options configure a Registry. The zero value is usable.
type Options struct {
	// Clock tells the time; nil means the system clock.
	Clock Clock
	// HeartbeatInterval is the interval components are told to heartbeat
	// at; 0 means DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// DefaultTTL applies to registrations without a TTL; 0 means
	// DefaultTTLFactor heartbeat intervals.
	DefaultTTL time.Duration
}

// Registry is the in-memory registry of components. It is safe for
// concurrent use. Health is computed on every read from the clock, so reads
// are always true to the TTL; Sweep (run periodically by Run) only turns TTL
// expiries into Changes for watchers.
type Registry struct {
	clock    Clock
	interval time.Duration
	ttl      time.Duration

	mu       sync.Mutex
	entries  map[string]*record
	idTTL    map[string]time.Duration // SetTTLFor: defaults of single ids
	watchers map[*Watcher]struct{}
	// changed is closed and replaced on every change, waking WaitRegistered.
	changed chan struct{}
}

// record is an entry plus the health last announced to watchers, so that a
// TTL expiry is announced once.
type record struct {
	e         Entry
	announced Health
}

// NewRegistry returns an empty registry.
func NewRegistry(opts Options) *Registry {
	r := &Registry{
		clock:    opts.Clock,
		interval: opts.HeartbeatInterval,
		ttl:      opts.DefaultTTL,
		entries:  map[string]*record{},
		idTTL:    map[string]time.Duration{},
		watchers: map[*Watcher]struct{}{},
		changed:  make(chan struct{}),
	}
	if r.clock == nil {
		r.clock = systemClock{}
	}
	if r.interval <= 0 {
		r.interval = DefaultHeartbeatInterval
	}
	if r.ttl <= 0 {
		r.ttl = DefaultTTLFactor * r.interval
	}
	return r
}

// HeartbeatInterval is the interval components should heartbeat at.
func (r *Registry) HeartbeatInterval() time.Duration { return r.interval }

// DefaultTTL is the TTL of registrations that do not set one.
func (r *Registry) DefaultTTL() time.Duration { return r.ttl }

// SetTTLFor gives registrations of id that set no TTL of their own ttl
// instead of DefaultTTL; 0 removes it. flowctl.v1 and flowctl.ControlPlane
// registrations carry no TTL, so this is how a component's own heartbeat
// settings (its env's FLOWCTL_TTL or FLOWCTL_HEARTBEAT_INTERVAL) reach the
// registry.
func (r *Registry) SetTTLFor(id string, ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ttl <= 0 {
		delete(r.idTTL, id)
		return
	}
	r.idTTL[id] = ttl
}

// Register adds or replaces the entry for reg.ID and counts as a heartbeat.
// The entry starts HealthHealthy: a component registers once it serves.
func (r *Registry) Register(reg Registration) (Entry, error) {
	if reg.ID == "" {
		return Entry{}, fmt.Errorf("%w: id is empty (set FLOWCTL_COMPONENT_ID)", ErrInvalid)
	}
	// flowctl.ControlPlane's components move their data themselves: they
	// register no endpoint.
	if reg.Endpoint == "" && reg.Protocol != ProtocolLegacy {
		return Entry{}, fmt.Errorf("%w: component %q has no endpoint (the host:port it serves on)", ErrInvalid, reg.ID)
	}
	if reg.TTL < 0 {
		return Entry{}, fmt.Errorf("%w: component %q has a negative TTL", ErrInvalid, reg.ID)
	}
	if reg.Protocol == "" {
		reg.Protocol = ProtocolStream
	}
	reg.InputTypes = slices.Clone(reg.InputTypes)
	reg.OutputTypes = slices.Clone(reg.OutputTypes)
	reg.Metadata = maps.Clone(reg.Metadata)
	now := r.clock.Now()

	r.mu.Lock()
	defer r.mu.Unlock()
	if reg.TTL == 0 {
		reg.TTL = r.ttl
		if t, ok := r.idTTL[reg.ID]; ok {
			reg.TTL = t
		}
	}
	kind := ChangeAdded
	if _, ok := r.entries[reg.ID]; ok {
		kind = ChangeUpdated
	}
	rec := &record{e: Entry{
		Registration:  reg,
		Reported:      HealthHealthy,
		RegisteredAt:  now,
		LastHeartbeat: now,
	}}
	rec.announced = r.health(rec, now)
	r.entries[reg.ID] = rec
	e := r.snapshot(rec, now)
	r.notify(Change{Kind: kind, Entry: e})
	return e, nil
}

// Heartbeat renews the TTL of id and records the health it reports
// (HealthUnknown keeps the previous one) and its metrics. It returns
// ErrNotFound for an unknown id: the component must register again.
func (r *Registry) Heartbeat(id string, reported Health, metrics map[string]string) (Entry, error) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.entries[id]
	if !ok {
		return Entry{}, fmt.Errorf("heartbeat %q: %w", id, ErrNotFound)
	}
	rec.e.LastHeartbeat = now
	if reported != HealthUnknown {
		rec.e.Reported = reported
	}
	if metrics != nil {
		rec.e.Metrics = maps.Clone(metrics)
	}
	r.announce(rec, now)
	return r.snapshot(rec, now), nil
}

// Deregister removes id. It reports whether id was registered.
func (r *Registry) Deregister(id string) bool {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.entries[id]
	if !ok {
		return false
	}
	delete(r.entries, id)
	r.notify(Change{Kind: ChangeRemoved, Entry: r.snapshot(rec, now)})
	return true
}

// Get returns the entry of id.
func (r *Registry) Get(id string) (Entry, bool) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.entries[id]
	if !ok {
		return Entry{}, false
	}
	return r.snapshot(rec, now), true
}

// Endpoint returns the host:port id registered, if it is registered.
func (r *Registry) Endpoint(id string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.entries[id]
	if !ok {
		return "", false
	}
	return rec.e.Endpoint, true
}

// List returns every entry, healthy or not, ordered by id.
func (r *Registry) List() []Entry {
	return r.Discover(Query{IncludeUnhealthy: true})
}

// Discover returns the entries matching q, ordered by id.
func (r *Registry) Discover(q Query) []Entry {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Entry
	for _, rec := range r.entries {
		e := r.snapshot(rec, now)
		if q.matches(e) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (q Query) matches(e Entry) bool {
	if q.Role != "" && e.Role != q.Role {
		return false
	}
	if !q.IncludeUnhealthy && e.Health == HealthUnhealthy {
		return false
	}
	if len(q.EventTypes) > 0 {
		found := false
		for _, t := range q.EventTypes {
			if slices.Contains(e.InputTypes, t) || slices.Contains(e.OutputTypes, t) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for k, v := range q.Metadata {
		if got, ok := e.Metadata[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// WaitRegistered blocks until id is registered and returns its entry, or
// returns ctx's error. flowctl calls it after starting a component, with a
// context bounded by the component's startup_timeout. An entry left by an
// earlier process of the same id satisfies it at once: after a restart,
// use WaitRegisteredSince (or Deregister the id when the old process exits).
func (r *Registry) WaitRegistered(ctx context.Context, id string) (Entry, error) {
	return r.WaitRegisteredSince(ctx, id, time.Time{})
}

// WaitRegisteredSince is WaitRegistered for a registration made after
// since (by the registry's clock): pass the time a restarted process was
// started to wait for its own registration, not its predecessor's.
func (r *Registry) WaitRegisteredSince(ctx context.Context, id string, since time.Time) (Entry, error) {
	for {
		now := r.clock.Now()
		r.mu.Lock()
		rec, ok := r.entries[id]
		var e Entry
		if ok {
			e = r.snapshot(rec, now)
			ok = !e.RegisteredAt.Before(since)
		}
		wake := r.changed
		r.mu.Unlock()
		if ok {
			return e, nil
		}
		select {
		case <-ctx.Done():
			return Entry{}, fmt.Errorf("wait for component %q to register: %w", id, ctx.Err())
		case <-wake:
		}
	}
}

// Sweep announces TTL expiries (and recoveries) to watchers as
// ChangeHealth. Reads never depend on it.
func (r *Registry) Sweep() {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.entries {
		r.announce(rec, now)
	}
}

// Run calls Sweep every interval until ctx is done.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Sweep()
		}
	}
}

// Watcher receives registry changes on C until its context ends or it falls
// more than a buffer behind; then C is closed and Err says why.
type Watcher struct {
	// C delivers changes in the order they happened.
	C <-chan Change

	c    chan Change
	mu   sync.Mutex
	err  error
	stop func() bool
}

// Err returns why C was closed: ctx's error or ErrWatchOverflow. It is nil
// while C is open.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Watch returns a watcher of changes from now on; with initial, it first
// delivers one ChangeAdded per existing entry (ordered by id), so that a
// watcher never misses an entry registered before it started.
func (r *Registry) Watch(ctx context.Context, initial bool) *Watcher {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var first []Change
	if initial {
		for _, rec := range r.entries {
			first = append(first, Change{Kind: ChangeAdded, Entry: r.snapshot(rec, now)})
		}
		sort.Slice(first, func(i, j int) bool { return first[i].Entry.ID < first[j].Entry.ID })
	}
	c := make(chan Change, watchBuffer+len(first))
	for _, ch := range first {
		c <- ch
	}
	w := &Watcher{C: c, c: c}
	r.watchers[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.dropLocked(w, ctx.Err())
	})
	return w
}

// dropLocked closes w's channel once. r.mu must be held.
func (r *Registry) dropLocked(w *Watcher, err error) {
	if _, ok := r.watchers[w]; !ok {
		return
	}
	delete(r.watchers, w)
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	close(w.c)
}

// health is rec's effective health at now.
func (r *Registry) health(rec *record, now time.Time) Health {
	if now.Sub(rec.e.LastHeartbeat) > rec.e.TTL {
		return HealthUnhealthy
	}
	return rec.e.Reported
}

// announce sends a ChangeHealth if rec's effective health differs from the
// last one announced. r.mu must be held.
func (r *Registry) announce(rec *record, now time.Time) {
	h := r.health(rec, now)
	if h == rec.announced {
		return
	}
	rec.announced = h
	r.notify(Change{Kind: ChangeHealth, Entry: r.snapshot(rec, now)})
}

// snapshot copies rec for a caller. r.mu must be held.
func (r *Registry) snapshot(rec *record, now time.Time) Entry {
	e := rec.e
	e.InputTypes = slices.Clone(e.InputTypes)
	e.OutputTypes = slices.Clone(e.OutputTypes)
	e.Metadata = maps.Clone(e.Metadata)
	e.Metrics = maps.Clone(e.Metrics)
	e.Health = r.health(rec, now)
	return e
}

// notify delivers ch to every watcher without blocking and wakes
// WaitRegistered. r.mu must be held.
func (r *Registry) notify(ch Change) {
	for w := range r.watchers {
		select {
		case w.c <- ch:
		default:
			w.stop()
			r.dropLocked(w, ErrWatchOverflow)
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}
