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

// ioHTTPSinkFor builds an http sink pointed at a recorder.
func ioHTTPSinkFor(t *testing.T, rec *ioRecorder, cfg flow.Config) *httpSink {
	t.Helper()
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg["url"] = srv.URL + "/ingest"
	s := ioNewSink(t, "http", "", cfg).(*httpSink)
	t.Cleanup(func() { ioClose(t, s) })
	return s
}

// TestHTTPSinkOneRequestPerWrite: a Write is exactly one request whatever
// the answer; what it returns tells the engine's on_error whether to try
// again (not permanent), when (Retry-After), or not at all (permanent).
func TestHTTPSinkOneRequestPerWrite(t *testing.T) {
	tests := []struct {
		name       string
		answer     ioScripted
		wantErr    string // "" = success
		permanent  bool
		retryAfter string // "" = none
	}{
		{name: "ok", answer: ioScripted{status: 200}},
		{name: "500 is retried by the engine", answer: ioScripted{status: 500, body: "boom"}, wantErr: "status 500: boom"},
		{name: "502", answer: ioScripted{status: 502}, wantErr: "status 502"},
		{name: "429 with Retry-After seconds", answer: ioScripted{status: 429, retryAfter: "2"}, wantErr: "status 429", retryAfter: "2s"},
		{name: "503 with Retry-After 0", answer: ioScripted{status: 503, retryAfter: "0"}, wantErr: "status 503", retryAfter: "0s"},
		{name: "4xx is permanent, with status and body", answer: ioScripted{status: 400, body: `{"error":"field x missing"}`},
			wantErr: `status 400: {"error":"field x missing"}`, permanent: true},
		{name: "404", answer: ioScripted{status: 404}, wantErr: "status 404", permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &ioRecorder{script: []ioScripted{tt.answer}}
			s := ioHTTPSinkFor(t, rec, flow.Config{})
			err := s.Write(context.Background(), ioSampleBatch())
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Write: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Write error %v, want it to contain %q", err, tt.wantErr)
			}
			if got := int(rec.calls.Load()); got != 1 {
				t.Errorf("%d requests, want exactly 1: the sink must not retry by itself", got)
			}
			if err == nil {
				return
			}
			if errors.Is(err, flow.ErrPermanent) != tt.permanent {
				t.Errorf("errors.Is(%v, flow.ErrPermanent) = %v, want %v", err, !tt.permanent, tt.permanent)
			}
			ra, ok := flow.RetryAfter(err)
			if got := map[bool]string{true: ra.String()}[ok]; got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
		})
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
			s := ioHTTPSinkFor(t, rec, flow.Config{"format": tt.format, "headers": map[string]any{"Authorization": "Bearer t0k"}, "method": "PUT"})
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

// A network error (nothing listening) is one attempt, reported as
// retryable; a cancelled ctx fails at once.
func TestHTTPSinkNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	s := ioNewSink(t, "http", "", flow.Config{"url": url}).(*httpSink)
	defer ioClose(t, s)
	err := s.Write(context.Background(), ioSampleBatch())
	if err == nil || errors.Is(err, flow.ErrPermanent) || !strings.Contains(err.Error(), url) {
		t.Errorf("Write = %v, want a retryable error naming the url", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(ctx, ioSampleBatch()); !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a cancelled ctx = %v", err)
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
		{flow.Config{"url": "http://x/", "timeout": "0s"}, "timeout: must be positive"},
		{flow.Config{"url": "http://x/", "headers": map[string]any{"X": []any{1}}}, "headers.X"},
	} {
		if err := spec.Validate(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
