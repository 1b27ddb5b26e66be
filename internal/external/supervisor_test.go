package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// syncBuf is a concurrency-safe output sink for the children's lines.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// component returns a component run by this test binary in mode.
func component(t *testing.T, name string, role flow.Role, protocol, mode string, env map[string]string) *spec.Component {
	t.Helper()
	e := map[string]string{"FLOWCTL_TEST_CHILD": mode, "CRASH_MARK": filepath.Join(t.TempDir(), "crashed")}
	for k, v := range env {
		e[k] = v
	}
	return &spec.Component{
		Name: name, Role: role, Runner: spec.RunProcess,
		Command: []string{os.Args[0]}, Env: e, Protocol: protocol,
		Config:         flow.Config{},
		StartupTimeout: 5 * time.Second, StopGrace: 2 * time.Second,
		RestartPolicy: RestartOnFailure,
	}
}

func runtimeFor(t *testing.T) (*Runtime, *syncBuf) {
	out := &syncBuf{}
	return &Runtime{Pipeline: "test", Output: out, Dir: t.TempDir()}, out
}

func events(n int, data func(i int) string) []*flow.Event {
	out := make([]*flow.Event, n)
	for i := range out {
		out[i] = &flow.Event{ID: fmt.Sprintf("e%d", i), Type: "t", Source: "src", Data: []byte(data(i))}
	}
	return out
}

