package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// downEndpoint answers 503 until up is set, then records the ids of the
// JSON batches it takes. refusedN is closed after n refused requests.
type downEndpoint struct {
	up       atomic.Bool
	refused  atomic.Int64
	n        int64
	refusedN chan struct{}
	once     sync.Once
	mu       sync.Mutex
	ids      map[float64]int
}

func (d *downEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !d.up.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		if d.refused.Add(1) >= d.n {
			d.once.Do(func() { close(d.refusedN) })
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
	d.mu.Lock()
	for _, e := range batch {
		d.ids[e.ID]++
	}
	d.mu.Unlock()
}

// TestRunSinkWaitsForEndpoint: `flowctl run` with an http sink whose
// endpoint is down keeps running (it used to exit 1 after about 5 s),
// /metrics shows the sink degraded or unhealthy; when the endpoint comes
// back every event arrives once and the run exits 0. Stopped while the
// endpoint is still down, it ends after --grace, exit 1, and the summary
// says which sink was in trouble and why.
func TestRunSinkWaitsForEndpoint(t *testing.T) {
	bin := flowctlBinary(t)
	for _, tc := range []struct {
		name    string
		recover bool
	}{{"endpoint comes back", true}, {"stopped while down", false}} {
		t.Run(tc.name, func(t *testing.T) {
			const total = 3000
			ep := &downEndpoint{n: 10, refusedN: make(chan struct{}), ids: map[float64]int{}}
			srv := httptest.NewServer(ep)
			defer srv.Close()
			dir := t.TempDir()
			pf := filepath.Join(dir, "pipeline.yaml")
			os.WriteFile(pf, []byte(fmt.Sprintf(`
name: wait
sources: [{name: gen, type: generate, config: {count: %d, expr: '{"id": i}'}}]
sinks:
  - {name: out, type: http, inputs: [gen], on_error: {backoff: 5ms, max_backoff: 50ms}, config: {url: %q}}
`, total, srv.URL)), 0o644)
			addr := freeAddr(t)
			// Its own state: both cases are named "wait", and the second
			// would resume where the first ended (nothing left to send).
			cmd := exec.Command(bin, "run", "-f", pf, "--grace", "300ms", "--http", addr, "--state-dir", filepath.Join(dir, "state"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			select {
			case <-ep.refusedN:
			case err := <-exited:
				t.Fatalf("flowctl run ended while the endpoint was down: %v\n%s", err, stderr.String())
			case <-time.After(20 * time.Second):
				t.Fatalf("the endpoint got %d requests in 20s", ep.refused.Load())
			}
			// /metrics: the sink is not healthy.
			deadline := time.Now().Add(10 * time.Second)
			for {
				body := ""
				if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					body = string(b)
				}
				if strings.Contains(body, `flowctl_component_health{component="out",pipeline="wait",role="sink",state="healthy"} 0`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/metrics never showed the sink in trouble:\n%s", body)
				}
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case err := <-exited:
				t.Fatalf("flowctl run ended while the endpoint was down: %v\n%s", err, stderr.String())
			default:
			}

			if !tc.recover {
				start := time.Now()
				cmd.Process.Signal(syscall.SIGTERM)
				var err error
				select {
				case err = <-exited:
				case <-time.After(15 * time.Second):
					t.Fatalf("flowctl run did not end after SIGTERM\n%s", stderr.String())
				}
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 || time.Since(start) > 10*time.Second {
					t.Errorf("exit %v after %v, want 1 shortly after the 300ms grace", err, time.Since(start))
				}
				for _, want := range []string{
					// Stopped, but the drain could not deliver what the
					// sources had emitted: the run failed (exit 1), and
					// the summary says so (runOutcome).
					`pipeline "wait" failed`, ` 0 written`,
					`sink "out" was `, `when the run ended: retrying for `, `status 503: down for maintenance`,
					`neither written nor acknowledged`,
				} {
					if !strings.Contains(stderr.String(), want) {
						t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
					}
				}
				return
			}

			ep.up.Store(true)
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("flowctl run: %v\n%s", err, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("flowctl run did not finish after the endpoint came back\n%s", stderr.String())
			}
			ep.mu.Lock()
			distinct, repeated := len(ep.ids), 0
			for _, n := range ep.ids {
				if n > 1 {
					repeated++
				}
			}
			ep.mu.Unlock()
			if distinct != total || repeated != 0 {
				t.Errorf("endpoint got %d distinct ids, %d more than once; want %d once each", distinct, repeated, total)
			}
			if !strings.Contains(stderr.String(), fmt.Sprintf("%d events in, %d written", total, total)) || strings.Contains(stderr.String(), "when the run ended") {
				t.Errorf("summary:\n%s", stderr.String())
			}
		})
	}
}
