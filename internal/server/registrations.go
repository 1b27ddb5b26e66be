package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/pkg/wire/flowctlpb"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// restoreClock is the registry's clock: the system clock, except while
// registrations are restored at start, when it tells the time each was
// last seen — so a restored registration is as stale as it really is
// (UNHEALTHY until its component heartbeats again), never freshly healthy.
type restoreClock struct {
	at atomic.Pointer[time.Time]
}

func (c *restoreClock) Now() time.Time {
	if t := c.at.Load(); t != nil {
		return *t
	}
	return time.Now()
}

// restoreRegistrations puts the stored registrations back in the registry.
// Those of pipeline children are dropped instead: their processes died
// with the previous server, and the children started now register anew.
func (s *Server) restoreRegistrations(ctx context.Context) error {
	regs, err := s.opts.Store.ListRegistrations(ctx, "")
	if err != nil {
		return fmt.Errorf("server: list registrations: %w", err)
	}
	for _, r := range regs {
		if r.Pipeline != "" && r.Metadata[report.MetaPipeline] != "" {
			_ = s.opts.Store.DeleteRegistration(ctx, r.ID)
			continue
		}
		at := r.RegisteredAt
		s.clock.at.Store(&at)
		_, err := s.registry.Register(controlplane.Registration{
			ID: r.ID, Name: r.Name, Version: r.Version, Description: r.Description, Role: r.Role,
			Endpoint: r.Endpoint, InputTypes: r.InputTypes, OutputTypes: r.OutputTypes,
			Metadata: r.Metadata, TTL: r.TTL, Protocol: r.Protocol,
		})
		s.clock.at.Store(nil)
		if err != nil {
			s.log.Warn("dropping a stored registration that no longer registers", logKeyID, r.ID, logKeyError, err)
			_ = s.opts.Store.DeleteRegistration(ctx, r.ID)
		}
	}
	return nil
}

// dropRegistrations removes the registrations of a deleted pipeline from
// the registry and the store: every one whose metadata names the pipeline,
// every one the store files under it, and those with the ids of its
// components (PIPELINE/COMPONENT, components naming them). The caller has
// stopped the pipeline's child first, so nothing registers them again.
func (s *Server) dropRegistrations(ctx context.Context, pipeline string, components []string) {
	ids := map[string]bool{}
	for _, c := range components {
		ids[report.ID(pipeline, c)] = true
	}
	for _, e := range s.registry.Discover(controlplane.Query{IncludeUnhealthy: true, Metadata: map[string]string{report.MetaPipeline: pipeline}}) {
		ids[e.ID] = true
	}
	stored, err := s.opts.Store.ListRegistrations(ctx, pipeline)
	if err != nil {
		s.log.Warn("list the registrations of a deleted pipeline", logKeyPipeline, pipeline, logKeyError, err)
	}
	for _, r := range stored {
		ids[r.ID] = true
	}
	for id := range ids {
		s.registry.Deregister(id)
		if err := s.opts.Store.DeleteRegistration(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("delete the registration of a deleted pipeline", logKeyPipeline, pipeline, logKeyID, id, logKeyError, err)
		}
		// A flush already under way may have read the registration before
		// it went and write it back; noting the id makes the next flush
		// delete it again.
		s.persist.note(id)
	}
}

// regPersister writes registrations made through the control-plane
// services to the store, in the background: a registration call never
// waits for the disk, and a burst of registrations of one id is written
// once.
type regPersister struct {
	store store.Store
	reg   *controlplane.Registry
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{}
}

func newRegPersister(st store.Store, reg *controlplane.Registry, log *slog.Logger) *regPersister {
	return &regPersister{store: st, reg: reg, log: log, pending: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// Full method names of the calls that change registrations.
const (
	methodRegister       = "/flowctl.stream.v1.ControlPlaneService/Register"
	methodDeregister     = "/flowctl.stream.v1.ControlPlaneService/Deregister"
	methodV1Register     = "/flowctl.v1.ControlPlaneService/RegisterComponent"
	methodV1Unregister   = "/flowctl.v1.ControlPlaneService/UnregisterComponent"
	methodLegacyRegister = "/flowctl.ControlPlane/Register"
)

// interceptor notes the id of every successful (de)registration.
func (p *regPersister) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		return resp, err
	}
	var id string
	switch info.FullMethod {
	case methodRegister:
		id = req.(*streamv1.RegisterRequest).GetRegistration().GetId()
	case methodDeregister:
		id = req.(*streamv1.DeregisterRequest).GetId()
	case methodV1Register:
		id = resp.(*flowctlv1.RegisterResponse).GetServiceId()
	case methodV1Unregister:
		id = req.(*flowctlv1.UnregisterRequest).GetServiceId()
	case methodLegacyRegister:
		id = resp.(*flowctlpb.RegistrationAck).GetServiceId()
	default:
		return resp, err
	}
	if id != "" {
		p.note(id)
	}
	return resp, err
}

func (p *regPersister) note(id string) {
	p.mu.Lock()
	p.pending[id] = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run writes pending registrations until ctx is done.
func (p *regPersister) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
			p.flush(ctx)
		}
	}
}

// flush writes every pending registration as the registry has it now
// (deleting those no longer registered).
func (p *regPersister) flush(ctx context.Context) {
	p.mu.Lock()
	ids := p.pending
	p.pending = map[string]bool{}
	p.mu.Unlock()
	wctx := context.WithoutCancel(ctx)
	// Writes run side by side so that the store can batch them into few
	// transactions (a burst of thousands of registrations is one fsync per
	// batch, not per registration).
	sem := make(chan struct{}, flushParallel)
	var wg sync.WaitGroup
	for id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			e, ok := p.reg.Get(id)
			var err error
			if ok {
				err = p.store.PutRegistration(wctx, toStoreRegistration(e))
			} else if err = p.store.DeleteRegistration(wctx, id); errors.Is(err, store.ErrNotFound) {
				err = nil
			}
			if err != nil {
				p.log.Warn("save registration", logKeyID, id, logKeyError, err)
			}
		}()
	}
	wg.Wait()
}

// flushParallel is how many registration writes run at once.
const flushParallel = 64

func toStoreRegistration(e controlplane.Entry) store.Registration {
	return store.Registration{
		ID: e.ID, Pipeline: e.Metadata[report.MetaPipeline], Component: e.Metadata[report.MetaComponent],
		Name: e.Name, Version: e.Version, Description: e.Description, Role: e.Role,
		Endpoint: e.Endpoint, Protocol: e.Protocol, InputTypes: e.InputTypes, OutputTypes: e.OutputTypes,
		Metadata: e.Metadata, RegisteredAt: e.LastHeartbeat, TTL: e.TTL,
	}
}
