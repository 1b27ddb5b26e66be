package components

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleProcessor,
		Name:    "rate_limit",
		Summary: "Lets events through at most at a given rate, holding the rest back (backpressure, nothing is dropped).",
		Fields: []flow.Field{
			{
				Name:        "rate",
				Type:        flow.TypeNumber,
				Required:    true,
				Description: "Events per second, for example 100 or 0.5.",
				Example:     100,
			},
			{
				Name:        "burst",
				Type:        flow.TypeInt,
				Description: "How many events may pass at once after a quiet period. Default: rate rounded up (at least 1).",
				Example:     10,
			},
		},
		Examples: []string{
			"rate: 100",
			"rate: 0.5\nburst: 1",
		},
		Validate: validateWith(parseRateLimit),
		New: func(bc flow.BuildContext) (any, error) {
			return parseRateLimit(bc.Config)
		},
	})
}

// rateLimitProcessor is a token bucket shared by all the component's
// workers: it holds burst tokens, refills rate tokens a second, and every
// event takes one. An event that finds the bucket empty waits for its
// token inside Process, so the slowdown reaches the source through the
// engine's bounded queues instead of events being dropped.
type rateLimitProcessor struct {
	rate  float64 // tokens per second
	burst float64

	mu     sync.Mutex
	tokens float64   // may go negative: tokens promised to waiting events
	last   time.Time // when tokens was last brought up to date
}

func parseRateLimit(cfg flow.Config) (*rateLimitProcessor, error) {
	var errs []error
	rate, err := cfgNumber(cfg, "rate", 0)
	switch {
	case err != nil:
		errs = append(errs, err)
	case cfg["rate"] == nil:
		errs = append(errs, fieldErr("rate", "is required", "give events per second, for example rate: 100"))
	case rate <= 0:
		errs = append(errs, fieldErr("rate", fmt.Sprintf("must be greater than 0, got %v", rate), "give events per second, for example rate: 100 or rate: 0.5; remove the processor for no limit"))
	}
	def := 1
	if err == nil && rate > 0 {
		def = max(1, int(math.Min(math.Ceil(rate), math.MaxInt32)))
	}
	burst, err := cfgInt(cfg, "burst", def)
	switch {
	case err != nil:
		errs = append(errs, err)
	case burst < 1:
		errs = append(errs, fieldErr("burst", fmt.Sprintf("must be at least 1, got %d", burst), fmt.Sprintf("leave it out for the default (%d)", def)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &rateLimitProcessor{rate: rate, burst: float64(burst), tokens: float64(burst)}, nil
}

// reserve takes a token and returns how long the caller must wait until it
// is really available (0: now).
func (r *rateLimitProcessor) reserve(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.After(r.last) {
		r.tokens = math.Min(r.burst, r.tokens+now.Sub(r.last).Seconds()*r.rate)
	}
	if now.After(r.last) {
		r.last = now
	}
	r.tokens--
	if r.tokens >= 0 {
		return 0
	}
	return time.Duration(-r.tokens / r.rate * float64(time.Second))
}

// unreserve gives back a token whose event gave up waiting.
func (r *rateLimitProcessor) unreserve() {
	r.mu.Lock()
	r.tokens = math.Min(r.burst, r.tokens+1)
	r.mu.Unlock()
}

// Process blocks until the event's token is available and then appends it
// unchanged. It returns ctx.Err() if ctx is done first. Safe for
// concurrent use: workers share one bucket, so the rate is the
// component's, not each worker's.
func (r *rateLimitProcessor) Process(ctx context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	if wait := r.reserve(time.Now()); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.unreserve()
			return out, ctx.Err()
		}
	}
	return append(out, in), nil
}

var _ flow.Processor = (*rateLimitProcessor)(nil)