func openProcessor(t *testing.T, rt *Runtime, c *spec.Component) *Processor {
	t.Helper()
	proto, err := LookupProtocol(c.Protocol)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProcessor(NewSupervisor(rt, c, proto))
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func TestProcessorAnswers(t *testing.T) {
	for _, protocol := range []string{"stdio", "http"} {
		t.Run(protocol, func(t *testing.T) {
			rt, _ := runtimeFor(t)
			p := openProcessor(t, rt, component(t, "proc", flow.RoleProcessor, protocol, protocol, nil))
			in := events(600, func(i int) string {
				if i%100 == 7 {
					return `{"fail":true}`
				}
				return fmt.Sprintf(`{"n":%d}`, i)
			})
			// Several batches at once share the connection.
			var wg sync.WaitGroup
			for b := 0; b < len(in); b += 200 {
				wg.Add(1)
				go func(batch []*flow.Event) {
					defer wg.Done()
					outs, fails, err := p.ProcessBatch(context.Background(), batch)
					if err != nil {
						t.Error(err)
						return
					}
					for i, ev := range batch {
						if strings.Contains(string(ev.Data), "fail") {
							if fails[i] == nil {
								t.Errorf("%s: no failure", ev.ID)
							}
							continue
						}
						if len(outs[i]) != 1 {
							t.Errorf("%s: %d outputs", ev.ID, len(outs[i]))
							continue
						}
						o := outs[i][0]
						var v map[string]any
						json.Unmarshal(o.Data, &v)
						if v["seen"] != true || o.ID != ev.ID || o.Type != "t" || o.Source != "src" {
							t.Errorf("%s: output %+v data %s", ev.ID, o, o.Data)
						}
					}
				}(in[b : b+200])
			}
			wg.Wait()
			if protocol == "stdio" {
				if !errors.Is(mustFail(t, p, `{"fail":true}`), ErrPermanent) {
					t.Error("a permanent failure lost its mark")
				}
			}
		})
	}
}

func mustFail(t *testing.T, p *Processor, data string) error {
	t.Helper()
	_, err := p.Process(context.Background(), &flow.Event{ID: "x", Data: []byte(data)}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	return err
}

func TestStdioSplitAndDrop(t *testing.T) {
	rt, _ := runtimeFor(t)
	p := openProcessor(t, rt, component(t, "proc", flow.RoleProcessor, "stdio", "stdio", nil))
	outs, fails, err := p.ProcessBatch(context.Background(), events(2, func(i int) string {
		return []string{`{"split":true}`, `{"drop":true}`}[i]
	}))
	if err != nil || len(fails) != 0 {
		t.Fatal(err, fails)
	}
	if len(outs[0]) != 2 || outs[0][0].ID != "e0-a" || outs[0][1].Type != "part" || string(outs[0][1].Data) != `{"split":true}` {
		t.Errorf("split: %+v", outs[0])
	}
	if len(outs[1]) != 0 {
		t.Errorf("drop: %+v", outs[1])
	}
}

// A component that dies with batches in flight gets them again after the
// restart; the caller only sees the answers.
func TestRedeliveryAfterCrash(t *testing.T) {
	// The hang is found by the answer timeout; it is long enough that a
	// loaded machine's slow answers are not taken for a second hang (one
	// restart is expected). A crash needs no timeout to be seen.
	cases := []struct {
		name    string
		env     map[string]string
		timeout string
	}{
		{"crash", map[string]string{"CRASH_AFTER": "300"}, ""},
		{"hang", map[string]string{"HANG_AFTER": "300"}, "2s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt, out := runtimeFor(t)
			c := component(t, "proc", flow.RoleProcessor, "stdio", "stdio", tc.env)
			if tc.timeout != "" {
				c.Config = flow.Config{"answer_timeout": tc.timeout}
			}
			p := openProcessor(t, rt, c)
			in := events(1000, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
			var wg sync.WaitGroup
			for b := 0; b < len(in); b += 100 {
				wg.Add(1)
				go func(batch []*flow.Event) {
					defer wg.Done()
					outs, fails, err := p.ProcessBatch(context.Background(), batch)
					if err != nil || len(fails) > 0 {
						t.Error(err, fails)
						return
					}
					for i := range batch {
						if len(outs[i]) != 1 || outs[i][0].ID != batch[i].ID {
							t.Errorf("input %s: outputs %v", batch[i].ID, outs[i])
						}
					}
				}(in[b : b+100])
			}
			wg.Wait()
			st := p.Supervisor().Stats()
			if st.Restarts != 1 || st.RedeliveredBatches < 1 || st.RedeliveredEvents < 100 {
				t.Errorf("stats %+v", st)
			}
			if tc.name == "crash" && !strings.Contains(out.String(), "proc | crashing on purpose") {
				t.Errorf("stderr not captured:\n%s", out.String())
			}
		})
	}
}

func TestCrashLoopFailsClearly(t *testing.T) {
	rt, _ := runtimeFor(t)
	c := component(t, "broken", flow.RoleProcessor, "stdio", "exit1", nil)
	s := NewSupervisor(rt, c, Stdio)
	p := NewProcessor(s)
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err) // stdio is ready at once; the crashes come after
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := p.ProcessBatch(ctx, events(1, func(int) string { return "{}" }))
	if !errors.Is(err, ErrCrashLoop) || !errors.Is(err, flow.ErrStopRun) {
		t.Fatalf("err = %v, want a crash loop that stops the run", err)
	}
	for _, want := range []string{`"broken"`, "exit status 1", "boom: cannot start"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
}

func TestRestartPolicyNo(t *testing.T) {
	rt, _ := runtimeFor(t)
	c := component(t, "once", flow.RoleProcessor, "stdio", "stdio", map[string]string{"CRASH_AFTER": "1"})
	c.RestartPolicy = RestartNo
	p := openProcessor(t, rt, c)
	_, _, err := p.ProcessBatch(context.Background(), events(5, func(int) string { return "{}" }))
	if err == nil || !strings.Contains(err.Error(), `restart_policy is "no"`) || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("err = %v", err)
	}
}

func TestStartupFailure(t *testing.T) {
	rt, _ := runtimeFor(t)
	c := component(t, "web", flow.RoleProcessor, "http", "exit1", nil)
	err := NewProcessor(NewSupervisor(rt, c, HTTP)).Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exited while starting (exit status 1)") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
}

func TestEnvironment(t *testing.T) {
	// TLS settings exported for the CLI must not reach a child, whose
	// control plane is the embedded plaintext one.
	t.Setenv("FLOWCTL_TLS_CA", "/from/the/cli/ca.crt")
	t.Setenv("FLOWCTL_TOKEN", "cli-token")
	rt, _ := runtimeFor(t)
	rt.Endpoint = "127.0.0.1:7000"
	c := component(t, "envy", flow.RoleProcessor, "stdio", "env", map[string]string{"MODE": "user", "HEALTH_PORT": "9999"})
	c.Config = flow.Config{"mode": "config", "batch-size": 10, "nested": map[string]any{"a": 1}}
	c.WorkingDir = "sub"
	os.Mkdir(filepath.Join(rt.Dir, "sub"), 0o755)
	p := openProcessor(t, rt, c)
	outs, _, err := p.ProcessBatch(context.Background(), events(1, func(int) string { return "{}" }))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	json.Unmarshal(outs[0][0].Data, &env)
	want := map[string]string{
		"ENABLE_FLOWCTL": "true", "FLOWCTL_ENDPOINT": "127.0.0.1:7000", "FLOWCTL_COMPONENT_ID": "envy",
		"FLOWCTL_SERVICE_ID": "envy", "FLOWCTL_HEARTBEAT_INTERVAL": "10s", "HEALTH_PORT": "9999",
		"MODE": "user", "BATCH_SIZE": "10", "NESTED": `{"a":1}`, "_WD": filepath.Join(rt.Dir, "sub"),
		"FLOWCTL_TLS_CA": "", "FLOWCTL_TOKEN": "",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}

func TestStdioSinkAndSource(t *testing.T) {
	rt, _ := runtimeFor(t)
	sc := component(t, "out", flow.RoleSink, "stdio", "stdio", nil)
	k := NewSink(NewSupervisor(rt, sc, Stdio))
	if err := k.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer k.Close(context.Background())
	err := k.Write(context.Background(), events(3, func(i int) string { return []string{"{}", `{"fail":true}`, "{}"}[i] }))
	var be *flow.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[1] == nil {
		t.Fatalf("err = %v", err)
	}

	src := component(t, "gen", flow.RoleSource, "stdio", "stdio-source", map[string]string{"COUNT": "1000"})
	src.RestartPolicy = RestartNo
	s := NewSource(NewSupervisor(rt, src, Stdio))
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	em := &countEmitter{}
	if err := s.Run(context.Background(), em); err != nil {
		t.Fatal(err)
	}
	if em.n != 1000 || em.first.ID != "gen:1" || em.first.Type != "gen" || string(em.first.Data) != `{"n":0}` {
		t.Errorf("got %d events, first %+v", em.n, em.first)
	}
}

type countEmitter struct {
	n     int
	first *flow.Event
}

func (e *countEmitter) Emit(_ context.Context, b []*flow.Event, done func(error)) error {
	if e.first == nil {
		e.first = b[0]
	}
	e.n += len(b)
	if done != nil {
		done(nil)
	}
	return nil
}

// A component flowctl does not start, reached at its url.
func TestHTTPRemote(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/enrich" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "wrong request", 400)
			return
		}
		var req struct{ Events []json.RawMessage }
		json.NewDecoder(r.Body).Decode(&req)
		w.Write([]byte(`{"results":[`))
		for i := range req.Events {
			if i > 0 {
				w.Write([]byte(","))
			}
			w.Write([]byte(`{"events":[{"type":"enriched"}]}`))
		}
		w.Write([]byte(`]}`))
	}))
	defer srv.Close()
	rt, _ := runtimeFor(t)
	c := &spec.Component{Name: "remote", Role: flow.RoleProcessor, Runner: spec.RunRemote, URL: srv.URL + "/enrich", Protocol: "http"}
	p := openProcessor(t, rt, c)
	outs, fails, err := p.ProcessBatch(context.Background(), events(3, func(i int) string { return fmt.Sprintf(`{"i":%d}`, i) }))
	if err != nil || len(fails) > 0 {
		t.Fatal(err, fails)
	}
	if len(outs) != 3 || outs[2][0].Type != "enriched" || outs[2][0].ID != "e2" || string(outs[2][0].Data) != `{"i":2}` {
		t.Errorf("outs = %v", outs)
	}
	// A remote component that is down fails the batch's events (on_error
	// decides); there is nothing to restart.
	srv.Close()
	_, fails, err = p.ProcessBatch(context.Background(), events(2, func(int) string { return "{}" }))
	if err != nil || len(fails) != 2 {
		t.Fatalf("down: err %v, fails %v", err, fails)
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls", calls.Load())
	}
}

