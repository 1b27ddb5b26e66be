package components

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	bbolt "go.etcd.io/bbolt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/llmtest"
)

// The tests talk to internal/llmtest, a stand-in that speaks the chat
// completions request and response format on 127.0.0.1: no model runs
// here. Its replies are computed from the prompt (upper case, or an object
// filling a JSON schema's properties).

const llmTestKey = "sk-test-SECRET-4f2a9c"

// newLLM builds and opens an llm processor over cfg (url and model filled
// in when absent), logging into logs.
func newLLM(t *testing.T, srv *llmtest.Server, cfg flow.Config, stateDir string, logs *bytes.Buffer) *llmProcessor {
	t.Helper()
	if cfg["url"] == nil {
		cfg["url"] = srv.URL
	}
	if cfg["model"] == nil {
		cfg["model"] = "stand-in"
	}
	if cfg["api_key_env"] == nil {
		cfg["api_key_env"] = "FLOWCTL_LLM_TEST_KEY"
	}
	t.Setenv("FLOWCTL_LLM_TEST_KEY", llmTestKey)
	var w bytes.Buffer
	if logs == nil {
		logs = &w
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := NewRegistry()
	cs, err := reg.Lookup(flow.RoleProcessor, "llm")
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Validate(cfg); err != nil {
		t.Fatalf("validate: %v", err)
	}
	v, err := cs.New(flow.BuildContext{Name: "ask", Pipeline: "p", Config: cfg, Dir: t.TempDir(), Logger: log, StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	p := v.(*llmProcessor)
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func llmEvents(n int) []*flow.Event {
	evs := make([]*flow.Event, n)
	for i := range evs {
		evs[i] = &flow.Event{ID: fmt.Sprintf("in:%d", i+1), Data: []byte(fmt.Sprintf(`{"id":%d,"text":"hello <%d>"}`, i, i))}
	}
	return evs
}

func dataOf(t *testing.T, ev *flow.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		t.Fatalf("output %s: %v", ev.Data, err)
	}
	return m
}

func TestLLMConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  flow.Config
		want string
	}{
		{"model missing", flow.Config{"prompt": `"x"`}, "model"},
		{"prompt missing", flow.Config{"model": "m"}, "prompt"},
		{"prompt not a string", flow.Config{"model": "m", "prompt": "data.id + 1"}, "prompt"},
		{"url not http", flow.Config{"model": "m", "prompt": `"x"`, "url": "ftp://h/v1"}, "url"},
		{"merge without schema", flow.Config{"model": "m", "prompt": `"x"`, "merge": true}, "merge"},
		{"schema not an object", flow.Config{"model": "m", "prompt": `"x"`, "response_schema": map[string]any{"type": "string"}}, "response_schema.type"},
		{"temperature too high", flow.Config{"model": "m", "prompt": `"x"`, "temperature": 3.5}, "temperature"},
		{"concurrency 0", flow.Config{"model": "m", "prompt": `"x"`, "concurrency": 0}, "concurrency"},
		{"rate_limit 0", flow.Config{"model": "m", "prompt": `"x"`, "rate_limit": 0}, "rate_limit"},
		{"retries negative", flow.Config{"model": "m", "prompt": `"x"`, "retries": -1}, "retries"},
		{"cache_ttl too short", flow.Config{"model": "m", "prompt": `"x"`, "cache_ttl": "10ms"}, "cache_ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseLLM(tc.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			var fe *flow.FieldError
			if !errors.As(err, &fe) || fe.Path != tc.want {
				t.Fatalf("error %v: want a field error at %q", err, tc.want)
			}
		})
	}
}

