package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/flowctl/flowctl/internal/graph"
)

// Under `flowctl server --ui ADDR` the same page shows every pipeline the
// server keeps: a list of them, the run history of the one selected and,
// in a component's panel, its logs beside its tap. Every API path then
// takes ?pipeline=NAME; stats and taps are relayed from the run's socket.

// More paths, served by ServerHandler only.
const (
	// InfoPath says which dashboard this is (both handlers serve it).
	InfoPath = "/ui/api/info"
	// PipelinesPath lists the server's pipelines ([]PipelineSummary).
	PipelinesPath = "/ui/api/pipelines"
	// RunsPath lists a pipeline's runs, newest first ([]RunSummary).
	RunsPath = "/ui/api/runs"
	// LogsPath is the last lines of a pipeline's logs ([]LogLine).
	LogsPath = "/ui/api/logs"
)

// Info is what InfoPath serves.
type Info struct {
	// Mode is "run" (flowctl run --http) or "server" (flowctl server --ui).
	Mode string `json:"mode"`
}

// PipelineSummary is a pipeline as the list shows it.
type PipelineSummary struct {
	Name      string    `json:"name"`
	Revision  int64     `json:"revision"`
	Phase     string    `json:"phase"`
	RunID     int64     `json:"run_id,omitempty"`
	Restarts  int       `json:"restarts"`
	LastError string    `json:"last_error,omitempty"`
	AppliedAt time.Time `json:"applied_at"`
}

// RunSummary is one run of a pipeline.
type RunSummary struct {
	ID        int64            `json:"id"`
	Revision  int64            `json:"revision"`
	State     string           `json:"state"`
	Reason    string           `json:"reason,omitempty"`
	StartedAt time.Time        `json:"started_at"`
	EndedAt   *time.Time       `json:"ended_at,omitempty"`
	Counters  map[string]int64 `json:"counters,omitempty"`
}

// LogLine is a line of a pipeline's logs.
type LogLine struct {
	Time      time.Time `json:"time"`
	Component string    `json:"component,omitempty"`
	Stream    string    `json:"stream"`
	Level     string    `json:"level,omitempty"`
	Text      string    `json:"text"`
	Run       int64     `json:"run,omitempty"`
}

// Backend is what the server's dashboard reads (internal/server
// implements it). Errors that are the request's fault are *Error.
type Backend interface {
	Pipelines(ctx context.Context) ([]PipelineSummary, error)
	Runs(ctx context.Context, pipeline string, limit int) ([]RunSummary, error)
	// Graph is the graph of the pipeline's applied revision.
	Graph(ctx context.Context, pipeline string) (*graph.Graph, error)
	// Logs are the last tail lines of the pipeline (of component, if set).
	Logs(ctx context.Context, pipeline, component string, tail int) ([]LogLine, error)
	// RunClient reaches the socket of the pipeline's run (any URL host):
	// its /v1/stats and /v1/tap.
	RunClient(ctx context.Context, pipeline string) (*http.Client, error)
}

// Error is an error with the HTTP status to answer.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// ServerOptions configure ServerHandler.
type ServerOptions struct {
	Token   string
	Backend Backend
}

// ServerHandler serves the dashboard of a flowctl server; like Handler,
// every request needs the token.
func ServerHandler(o ServerOptions) (http.Handler, error) {
	if o.Token == "" || o.Backend == nil {
		return nil, errors.New("ui: a token and a backend are needed")
	}
	b := o.Backend
	mux := http.NewServeMux()
	if err := servePage(mux); err != nil {
		return nil, err
	}
	mux.HandleFunc("GET "+InfoPath, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, Info{Mode: "server"}) })
	mux.HandleFunc("GET "+PipelinesPath, func(w http.ResponseWriter, r *http.Request) {
		pls, err := b.Pipelines(r.Context())
		if pls == nil {
			pls = []PipelineSummary{}
		}
		reply(w, pls, err)
	})
	// pipeline reads ?pipeline=, answering 400 when it is missing.
	pipeline := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		name := r.URL.Query().Get("pipeline")
		if name == "" {
			apiError(w, http.StatusBadRequest, "name the pipeline: ?pipeline=NAME")
		}
		return name, name != ""
	}
	mux.HandleFunc("GET "+RunsPath, func(w http.ResponseWriter, r *http.Request) {
		if name, ok := pipeline(w, r); ok {
			runs, err := b.Runs(r.Context(), name, intParam(r, "limit", 20))
			if runs == nil {
				runs = []RunSummary{}
			}
			reply(w, runs, err)
		}
	})
	mux.HandleFunc("GET "+LogsPath, func(w http.ResponseWriter, r *http.Request) {
		if name, ok := pipeline(w, r); ok {
			lines, err := b.Logs(r.Context(), name, r.URL.Query().Get("component"), min(intParam(r, "tail", 50), 1000))
			if lines == nil {
				lines = []LogLine{}
			}
			reply(w, lines, err)
		}
	})
	mux.HandleFunc("GET "+GraphPath, func(w http.ResponseWriter, r *http.Request) {
		if name, ok := pipeline(w, r); ok {
			g, err := b.Graph(r.Context(), name)
			if err != nil {
				reply(w, nil, err)
				return
			}
			writeJSON(w, Layout(g))
		}
	})
	relay := func(path string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			name, ok := pipeline(w, r)
			if !ok {
				return
			}
			c, err := b.RunClient(r.Context(), name)
			if err != nil {
				reply(w, nil, err)
				return
			}
			defer c.CloseIdleConnections()
			q := r.URL.Query()
			q.Del("pipeline")
			relayHTTP(w, r, c, "http://run"+path+"?"+q.Encode())
		}
	}
	mux.HandleFunc("GET "+StatsPath, relay("/v1/stats"))
	mux.HandleFunc("GET "+TapPath, relay("/v1/tap"))
	return &guard{token: []byte(o.Token), next: mux}, nil
}

// relayHTTP answers r with what GET u answers through c, flushing as it
// goes (a tap is a stream).
func relayHTTP(w http.ResponseWriter, r *http.Request, c *http.Client, u string) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u, nil)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := c.Do(req)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "the pipeline's run does not answer: "+err.Error())
		return
	}
	defer resp.Body.Close()
	for _, k := range []string{"Content-Type", "Cache-Control"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil { // EOF, or the run ended: the page sees the stream end
			return
		}
	}
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			apiError(w, e.Code, e.Msg)
			return
		}
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"error\":%s}\n", strconv.Quote(msg))
}

func intParam(r *http.Request, key string, def int) int {
	if v, err := strconv.Atoi(r.URL.Query().Get(key)); err == nil && v > 0 {
		return v
	}
	return def
}
