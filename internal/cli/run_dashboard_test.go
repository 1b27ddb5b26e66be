package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/tap"
	"github.com/flowctl/flowctl/internal/ui"
)

// TestDashboardHTTPHandler: what --http serves. /metrics, /healthz and
// /readyz stay open; the dashboard and its API need the token (401
// without), and serve the run's graph and counters with it.
func TestDashboardHTTPHandler(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.yaml")
	os.WriteFile(pf, []byte(`
name: dash
sources: [{name: gen, type: generate, config: {count: 5, data: {k: 1}}}]
processors: [{name: keep, type: filter, inputs: [gen], config: {expr: "true"}}]
sinks: [{name: out, type: file, inputs: [keep], config: {path: out.jsonl}}]
`), 0o644)
	reg := components.NewRegistry()
	pl, diags, err := spec.Load(pf, spec.Options{Registry: reg})
	if err != nil || diags.HasErrors() {
		t.Fatalf("%v %v", err, diags)
	}
	hub := tap.NewHub()
	e, err := engine.New(pl, reg, engine.Options{Taps: hub, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpHandler("dash", "tok", hub, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics", ""); code != 200 || !strings.Contains(body, `flowctl_events_out_total{component="gen"`) {
		t.Errorf("/metrics without a token: %d", code)
	}
	if code, _ := get("/healthz", ""); code != 200 {
		t.Errorf("/healthz without a token: %d", code)
	}
	for _, p := range []string{"/", ui.GraphPath, ui.StatsPath, ui.TapPath + "?point=gen&limit=1"} {
		if code, _ := get(p, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", p, code)
		}
		if code, _ := get(p, "nope"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", p, code)
		}
	}
	code, body := get(ui.StatsPath, "tok")
	var st liveStats
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Pipeline != "dash" || len(st.Components) != 3 {
		t.Fatalf("stats: %d %s", code, body)
	}
	code, body = get(ui.GraphPath, "tok")
	var g ui.GraphJSON
	if code != 200 || json.Unmarshal([]byte(body), &g) != nil || len(g.Nodes) != 3 || len(g.Edges) != 2 {
		t.Fatalf("graph: %d %s", code, body)
	}
	if code, body := get(ui.TapPath+"?point=nothing", "tok"); code != http.StatusNotFound || !strings.Contains(body, "no component") {
		t.Errorf("tap of an unknown component: %d %s", code, body)
	}
}

func TestDashboardURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:9090": "http://127.0.0.1:9090/?token=T",
		"[::]:9090":      "http://127.0.0.1:9090/?token=T",
		"0.0.0.0:80":     "http://127.0.0.1:80/?token=T",
		"[::1]:9090":     "http://[::1]:9090/?token=T",
	} {
		if got := dashboardURL(addr, "T"); got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
}

// TestDashboardTokenFile: --http-token FILE fixes the token; the printed
// URL then leaves it out, and an empty file is refused before the run.
func TestDashboardTokenFile(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.yaml")
	os.WriteFile(pf, []byte(`
name: fixed
sources: [{name: gen, type: generate, config: {rate: 20, data: {k: 1}}}]
sinks: [{name: out, type: file, inputs: [gen], config: {path: out.jsonl}}]
`), 0o644)
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("my-fixed-token-123\n"), 0o600)
	addr := freeAddr(t)
	cmd := exec.Command(bin, "run", "-f", pf, "--http", addr, "--http-token", tokFile, "--state-dir", t.TempDir(), "--socket", filepath.Join(dir, "s.sock"))
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, 20*time.Second, "the dashboard line", func() bool { return strings.Contains(stderr.String(), "dashboard:") })
	if s := stderr.String(); strings.Contains(s, "my-fixed-token-123") || !strings.Contains(s, "dashboard: http://"+addr+"/ (add ?token= and the token in "+tokFile+")") {
		t.Errorf("stderr:\n%s", s)
	}
	status := func(token string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+ui.StatsPath, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := status("my-fixed-token-123"); code != 200 {
		t.Errorf("with the file's token: %d", code)
	}
	if code := status(""); code != 401 {
		t.Errorf("without a token: %d", code)
	}
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()

	os.WriteFile(tokFile, []byte("\n"), 0o600)
	out, err := exec.Command(bin, "run", "-f", pf, "--http", freeAddr(t), "--http-token", tokFile, "--state-dir", t.TempDir()).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "--http-token: "+tokFile+" is empty") {
		t.Errorf("an empty token file: %v\n%s", err, out)
	}
}