// TestLLMTextReplies: the prompt is built from the event, the reply lands
// in output_field, events keep their order with several requests in flight
// and no more than concurrency of them.
func TestLLMTextReplies(t *testing.T) {
	srv := llmtest.New(llmTestKey)
	defer srv.Close()
	srv.SetFault(func(n int, _ string) llmtest.Fault {
		// Early requests answer last, so out-of-order answers are certain.
		return llmtest.Fault{Delay: time.Duration(40-n%40) * time.Millisecond / 4}
	})
	p := newLLM(t, srv, flow.Config{
		"system":       `"You shout."`,
		"prompt":       `"say " + data.text + " #" + string(data.id)`,
		"output_field": "answer",
		"concurrency":  3,
	}, "", nil)
	in := llmEvents(40)
	outs, failures, err := p.ProcessBatch(context.Background(), in)
	if err != nil || len(failures) > 0 {
		t.Fatalf("err %v, failures %v", err, failures)
	}
	for i, o := range outs {
		if len(o) != 1 {
			t.Fatalf("event %d: %d outputs", i, len(o))
		}
		m := dataOf(t, o[0])
		want := fmt.Sprintf("SAY HELLO <%d> #%d", i, i)
		if m["answer"] != want || m["id"] != float64(i) || o[0].ID != in[i].ID {
			t.Fatalf("event %d: got %v (id %s), want answer %q", i, m, o[0].ID, want)
		}
	}
	if got := srv.MaxInFlight(); got != 3 {
		t.Errorf("max requests in flight at the server: %d, want 3 (concurrency)", got)
	}
	if srv.Requests() != 40 || srv.Rejected() != 0 {
		t.Errorf("server saw %d requests, %d rejected; want 40, 0", srv.Requests(), srv.Rejected())
	}
}

