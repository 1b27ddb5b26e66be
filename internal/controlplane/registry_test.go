package controlplane

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func ids(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestRegistryDiscover(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(Options{Clock: clock, HeartbeatInterval: time.Second})
	regs := []Registration{
		{ID: "src", Role: flow.RoleSource, Endpoint: "127.0.0.1:1", OutputTypes: []string{"payment"}},
		{ID: "enrich", Role: flow.RoleProcessor, Endpoint: "127.0.0.1:2", InputTypes: []string{"payment"},
			OutputTypes: []string{"payment.enriched"}, Metadata: map[string]string{"team": "risk", "tier": "1"}},
		{ID: "out", Role: flow.RoleSink, Endpoint: "127.0.0.1:3", InputTypes: []string{"payment.enriched"},
			Metadata: map[string]string{"team": "risk"}, TTL: 10 * time.Second},
	}
	for _, reg := range regs {
		if _, err := r.Register(reg); err != nil {
			t.Fatal(err)
		}
	}
	// After 5s only "out" (TTL 10s) is within its TTL; the others have the
	// default 3s.
	clock.Advance(5 * time.Second)
	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"all, unhealthy too", Query{IncludeUnhealthy: true}, []string{"enrich", "out", "src"}},
		{"healthy only", Query{}, []string{"out"}},
		{"by role", Query{Role: flow.RoleProcessor, IncludeUnhealthy: true}, []string{"enrich"}},
		{"by input or output type", Query{EventTypes: []string{"payment"}, IncludeUnhealthy: true}, []string{"enrich", "src"}},
		{"any of several types", Query{EventTypes: []string{"nope", "payment.enriched"}, IncludeUnhealthy: true}, []string{"enrich", "out"}},
		{"all metadata pairs", Query{Metadata: map[string]string{"team": "risk", "tier": "1"}, IncludeUnhealthy: true}, []string{"enrich"}},
		{"metadata value differs", Query{Metadata: map[string]string{"team": "ops"}, IncludeUnhealthy: true}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ids(r.Discover(c.q))
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestRegistryLifecycle(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(Options{Clock: clock, HeartbeatInterval: time.Second})
	if got := r.DefaultTTL(); got != 3*time.Second {
		t.Fatalf("default TTL = %v, want 3 heartbeat intervals", got)
	}
	steps := []struct {
		name    string
		do      func() error
		advance time.Duration
		want    Health // HealthUnknown: expect not registered
	}{
		{"register", func() error {
			_, err := r.Register(Registration{ID: "p", Role: flow.RoleProcessor, Endpoint: "127.0.0.1:9"})
			return err
		}, 0, HealthHealthy},
		{"within TTL", nil, 3 * time.Second, HealthHealthy},
		{"TTL passed", nil, time.Millisecond, HealthUnhealthy},
		{"heartbeat revives", func() error { _, err := r.Heartbeat("p", HealthUnknown, nil); return err }, 0, HealthHealthy},
		{"reported degraded", func() error { _, err := r.Heartbeat("p", HealthDegraded, map[string]string{"lag": "3"}); return err }, 0, HealthDegraded},
		{"unknown keeps reported", func() error { _, err := r.Heartbeat("p", HealthUnknown, nil); return err }, 0, HealthDegraded},
		{"deregister", func() error {
			if !r.Deregister("p") {
				return errors.New("not removed")
			}
			return nil
		}, 0, HealthUnknown},
	}
	for _, s := range steps {
		if s.do != nil {
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		clock.Advance(s.advance)
		e, ok := r.Get("p")
		if s.want == HealthUnknown {
			if ok {
				t.Fatalf("%s: still registered", s.name)
			}
			continue
		}
		if !ok || e.Health != s.want {
			t.Fatalf("%s: health = %v (registered %v), want %v", s.name, e.Health, ok, s.want)
		}
	}
	if _, err := r.Heartbeat("p", HealthHealthy, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat after deregister: %v, want ErrNotFound", err)
	}
}

func TestRegisterInvalid(t *testing.T) {
	r := NewRegistry(Options{})
	for name, reg := range map[string]Registration{
		"no id":        {Endpoint: "127.0.0.1:1"},
		"no endpoint":  {ID: "x"},
		"negative ttl": {ID: "x", Endpoint: "127.0.0.1:1", TTL: -time.Second},
	} {
		if _, err := r.Register(reg); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestWaitRegistered(t *testing.T) {
	r := NewRegistry(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.WaitRegistered(ctx, "late"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait without registration: %v, want deadline exceeded", err)
	}

	got := make(chan Entry, 1)
	go func() {
		e, err := r.WaitRegistered(context.Background(), "late")
		if err != nil {
			t.Error(err)
		}
		got <- e
	}()
	time.Sleep(10 * time.Millisecond)
	if _, err := r.Register(Registration{ID: "other", Endpoint: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(Registration{ID: "late", Endpoint: "127.0.0.1:7"}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Endpoint != "127.0.0.1:7" {
			t.Fatalf("endpoint = %q", e.Endpoint)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitRegistered did not wake up")
	}
	if ep, ok := r.Endpoint("late"); !ok || ep != "127.0.0.1:7" {
		t.Fatalf("Endpoint = %q, %v", ep, ok)
	}
}

// TestWaitRegisteredSince: after a restart, the predecessor's entry does
// not count; the new process's registration does.
func TestWaitRegisteredSince(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(Options{Clock: clock})
	if _, err := r.Register(Registration{ID: "p", Endpoint: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	restarted := clock.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.WaitRegisteredSince(ctx, "p", restarted); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("old entry satisfied the wait: %v", err)
	}
	if _, err := r.Register(Registration{ID: "p", Endpoint: "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	e, err := r.WaitRegisteredSince(context.Background(), "p", restarted)
	if err != nil || e.Endpoint != "127.0.0.1:2" {
		t.Fatalf("got %+v %v, want the new endpoint", e, err)
	}
}

func TestWatchOverflowDropsWatcher(t *testing.T) {
	r := NewRegistry(Options{})
	w := r.Watch(context.Background(), false)
	for i := 0; i <= watchBuffer; i++ {
		if _, err := r.Register(Registration{ID: "x", Endpoint: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range w.C {
		n++
	}
	if n != watchBuffer || !errors.Is(w.Err(), ErrWatchOverflow) {
		t.Fatalf("got %d changes, err %v; want %d and ErrWatchOverflow", n, w.Err(), watchBuffer)
	}
}

// TestSetTTLFor: a registration that carries no TTL takes its id's own
// default when one is set, the registry's otherwise; one that carries a
// TTL keeps it.
func TestSetTTLFor(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(Options{Clock: clock, HeartbeatInterval: time.Second})
	r.SetTTLFor("slow", 30*time.Second)
	r.SetTTLFor("cleared", 30*time.Second)
	r.SetTTLFor("cleared", 0)
	tests := []struct {
		id   string
		ttl  time.Duration // what the registration carries
		want time.Duration
	}{
		{"slow", 0, 30 * time.Second},
		{"slow", 5 * time.Second, 5 * time.Second},
		{"other", 0, 3 * time.Second},
		{"cleared", 0, 3 * time.Second},
	}
	for _, tc := range tests {
		e, err := r.Register(Registration{ID: tc.id, Role: flow.RoleSource, Endpoint: "127.0.0.1:9", TTL: tc.ttl})
		if err != nil {
			t.Fatal(err)
		}
		if e.TTL != tc.want {
			t.Errorf("%s registered with TTL %v: got %v, want %v", tc.id, tc.ttl, e.TTL, tc.want)
		}
	}
	// The id's TTL is what keeps it healthy: 29 s of silence is fine.
	r.Register(Registration{ID: "slow", Role: flow.RoleSource, Endpoint: "127.0.0.1:9"})
	clock.Advance(29 * time.Second)
	if e, _ := r.Get("slow"); e.Health != HealthHealthy {
		t.Fatalf("after 29 s of a 30 s TTL: %v", e.Health)
	}
	clock.Advance(2 * time.Second)
	if e, _ := r.Get("slow"); e.Health != HealthUnhealthy {
		t.Fatalf("after 31 s of a 30 s TTL: %v", e.Health)
	}
}
