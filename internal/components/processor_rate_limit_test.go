package components

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

func TestRateLimitValidate(t *testing.T) {
	procCheckValidate(t, flow.RoleProcessor, "rate_limit", []procValidateCase{
		{"valid", flow.Config{"rate": 100.0}, nil},
		{"valid int rate", flow.Config{"rate": 100}, nil},
		{"valid slow with burst", flow.Config{"rate": 0.5, "burst": 1}, nil},
		{"missing rate", flow.Config{}, []string{"rate: is required — give events per second, for example rate: 100"}},
		{"zero rate", flow.Config{"rate": 0.0}, []string{"rate: must be greater than 0, got 0 — give events per second, for example rate: 100 or rate: 0.5; remove the processor for no limit"}},
		{"bad burst", flow.Config{"rate": 2.5, "burst": 0}, []string{"burst: must be at least 1, got 0 — leave it out for the default (3)"}},
		{"wrong types", flow.Config{"rate": "fast", "burst": 1.5}, []string{"rate: must be a number, got string", "burst: must be a whole number, got 1.5"}},
	})
}

func TestRateLimitBurstDefault(t *testing.T) {
	for _, tt := range []struct {
		rate  float64
		burst float64
	}{{100, 100}, {2.5, 3}, {0.1, 1}} {
		p := procNew(t, "rate_limit", flow.Config{"rate": tt.rate}).(*rateLimitProcessor)
		if p.burst != tt.burst {
			t.Errorf("rate %v: burst %v, want %v", tt.rate, p.burst, tt.burst)
		}
	}
}

// procTimeEvents passes n events through p from `workers` goroutines and
// returns how long it took.
func procTimeEvents(t *testing.T, p flow.Processor, n, workers int) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				in := procEvent("src:1", "t", `{}`)
				out, err := p.Process(context.Background(), in, nil)
				if err != nil || len(out) != 1 || out[0] != in {
					t.Errorf("Process = %v, %v; want the event itself", out, err)
					return
				}
				mu.Lock()
				passed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if passed != n {
		t.Fatalf("%d of %d events passed", passed, n)
	}
	return time.Since(start)
}

func TestRateLimitProcess(t *testing.T) {
	tests := []struct {
		name     string
		cfg      flow.Config
		n        int
		workers  int
		min, max time.Duration
	}{
		// The burst passes at once (5 events at 10/s would take 400ms
		// without it); the rest at the rate. Upper bounds are loose: the
		// machine may be busy.
		{"burst passes at once", flow.Config{"rate": 10.0, "burst": 5}, 5, 1, 0, 300 * time.Millisecond},
		{"then the rate", flow.Config{"rate": 100.0, "burst": 5}, 15, 1, 90 * time.Millisecond, time.Second},
		// Workers share one bucket: the limit is the component's.
		{"shared by workers", flow.Config{"rate": 200.0, "burst": 1}, 41, 4, 190 * time.Millisecond, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := procNew(t, "rate_limit", tt.cfg)
			took := procTimeEvents(t, p, tt.n, tt.workers)
			if took < tt.min || took > tt.max {
				t.Errorf("%d events took %v, want between %v and %v", tt.n, took, tt.min, tt.max)
			}
		})
	}
}

func TestRateLimitRespectsContext(t *testing.T) {
	p := procNew(t, "rate_limit", flow.Config{"rate": 1.0, "burst": 1})
	if out, err := p.Process(context.Background(), procEvent("a", "t", `{}`), nil); err != nil || len(out) != 1 {
		t.Fatalf("first event: %v, %v", out, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	out, err := p.Process(ctx, procEvent("b", "t", `{}`), nil)
	if !errors.Is(err, context.DeadlineExceeded) || len(out) != 0 {
		t.Fatalf("blocked event: %v, %v; want context.DeadlineExceeded and no output", out, err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Process returned %v after ctx was done", took)
	}
	// The abandoned wait gave its token back: the debt is one event's
	// worth at most, not two.
	rl := p.(*rateLimitProcessor)
	rl.mu.Lock()
	tokens := rl.tokens
	rl.mu.Unlock()
	if tokens < -0.01 {
		t.Errorf("tokens = %v after an abandoned wait, want about 0", tokens)
	}
}