func TestLLMSchemaReplies(t *testing.T) {
	schema := map[string]any{
		"type":                 "object",
		"properties":           map[string]any{"label": map[string]any{"type": "string"}, "score": map[string]any{"type": "integer"}},
		"required":             []any{"label", "score"},
		"additionalProperties": false,
	}
	for _, tc := range []struct {
		name    string
		merge   bool
		content string // the stand-in's reply instead of the computed one
		check   func(t *testing.T, m map[string]any)
		fail    string // the failure's reason
	}{
		{name: "under output_field", check: func(t *testing.T, m map[string]any) {
			r, _ := m["llm"].(map[string]any)
			if r["label"] != "HELLO <0>" || r["score"] != float64(len("hello <0>")) || m["text"] != "hello <0>" {
				t.Errorf("got %v", m)
			}
		}},
		{name: "merged", merge: true, check: func(t *testing.T, m map[string]any) {
			if m["label"] != "HELLO <0>" || m["score"] != float64(9) || m["id"] != float64(0) || m["llm"] != nil {
				t.Errorf("got %v", m)
			}
		}},
		{name: "not JSON", content: "Sure! Here is the label: bug", fail: "the reply is not valid JSON"},
		{name: "not an object", content: `["bug"]`, fail: "the reply is an array, not the JSON object"},
		{name: "required missing", content: `{"label":"bug"}`, fail: `the reply lacks "score"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := llmtest.New(llmTestKey)
			defer srv.Close()
			srv.SetFault(func(int, string) llmtest.Fault { return llmtest.Fault{Content: tc.content} })
			p := newLLM(t, srv, flow.Config{"prompt": "data.text", "response_schema": schema, "merge": tc.merge}, "", nil)
			outs, failures, err := p.ProcessBatch(context.Background(), llmEvents(1))
			if err != nil {
				t.Fatal(err)
			}
			if tc.fail != "" {
				ferr := failures[0]
				if ferr == nil || !strings.Contains(ferr.Error(), tc.fail) || !errors.Is(ferr, flow.ErrPermanent) {
					t.Fatalf("failure %v: want a permanent one saying %q", ferr, tc.fail)
				}
				return
			}
			if len(failures) > 0 {
				t.Fatal(failures)
			}
			tc.check(t, dataOf(t, outs[0][0]))
		})
	}
}

// TestLLMRetries: 429 and 5xx are retried (Retry-After honoured), other
// 4xx fail the event at once with the status and the API's message, and
// spent retries fail it with the last error.
func TestLLMRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retries   int
		fault     func(n int) llmtest.Fault
		requests  int64
		minTime   time.Duration
		fail      string // "" for success
		permanent bool
	}{
		{name: "429 with Retry-After, then 503, then ok", retries: 5, requests: 3, minTime: 900 * time.Millisecond,
			fault: func(n int) llmtest.Fault {
				switch n {
				case 1:
					return llmtest.Fault{Status: 429, RetryAfter: "1", Message: "Rate limit reached"}
				case 2:
					return llmtest.Fault{Status: 503}
				}
				return llmtest.Fault{}
			}},
		{name: "500 until retries are spent", retries: 2, requests: 3, fail: "gave up after 3 attempts",
			fault: func(int) llmtest.Fault { return llmtest.Fault{Status: 500, Message: "The server had an error"} }},
		{name: "400 is not retried", retries: 5, requests: 1, permanent: true, fail: "400 Bad Request: Invalid value for 'max_tokens'",
			fault: func(int) llmtest.Fault {
				return llmtest.Fault{Status: 400, Message: "Invalid value for 'max_tokens'"}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := llmtest.New(llmTestKey)
			defer srv.Close()
			srv.SetFault(func(n int, _ string) llmtest.Fault { return tc.fault(n) })
			p := newLLM(t, srv, flow.Config{"prompt": "data.text", "retries": tc.retries, "backoff": "5ms"}, "", nil)
			start := time.Now()
			out, err := p.Process(context.Background(), llmEvents(1)[0], nil)
			took := time.Since(start)
			if srv.Requests() != tc.requests {
				t.Errorf("server saw %d requests, want %d", srv.Requests(), tc.requests)
			}
			if took < tc.minTime {
				t.Errorf("took %s, want at least %s (Retry-After)", took, tc.minTime)
			}
			if tc.fail == "" {
				if err != nil || len(out) != 1 || dataOf(t, out[0])["llm"] != "HELLO <0>" {
					t.Fatalf("got %v, %v", out, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.fail) || errors.Is(err, flow.ErrPermanent) != tc.permanent {
				t.Fatalf("error %v: want one saying %q, permanent %v", err, tc.fail, tc.permanent)
			}
		})
	}
}

func TestLLMRateLimit(t *testing.T) {
	srv := llmtest.New(llmTestKey)
	defer srv.Close()
	const rate, n = 40.0, 9
	p := newLLM(t, srv, flow.Config{"prompt": "data.text", "rate_limit": rate, "concurrency": 4}, "", nil)
	if _, failures, err := p.ProcessBatch(context.Background(), llmEvents(n)); err != nil || len(failures) > 0 {
		t.Fatal(err, failures)
	}
	times := srv.Times()
	if len(times) != n {
		t.Fatalf("%d requests, want %d", len(times), n)
	}
	span := times[n-1].Sub(times[0])
	if want := time.Duration(float64(n-1) / rate * float64(time.Second) * 0.9); span < want {
		t.Errorf("%d requests within %s; at %v/s they need at least %s", n, span, rate, want)
	}
}

// TestLLMCacheAcrossRestart: answers are kept in the state directory, so a
// new processor (a restarted run) asks nothing it asked before; cache:
// false asks every time.
func TestLLMCacheAcrossRestart(t *testing.T) {
	srv := llmtest.New(llmTestKey)
	defer srv.Close()
	state := t.TempDir()
	cfg := func() flow.Config { return flow.Config{"prompt": "data.text", "temperature": 0} }
	first := newLLM(t, srv, cfg(), state, nil)
	if _, f, err := first.ProcessBatch(context.Background(), llmEvents(50)); err != nil || len(f) > 0 {
		t.Fatal(err, f)
	}
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, "llm-cache.ask.db")); err != nil {
		t.Fatalf("cache file: %v", err)
	}
	second := newLLM(t, srv, cfg(), state, nil)
	outs, f, err := second.ProcessBatch(context.Background(), llmEvents(60))
	if err != nil || len(f) > 0 {
		t.Fatal(err, f)
	}
	if got := dataOf(t, outs[7][0])["llm"]; got != "HELLO <7>" {
		t.Errorf("cached answer: %v", got)
	}
	if srv.Requests() != 60 || second.cacheHits.Load() != 50 {
		t.Errorf("server saw %d requests, the restarted processor had %d cache hits; want 60 and 50", srv.Requests(), second.cacheHits.Load())
	}
	second.Close(context.Background())
	// Another parameter is another request.
	c := cfg()
	c["temperature"] = 1
	third := newLLM(t, srv, c, state, nil)
	if _, err := third.Process(context.Background(), llmEvents(1)[0], nil); err != nil {
		t.Fatal(err)
	}
	if srv.Requests() != 61 {
		t.Errorf("a new temperature was answered from the cache (%d requests)", srv.Requests())
	}
	third.Close(context.Background())
	c = cfg()
	c["cache"] = false
	off := newLLM(t, srv, c, state, nil)
	if _, err := off.Process(context.Background(), llmEvents(1)[0], nil); err != nil {
		t.Fatal(err)
	}
	if srv.Requests() != 62 {
		t.Errorf("cache: false did not ask (%d requests)", srv.Requests())
	}
}

// TestLLMKeyNeverShown: the key reaches the endpoint (the stand-in checks
// the header) and nowhere else: not in logs at debug level, not in errors.
func TestLLMKeyNeverShown(t *testing.T) {
	srv := llmtest.New(llmTestKey)
	defer srv.Close()
	var logs bytes.Buffer
	srv.SetFault(func(n int, _ string) llmtest.Fault {
		switch n {
		case 1:
			return llmtest.Fault{Status: 500}
		case 2:
			return llmtest.Fault{Status: 400, Message: "bad"}
		}
		return llmtest.Fault{}
	})
	p := newLLM(t, srv, flow.Config{"prompt": "data.text", "backoff": "1ms"}, "", &logs)
	_, err := p.Process(context.Background(), llmEvents(1)[0], nil)
	if err == nil {
		t.Fatal("want the 400")
	}
	if _, err := p.Process(context.Background(), llmEvents(2)[1], nil); err != nil {
		t.Fatal(err)
	}
	p.Close(context.Background())
	// A wrong key: 401, with a hint naming the variable, not the key.
	wrong := llmtest.New("another-key")
	defer wrong.Close()
	q := newLLM(t, wrong, flow.Config{"prompt": "data.text"}, "", &logs)
	_, err2 := q.Process(context.Background(), llmEvents(1)[0], nil)
	if err2 == nil || !strings.Contains(err2.Error(), "401") || !strings.Contains(err2.Error(), "FLOWCTL_LLM_TEST_KEY") {
		t.Fatalf("wrong key: %v", err2)
	}
	for what, s := range map[string]string{"logs": logs.String(), "400 error": err.Error(), "401 error": err2.Error(), "config": fmt.Sprint(p.endpoint, p.keyEnv, p.keyFile)} {
		if strings.Contains(s, llmTestKey) || strings.Contains(s, "SECRET") {
			t.Errorf("the API key is in the %s: %s", what, s)
		}
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("the retry was not logged (so the test proves little):\n%s", logs.String())
	}
}

func TestLLMAPIKeySources(t *testing.T) {
	srv := llmtest.New(llmTestKey)
	defer srv.Close()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(llmTestKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newLLM(t, srv, flow.Config{"prompt": "data.text", "api_key_env": "FLOWCTL_LLM_UNSET", "api_key_file": keyFile}, "", nil)
	if _, err := p.Process(context.Background(), llmEvents(1)[0], nil); err != nil {
		t.Fatalf("key from a file: %v", err)
	}
	// No key for api.openai.com: Open says which variable to set.
	cfg := flow.Config{"model": "m", "prompt": `"x"`, "api_key_env": "FLOWCTL_LLM_UNSET"}
	q, err := parseLLM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	q.log = slog.New(slog.DiscardHandler)
	if err := q.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "FLOWCTL_LLM_UNSET is not set") {
		t.Fatalf("open without a key: %v", err)
	}
}

// TestLLMNotAnObject: event data that cannot hold the reply fails the
// event, permanently, with the reason.
func TestLLMNotAnObject(t *testing.T) {
	srv := llmtest.New(llmTestKey)
	defer srv.Close()
	p := newLLM(t, srv, flow.Config{"prompt": `"x"`}, "", nil)
	_, err := p.Process(context.Background(), &flow.Event{ID: "a", Data: []byte(`[1,2]`)}, nil)
	if err == nil || !errors.Is(err, flow.ErrPermanent) || !strings.Contains(err.Error(), "not a JSON object") {
		t.Fatalf("got %v", err)
	}
}

// TestLLMCacheTTL: with cache_ttl an answer older than it is asked for
// again (in the file and in memory), and the file loses the old answers
// when the processor opens; answers cached before cache_ttl existed (no
// age) count as expired.
func TestLLMCacheTTL(t *testing.T) {
	srv := llmtest.New(llmTestKey)
	defer srv.Close()
	clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	llmClock = func() time.Time { return clock }
	t.Cleanup(func() { llmClock = time.Now })
	ask := func(p *llmProcessor, n int) {
		t.Helper()
		if _, f, err := p.ProcessBatch(context.Background(), llmEvents(n)); err != nil || len(f) > 0 {
			t.Fatal(err, f)
		}
	}
	for _, state := range []string{t.TempDir(), ""} {
		where := "file"
		if state == "" {
			where = "memory"
		}
		t.Run(where, func(t *testing.T) {
			start := srv.Requests()
			cfg := func() flow.Config { return flow.Config{"prompt": "data.text", "cache_ttl": "1h"} }
			p := newLLM(t, srv, cfg(), state, nil)
			ask(p, 10)
			clock = clock.Add(59 * time.Minute)
			ask(p, 10) // all fresh: from the cache
			if got := srv.Requests() - start; got != 10 {
				t.Fatalf("%d requests after two rounds within the ttl, want 10", got)
			}
			clock = clock.Add(2 * time.Minute)
			ask(p, 10) // 61 minutes old: asked again
			if got := srv.Requests() - start; got != 20 {
				t.Fatalf("%d requests after the ttl, want 20", got)
			}
			p.Close(context.Background())
			if state == "" {
				return
			}
			// Reopened two hours on: everything is older than the ttl
			// and deleted at open.
			clock = clock.Add(2 * time.Hour)
			var logs bytes.Buffer
			p = newLLM(t, srv, cfg(), state, &logs)
			if !strings.Contains(logs.String(), "deleted cached answers older than cache_ttl") || !strings.Contains(logs.String(), "answers=10") {
				t.Errorf("open did not prune the 10 old answers:\n%s", logs.String())
			}
			ask(p, 10)
			if got := srv.Requests() - start; got != 30 {
				t.Fatalf("%d requests after reopening past the ttl, want 30", got)
			}
			p.Close(context.Background())
		})
	}

	// A file written before cache_ttl existed: bare answers, no age.
	state := t.TempDir()
	c, _, err := openLLMBoltCache(llmCachePath(state, "ask"), llmExpiry{now: llmClock})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(llmCacheBucket).Put([]byte("k"), []byte("an old answer")) }); err != nil {
		t.Fatal(err)
	}
	c.close()
	for _, tc := range []struct {
		ttl  time.Duration
		want bool
	}{{0, true}, {time.Hour, false}} {
		c, _, err := openLLMBoltCache(llmCachePath(state, "ask"), llmExpiry{ttl: tc.ttl, now: llmClock})
		if err != nil {
			t.Fatal(err)
		}
		v, ok, err := c.get("k")
		c.close()
		if err != nil || ok != tc.want || (ok && v != "an old answer") {
			t.Errorf("ttl %v: get = %q, %v, %v; want found=%v", tc.ttl, v, ok, err, tc.want)
		}
	}
}
