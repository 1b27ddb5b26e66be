package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// endpoint is a real HTTP server (httptest, loopback) standing for a
// sink's endpoint: while down it answers every request with status (503
// unless set) and counts it; while up it takes the batch and records the
// ids it holds.
type endpoint struct {
	srv        *httptest.Server
	up         atomic.Bool
	status     int
	retryAfter string

	refused  atomic.Int64 // requests answered with an error status
	accepted atomic.Int64 // requests taken

	mu    sync.Mutex
	ids   map[float64]int // id → times received
	times []time.Time     // of every request

	// notify, when set, gets the number of refused requests after each.
	notify func(refused int64)
}

func newEndpoint(t *testing.T) *endpoint {
	ep := &endpoint{ids: map[float64]int{}, status: http.StatusServiceUnavailable}
	ep.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ep.mu.Lock()
		ep.times = append(ep.times, time.Now())
		ep.mu.Unlock()
		if !ep.up.Load() {
			if ep.retryAfter != "" {
				w.Header().Set("Retry-After", ep.retryAfter)
			}
			http.Error(w, "endpoint down", ep.status)
			n := ep.refused.Add(1)
			if ep.notify != nil {
				ep.notify(n)
			}
			return
		}
		var batch []struct {
			ID float64 `json:"id"`
		}
		if err := json.Unmarshal(body, &batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ep.mu.Lock()
		for _, e := range batch {
			ep.ids[e.ID]++
		}
		ep.mu.Unlock()
		ep.accepted.Add(1)
	}))
	t.Cleanup(ep.srv.Close)
	return ep
}

// received returns how many distinct ids arrived and how many arrived more
// than once.
func (ep *endpoint) received() (distinct, repeated int) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	for _, n := range ep.ids {
		distinct++
		if n > 1 {
			repeated++
		}
	}
	return distinct, repeated
}

// countedSink wraps the real http sink and counts the engine's attempts
// (Write calls), so requests can be compared with them.
type countedSink struct {
	flow.Sink
	writes atomic.Int64
}

func (s *countedSink) Write(ctx context.Context, b []*flow.Event) error {
	s.writes.Add(1)
	return s.Sink.Write(ctx, b)
}

func (s *countedSink) Close(ctx context.Context) error {
	if c, ok := s.Sink.(flow.Closer); ok {
		return c.Close(ctx)
	}
	return nil
}

// memDead is a dead-letter sink that keeps what it got.
type memDead struct {
	mu     sync.Mutex
	events []*flow.Event
}

func (s *memDead) Write(_ context.Context, b []*flow.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, b...)
	return nil
}

