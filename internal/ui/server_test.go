package ui

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/graph"
)

// fakeBackend serves one pipeline, "shop", whose run answers on a test
// server.
type fakeBackend struct {
	g   *graph.Graph
	run *httptest.Server
}

func (f fakeBackend) Pipelines(context.Context) ([]PipelineSummary, error) {
	return []PipelineSummary{{Name: "shop", Revision: 2, Phase: "Running", RunID: 3}}, nil
}

func (f fakeBackend) Runs(_ context.Context, p string, limit int) ([]RunSummary, error) {
	if p != "shop" {
		return nil, &Error{Code: http.StatusNotFound, Msg: "no pipeline " + p}
	}
	return []RunSummary{{ID: 3, Revision: 2, State: "Started", StartedAt: time.Unix(0, 0)}}, nil
}

func (f fakeBackend) Graph(_ context.Context, p string) (*graph.Graph, error) {
	if p != "shop" {
		return nil, &Error{Code: http.StatusNotFound, Msg: "no pipeline " + p}
	}
	return f.g, nil
}

func (f fakeBackend) Logs(_ context.Context, p, comp string, tail int) ([]LogLine, error) {
	return []LogLine{{Component: comp, Stream: "stderr", Text: "hello from " + comp}}, nil
}

func (f fakeBackend) RunClient(_ context.Context, p string) (*http.Client, error) {
	if p != "shop" {
		return nil, &Error{Code: http.StatusServiceUnavailable, Msg: "not running"}
	}
	addr := f.run.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}}, nil
}

// TestServerUIEndpoints: the server's dashboard API, with and without
// the token; stats and taps are relayed from the run with the pipeline
// parameter left out.
func TestServerUIEndpoints(t *testing.T) {
	run := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("pipeline") {
			http.Error(w, "pipeline passed on", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/v1/stats":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"pipeline":"shop","components":[]}`)
		case "/v1/tap":
			w.Header().Set("Content-Type", "application/x-ndjson")
			io.WriteString(w, `{"watching":"`+r.URL.Query().Get("point")+`:out"}`+"\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer run.Close()
	h, err := ServerHandler(ServerOptions{Token: testToken, Backend: fakeBackend{g: testGraph(t), run: run}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	for _, p := range []string{"/", InfoPath, PipelinesPath, RunsPath + "?pipeline=shop", LogsPath + "?pipeline=shop", GraphPath + "?pipeline=shop", StatsPath + "?pipeline=shop", TapPath + "?pipeline=shop"} {
		if resp, _ := get(t, http.DefaultClient, srv.URL+p, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d", p, resp.StatusCode)
		}
	}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{InfoPath, 200, `"mode":"server"`},
		{PipelinesPath, 200, `"name":"shop"`},
		{RunsPath + "?pipeline=shop", 200, `"state":"Started"`},
		{RunsPath, 400, "name the pipeline"},
		{RunsPath + "?pipeline=nope", 404, "no pipeline nope"},
		{LogsPath + "?pipeline=shop&component=large", 200, "hello from large"},
		{GraphPath + "?pipeline=shop", 200, `"name":"dlq"`},
		{StatsPath + "?pipeline=shop", 200, `"pipeline":"shop"`},
		{StatsPath + "?pipeline=nope", 503, "not running"},
		{TapPath + "?pipeline=shop&point=large", 200, `"watching":"large:out"`},
	} {
		resp, body := get(t, http.DefaultClient, srv.URL+tc.path, auth)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %s", tc.path, resp.StatusCode, body, tc.code, tc.want)
		}
		if tc.code != 200 {
			var e struct{ Error string }
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Errorf("%s: error body %q is not JSON", tc.path, body)
			}
		}
	}
	// The run dashboard says it is one.
	if resp, body := get(t, http.DefaultClient, testServer(t).URL+InfoPath, auth); resp.StatusCode != 200 || !strings.Contains(body, `"mode":"run"`) {
		t.Errorf("run info: %d %s", resp.StatusCode, body)
	}
}
