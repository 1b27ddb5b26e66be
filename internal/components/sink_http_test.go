package components

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// ioRecorder is a real HTTP server whose answers a test scripts: the
// first len(script) requests get those statuses (with the headers), later
// ones 200.
type ioRecorder struct {
	mu      sync.Mutex
	bodies  []string
	headers []http.Header
	times   []time.Time
	script  []ioScripted
	calls   atomic.Int32
}

type ioScripted struct {
	status     int
	retryAfter string
	body       string
}

func (r *ioRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, string(body))
	r.headers = append(r.headers, req.Header.Clone())
	r.times = append(r.times, time.Now())
	n := len(r.bodies) - 1
	r.mu.Unlock()
	r.calls.Add(1)
	if n < len(r.script) {
		s := r.script[n]
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(s.status)
		io.WriteString(w, s.body)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// ioHTTPSinkFor builds an http sink pointed at a recorder, recording the
// waits between attempts instead of sleeping them out.
func ioHTTPSinkFor(t *testing.T, rec *ioRecorder, cfg flow.Config) (*httpSink, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg["url"] = srv.URL + "/ingest"
	s := ioNewSink(t, "http", "", cfg).(*httpSink)
	var waits []time.Duration
	s.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	t.Cleanup(func() { ioClose(t, s) })
	return s, &waits
}

func TestHTTPSinkRetries(t *testing.T) {
	tests := []struct {
		name      string
		cfg       flow.Config
		script    []ioScripted
		wantCalls int
		wantWaits string
		wantErr   string
	}{
		{name: "ok at once", wantCalls: 1, wantWaits: "[]"},
		{
			name:   "fails twice then succeeds",
			script: []ioScripted{{status: 500}, {status: 502}},
			cfg:    flow.Config{"backoff": "50ms"}, wantCalls: 3, wantWaits: "[50ms 100ms]",
		},
		{
			name:      "honours Retry-After seconds",
			script:    []ioScripted{{status: 429, retryAfter: "2"}, {status: 503, retryAfter: "0"}},
			wantCalls: 3, wantWaits: "[2s 0s]",
		},
		{
			name:      "4xx fails at once with status and body",
			script:    []ioScripted{{status: 400, body: `{"error":"field x missing"}`}},
			wantCalls: 1, wantWaits: "[]", wantErr: `status 400: {"error":"field x missing"}`,
		},
		{
			name:      "gives up after max_attempts",
			script:    []ioScripted{{status: 500, body: "boom"}, {status: 500, body: "boom"}, {status: 500, body: "boom"}},
			cfg:       flow.Config{"max_attempts": 3, "backoff": "10ms", "max_backoff": "15ms"},
			wantCalls: 3, wantWaits: "[10ms 15ms]", wantErr: "failed after 3 attempts: status 500: boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &ioRecorder{script: tt.script}
			cfg := tt.cfg
			if cfg == nil {
				cfg = flow.Config{}
			}
			s, waits := ioHTTPSinkFor(t, rec, cfg)
			err := s.Write(context.Background(), ioSampleBatch())
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Write: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Write error %v, want it to contain %q", err, tt.wantErr)
			}
			// A refused request is permanent (the engine does not retry it
			// under on_error: retry); a server error is not.
			if want := strings.HasPrefix(tt.wantErr, "status 4"); err != nil && errors.Is(err, flow.ErrPermanent) != want {
				t.Errorf("errors.Is(%v, flow.ErrPermanent) = %v, want %v", err, !want, want)
			}
			if got := int(rec.calls.Load()); got != tt.wantCalls {
				t.Errorf("%d requests, want %d", got, tt.wantCalls)
			}
			if got := ioDurations(*waits); got != tt.wantWaits {
				t.Errorf("waits %s, want %s", got, tt.wantWaits)
			}
			// Every attempt sends the same body.
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, b := range rec.bodies {
				if b != rec.bodies[0] {
					t.Errorf("retry changed the body")
				}
			}
		})
	}
}

func ioDurations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// A real wait: Retry-After as an HTTP date in the near future, slept out
// with the real timer.
func TestHTTPSinkRetryAfterRealWait(t *testing.T) {
	rec := &ioRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	rec.script = []ioScripted{{status: 503, retryAfter: time.Now().Add(1500 * time.Millisecond).UTC().Format(http.TimeFormat)}}
	s := ioNewSink(t, "http", "", flow.Config{"url": srv.URL}).(*httpSink)
	defer ioClose(t, s)
	if err := s.Write(context.Background(), ioSampleBatch()); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	times := rec.times
	rec.mu.Unlock()
	if len(times) != 2 {
		t.Fatalf("%d requests", len(times))
	}
	// An HTTP date has whole seconds, so the wait is between 0.5 s and 1.5 s.
	if gap := times[1].Sub(times[0]); gap < 400*time.Millisecond || gap > 3*time.Second {
		t.Errorf("retried after %v, want about the Retry-After date", gap)
	}
}

func TestHTTPSinkBody(t *testing.T) {
	tests := []struct {
		format, ctype, want string
	}{
		{"data", "application/json", `[{"b":2,  "a":1},{"pretty":true},"plain \"text\""]`},
		{"envelope", "application/cloudevents-batch+json", `[{"specversion":"1.0","id":"in:1","source":"in","type":"t","datacontenttype":"application/json","data":{"b":2,  "a":1}},` +
			`{"specversion":"1.0","id":"in:2","source":"in","type":"t","datacontenttype":"application/json","data":{"pretty":true}},` +
			`{"specversion":"1.0","id":"in:3","source":"in","type":"log","datacontenttype":"text/plain","data":"plain \"text\""}]`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			rec := &ioRecorder{}
			s, _ := ioHTTPSinkFor(t, rec, flow.Config{"format": tt.format, "headers": map[string]any{"Authorization": "Bearer t0k"}, "method": "PUT"})
			if err := s.Write(context.Background(), ioSampleBatch()); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.bodies[0] != tt.want {
				t.Errorf("body\n%s\nwant\n%s", rec.bodies[0], tt.want)
			}
			if !json.Valid([]byte(rec.bodies[0])) {
				t.Errorf("body is not JSON")
			}
			h := rec.headers[0]
			if h.Get("Content-Type") != tt.ctype || h.Get("Authorization") != "Bearer t0k" {
				t.Errorf("headers %v", h)
			}
		})
	}
}

// A network error (nothing listening) is retried, then reported.
func TestHTTPSinkNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	s := ioNewSink(t, "http", "", flow.Config{"url": url, "max_attempts": 2, "backoff": "1ms"}).(*httpSink)
	defer ioClose(t, s)
	err := s.Write(context.Background(), ioSampleBatch())
	if err == nil || !strings.Contains(err.Error(), "failed after 2 attempts") {
		t.Errorf("Write = %v", err)
	}
	// ctx ends the waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(ctx, ioSampleBatch()); err == nil {
		t.Errorf("Write with a cancelled ctx succeeded")
	}
}

func TestHTTPSinkValidate(t *testing.T) {
	spec, _ := NewRegistry().Lookup(flow.RoleSink, "http")
	for _, tc := range []struct {
		cfg  flow.Config
		want string
	}{
		{flow.Config{}, "url: is required"},
		{flow.Config{"url": "ftp://x/"}, "not an http(s) URL"},
		{flow.Config{"url": "http://x/", "max_attempts": 0}, "max_attempts: must be at least 1"},
		{flow.Config{"url": "http://x/", "timeout": "0s"}, "timeout: must be positive"},
		{flow.Config{"url": "http://x/", "headers": map[string]any{"X": []any{1}}}, "headers.X"},
	} {
		if err := spec.Validate(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