func (s *memDead) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// retryPipeline builds the pipeline `yaml` (its http sink's url is
// ${URL}) with the real built-ins, the http sink wrapped in a countedSink
// and a `mem` dead-letter sink.
func retryPipeline(t *testing.T, ep *endpoint, yaml string) (*engine.Engine, *countedSink, *memDead) {
	t.Helper()
	reg := components.NewRegistry()
	httpSpec, err := reg.Lookup(flow.RoleSink, "http")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countedSink{}
	dead := &memDead{}
	reg.MustRegister(&flow.ComponentSpec{Role: flow.RoleSink, Name: "counted_http", Summary: "test sink",
		Fields: httpSpec.Fields, Validate: httpSpec.Validate,
		New: func(bc flow.BuildContext) (any, error) {
			s, err := httpSpec.New(bc)
			if err != nil {
				return nil, err
			}
			counted.Sink = s.(flow.Sink)
			return counted, nil
		}})
	reg.MustRegister(&flow.ComponentSpec{Role: flow.RoleSink, Name: "mem", Summary: "test sink",
		New: func(flow.BuildContext) (any, error) { return dead, nil }})
	p, diags := spec.Parse("pipeline.yaml", []byte(strings.ReplaceAll(yaml, "${URL}", ep.srv.URL)), spec.Options{Registry: reg})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	e, err := engine.New(p, reg, engine.Options{Grace: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return e, counted, dead
}

func componentStats(e *engine.Engine, name string) engine.ComponentStats {
	for _, c := range e.Stats().Components {
		if c.Name == name {
			return c
		}
	}
	return engine.ComponentStats{}
}

// waitFor signals when the endpoint refused n requests.
func (ep *endpoint) waitFor(n int64) <-chan struct{} {
	ch := make(chan struct{})
	var once sync.Once
	ep.notify = func(got int64) {
		if got >= n {
			once.Do(func() { close(ch) })
		}
	}
	return ch
}

func within(t *testing.T, what string, ch <-chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// TestHTTPSinkWaitsForDeadEndpoint: with the default on_error a sink whose
// endpoint is down retries for ever — one request per engine attempt —,
// holds the source back, shows as degraded or unhealthy with the reason,
// and delivers every event exactly once when the endpoint comes back.
func TestHTTPSinkWaitsForDeadEndpoint(t *testing.T) {
	const total = 20000
	ep := newEndpoint(t)
	e, counted, _ := retryPipeline(t, ep, fmt.Sprintf(`
name: wait
sources:
  - {name: gen, type: generate, config: {count: %d, expr: '{"id": i}'}}
sinks:
  - name: out
    type: counted_http
    inputs: [gen]
    buffer: 512
    on_error: {backoff: 2ms, max_backoff: 20ms}
    config: {url: "${URL}"}
`, total))
	// 40 failed attempts: far past the 3 (× 5 inner retries) after which
	// the pipeline used to stop.
	down := ep.waitFor(40)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	within(t, "40 refused requests", down, 20*time.Second)

	select {
	case err := <-errc:
		t.Fatalf("the run ended while the endpoint was down: %v", err)
	default:
	}
	st := componentStats(e, "out")
	if st.Health == engine.HealthHealthy || !strings.Contains(st.Reason, "status 503") || !strings.Contains(st.Reason, "retrying for") {
		t.Errorf("sink health %q, reason %q: want degraded or unhealthy, saying it retries after a 503", st.Health, st.Reason)
	}
	if st.Out != 0 || st.Retries == 0 || st.Errors == 0 {
		t.Errorf("while down: out %d, retries %d, errors %d (want 0, >0, >0: counters move while retrying)", st.Out, st.Retries, st.Errors)
	}
	// Backpressure: the generator stops at what the queue and the batch
	// in hand hold, far from its count.
	if emitted := componentStats(e, "gen").Out; emitted > 512+3*flow.MaxBatch {
		t.Errorf("the source emitted %d events while the sink was stuck (bound %d)", emitted, 512+3*flow.MaxBatch)
	}
	// One request per engine attempt: no retry loop inside the sink.
	ep.up.Store(true)
	var err error
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not finish after the endpoint came back")
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	requests := ep.refused.Load() + ep.accepted.Load()
	if w := counted.writes.Load(); requests != w {
		t.Errorf("%d requests for %d engine attempts: they must be equal", requests, w)
	}
	distinct, repeated := ep.received()
	if distinct != total || repeated != 0 {
		t.Errorf("endpoint got %d distinct ids (%d more than once), want %d once each", distinct, repeated, total)
	}
	if st := componentStats(e, "out"); st.Out != total || st.Health != engine.HealthHealthy || st.Reason != "" {
		t.Errorf("after recovery: out %d health %q reason %q", st.Out, st.Health, st.Reason)
	}
	t.Logf("%d refused requests, %d accepted, %d engine attempts", ep.refused.Load(), ep.accepted.Load(), counted.writes.Load())
}

// TestHTTPSinkFiniteAttemptsThenDeadLetter: max_attempts bounds the
// retries (each one request), then `then:` applies; a 4xx is permanent
// and costs exactly one request.
func TestHTTPSinkFiniteAttemptsThenDeadLetter(t *testing.T) {
	for _, tc := range []struct {
		name         string
		status       int
		onError      string
		wantRequests int64 // per batch
		wantAttempts float64
	}{
		{"503 retried 3 times", http.StatusServiceUnavailable, "{max_attempts: 3, backoff: 1ms, then: dead_letter}", 3, 3},
		{"400 permanent", http.StatusBadRequest, "{backoff: 1ms, then: dead_letter}", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const total = 1000
			ep := newEndpoint(t)
			ep.status = tc.status
			e, counted, dead := retryPipeline(t, ep, fmt.Sprintf(`
name: finite
sources:
  - {name: gen, type: generate, config: {count: %d, expr: '{"id": i}'}}
sinks:
  - name: out
    type: counted_http
    inputs: [gen]
    on_error: %s
    config: {url: "${URL}"}
dead_letter: {type: mem}
`, total, tc.onError))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := e.Run(ctx); err != nil {
				t.Fatalf("Run: %v", err)
			}
			st := componentStats(e, "out")
			batches := st.Batches
			if batches == 0 {
				t.Fatal("no batches")
			}
			if got, w := ep.refused.Load(), counted.writes.Load(); got != w || got != tc.wantRequests*batches {
				t.Errorf("%d requests, %d engine attempts, %d batches: want %d requests per batch, one per attempt", got, w, batches, tc.wantRequests)
			}
			// The retries ran out and the events were settled: the sink
			// is not retrying any more.
			if st.Health != engine.HealthHealthy || st.Reason != "" {
				t.Errorf("after settling: health %q, reason %q", st.Health, st.Reason)
			}
			if dead.len() != total || st.DeadLettered != total {
				t.Errorf("dead letters %d (counted %d), want %d", dead.len(), st.DeadLettered, total)
			}
			var rec struct {
				Attempts float64 `json:"attempts"`
				Error    string  `json:"error"`
			}
			dead.mu.Lock()
			_ = json.Unmarshal(dead.events[0].Data, &rec)
			dead.mu.Unlock()
			if rec.Attempts != tc.wantAttempts || !strings.Contains(rec.Error, fmt.Sprint(tc.status)) {
				t.Errorf("dead letter says %v attempts, error %q", rec.Attempts, rec.Error)
			}
		})
	}
}

// TestHTTPSinkRetryAfter: the engine waits what a 503's Retry-After asks
// instead of its own (1 ms) backoff.
func TestHTTPSinkRetryAfter(t *testing.T) {
	ep := newEndpoint(t)
	ep.retryAfter = "1"
	ep.notify = func(int64) { ep.up.Store(true) } // refuse once, then take
	e, _, _ := retryPipeline(t, ep, `
name: ra
sources:
  - {name: gen, type: generate, config: {count: 10, expr: '{"id": i}'}}
sinks:
  - {name: out, type: counted_http, inputs: [gen], on_error: {backoff: 1ms}, config: {url: "${URL}"}}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
	ep.mu.Lock()
	times := ep.times
	ep.mu.Unlock()
	if len(times) != 2 {
		t.Fatalf("%d requests, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < 900*time.Millisecond || gap > 10*time.Second {
		t.Errorf("second request %v after the first, want about the 1 s of Retry-After", gap)
	}
}

// TestHTTPSinkRetryStopsWithRun: a sink retrying a closed port for ever
// ends promptly when the run is cancelled: after the drain's grace, with
// the batch not acknowledged and not counted as written.
func TestHTTPSinkRetryStopsWithRun(t *testing.T) {
	ep := newEndpoint(t)
	closed := ep.srv.URL
	ep.srv.Close() // a closed port: connection refused
	reg := components.NewRegistry()
	p, diags := spec.Parse("pipeline.yaml", []byte(`
name: stop
sources:
  - {name: gen, type: generate, config: {count: 100, expr: '{"id": i}'}}
sinks:
  - {name: out, type: http, inputs: [gen], on_error: {backoff: 1ms, max_backoff: 5ms}, config: {url: "`+closed+`"}}
`), spec.Options{Registry: reg})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	const grace = 200 * time.Millisecond
	e, err := engine.New(p, reg, engine.Options{Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	// Ready: the sink has retried a few times.
	deadline := time.Now().Add(20 * time.Second)
	for componentStats(e, "out").Retries < 5*100 {
		if time.Now().After(deadline) {
			t.Fatal("the sink did not retry")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if h := componentStats(e, "out").Health; h == engine.HealthHealthy {
		t.Errorf("retrying sink reports %q", h)
	}
	start := time.Now()
	cancel()
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if took := time.Since(start); took > grace+3*time.Second {
		t.Errorf("Run returned %v after cancel (grace %v)", took, grace)
	}
	if !errors.Is(err, engine.ErrGraceExpired) || !strings.Contains(err.Error(), "not acknowledged") {
		t.Errorf("Run = %v, want ErrGraceExpired with unacknowledged batches", err)
	}
	if out := componentStats(e, "out").Out; out != 0 {
		t.Errorf("%d events counted as written to a closed port", out)
	}
}