// A sink that dies mid-batch writes the batch again after its restart.
func TestSinkRedelivery(t *testing.T) {
	rt, _ := runtimeFor(t)
	c := component(t, "out", flow.RoleSink, "stdio", "stdio", map[string]string{"CRASH_AFTER": "150"})
	k := NewSink(NewSupervisor(rt, c, Stdio))
	if err := k.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer k.Close(context.Background())
	in := events(500, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	for b := 0; b < len(in); b += 100 {
		if err := k.Write(context.Background(), in[b:b+100]); err != nil {
			t.Fatal(err)
		}
	}
	if st := k.Supervisor().Stats(); st.Restarts != 1 || st.RedeliveredBatches != 1 || st.RedeliveredEvents != 100 {
		t.Errorf("stats %+v", st)
	}
}

// A source that writes its events and exits at once may be gone before
// the engine first asks for them: its supervisor has then already seen
// the clean exit. Its events must still arrive, and Run must end (it
// waited for an incarnation that would never come, and the run hung with
// "0 events in").
func TestSourceExitedBeforeFirstRead(t *testing.T) {
	for _, policy := range []string{RestartNo, RestartOnFailure} {
		t.Run(policy, func(t *testing.T) {
			rt, _ := runtimeFor(t)
			c := component(t, "quick", flow.RoleSource, "stdio", "stdio-source", map[string]string{"COUNT": "3"})
			c.RestartPolicy = policy
			sup := NewSupervisor(rt, c, Stdio)
			src := NewSource(sup)
			if err := src.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer src.Close(context.Background())
			// The watcher ends once it has seen the source exit 0.
			select {
			case <-sup.done:
			case <-time.After(30 * time.Second):
				t.Fatal("the source did not exit")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			em := &countEmitter{}
			if err := src.Run(ctx, em); err != nil {
				t.Fatal(err)
			}
			if ctx.Err() != nil {
				t.Fatalf("Run ended only with its context, after %d events", em.n)
			}
			if em.n != 3 {
				t.Fatalf("got %d events, want 3", em.n)
			}
		})
	}
}
