package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/llmtest"
)

var llmDoneRe = regexp.MustCompile(`llm: done.* requests=([0-9]+) cache_hits=([0-9]+)`)

// TestLLMProcessorKill9E2E runs `flowctl run` (file source of 2000 lines →
// llm processor → file sink) against internal/llmtest, a stand-in that
// speaks the chat completions format on loopback (no model runs here; it
// answers the prompt in upper case), kills it with SIGKILL when some but
// not all events are written, runs it again to the end, and counts the
// events lost (must be 0), written twice (must be 0 with the file sink)
// and the requests the stand-in served in all: the response cache in the
// state directory answers the replayed events, so the second run asks
// little again. It also checks that the API key appears in no output
// (the runs' logs at debug level, the sink's file, validate, components).
func TestLLMProcessorKill9E2E(t *testing.T) {
	bin := flowctlBinary(t)
	const total = 2000
	const key = "sk-e2e-SECRET-91b7d0"
	srv := llmtest.New(key)
	defer srv.Close()
	// A few milliseconds per answer stretch the run over about 2 s with
	// 4 requests in flight, so the kill lands mid-run; one request in 50
	// first gets a 429 (Retry-After 0: the backoff's own wait) or a 500.
	srv.SetFault(func(n int, _ string) llmtest.Fault {
		switch n % 50 {
		case 7:
			return llmtest.Fault{Status: 429, RetryAfter: "0", Message: "Rate limit reached"}
		case 23:
			return llmtest.Fault{Status: 500}
		}
		return llmtest.Fault{Delay: 4 * time.Millisecond}
	})

	dir := t.TempDir()
	writeEvents(t, filepath.Join(dir, "events.jsonl"), total)
	pf := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(pf, []byte(`name: llm-e2e
sources:
  - {name: in, type: file, config: {path: events.jsonl}}
processors:
  - name: ask
    type: llm
    inputs: [in]
    config:
      url: ${LLM_URL}
      model: stand-in
      api_key_env: E2E_LLM_KEY
      system: '"You shout."'
      prompt: '"say " + data.account + " " + string(data.id)'
      output_field: reply
      backoff: 10ms
sinks:
  - {name: out, type: file, inputs: [ask], config: {path: out.jsonl}}
dead_letter:
  type: file
  config: {path: failed.jsonl}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	run := func(stderr *bytes.Buffer) *exec.Cmd {
		cmd := exec.Command(bin, "run", "-f", pf, "--state-dir", state, "--log-level", "debug")
		cmd.Env = append(os.Environ(), "LLM_URL="+srv.URL, "E2E_LLM_KEY="+key)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		return cmd
	}
	outPath := filepath.Join(dir, "out.jsonl")
	lines := func() int {
		b, _ := os.ReadFile(outPath)
		return bytes.Count(b, []byte("\n"))
	}

	var out1 bytes.Buffer
	first := run(&out1)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := 0; lines() < total/3; i++ {
		select {
		case err := <-exited:
			t.Fatalf("the first run ended (%v) before the kill:\n%s", err, out1.String())
		case <-ctx.Done():
			first.Process.Kill()
			t.Fatalf("fewer than %d lines after %d polls:\n%s", total/3, i, out1.String())
		case <-tick.C:
		}
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	atKill, requestsAtKill := lines(), srv.Requests()
	if atKill >= total {
		t.Fatalf("every event was written before the kill (%d): the test proves nothing", atKill)
	}

	var out2 bytes.Buffer
	second := run(&out2)
	if err := second.Run(); err != nil {
		t.Fatalf("the resumed run: %v\n%s", err, out2.String())
	}
	requests := srv.Requests()

	data, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var ev struct {
			ID      int    `json:"id"`
			Account string `json:"account"`
			Reply   string `json:"reply"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		if want := llmtest.Upper(fmt.Sprintf("say %s %d", ev.Account, ev.ID)); ev.Reply != want {
			t.Fatalf("line %d: reply %q, want %q", i+1, ev.Reply, want)
		}
		seen[ev.ID]++
	}
	lost, repeated := 0, 0
	for id := range total {
		switch n := seen[id]; {
		case n == 0:
			lost++
		case n > 1:
			repeated += n - 1
		}
	}
	failed, _ := os.ReadFile(filepath.Join(dir, "failed.jsonl"))
	// Requests beyond one per event: the faults' retries (about 2 in 50)
	// and the answers the kill kept out of the cache.
	t.Logf("killed at %d of %d lines after %d requests; after the resumed run: lost %d, repeated %d; the stand-in served %d requests in all (%d in the resumed run, %d more than events)",
		atKill, total, requestsAtKill, lost, repeated, requests, requests-requestsAtKill, requests-total)
	if lost != 0 || repeated != 0 || len(failed) != 0 {
		t.Fatalf("lost %d, repeated %d, dead-lettered %q; want 0, 0, none\nfirst run:\n%s\nsecond run:\n%s", lost, repeated, failed, out1.String(), out2.String())
	}
	if srv.Rejected() != 0 {
		t.Errorf("the stand-in refused %d requests as malformed or unauthorised", srv.Rejected())
	}
	// Without the cache the resumed run would ask again for every event
	// after the checkpoint; with it, at most what the kill kept out of it.
	if again := requests - requestsAtKill; again > int64(total-atKill)+int64(total)/10 {
		t.Errorf("the resumed run asked %d times for %d events left: the cache did not answer the replayed ones", again, total-atKill)
	}
	m := llmDoneRe.FindStringSubmatch(out2.String())
	if m == nil {
		t.Errorf("the resumed run did not report its requests and cache hits:\n%s", out2.String())
	} else {
		t.Logf("the resumed run's llm processor: %s requests, %s answers from the cache", m[1], m[2])
	}
	// The key reaches the endpoint, and nowhere else.
	validate := exec.Command(bin, "validate", "-f", pf)
	validate.Env = append(os.Environ(), "LLM_URL="+srv.URL, "E2E_LLM_KEY="+key)
	vout, _ := validate.CombinedOutput()
	cmp, _ := exec.Command(bin, "components", "llm").CombinedOutput()
	for what, s := range map[string]string{"first run's output": out1.String(), "second run's output": out2.String(), "sink output": string(data), "validate": string(vout), "components": string(cmp)} {
		if strings.Contains(s, key) || strings.Contains(s, "SECRET") {
			t.Errorf("the API key is in the %s", what)
		}
	}
	stateFiles, _ := filepath.Glob(filepath.Join(state, "*", "*"))
	t.Logf("state files: %v", stateFiles)
}

// TestLLMProcessorDeadLetterE2E: through `flowctl run`, an event the
// endpoint refuses (400) and one whose reply is not the JSON the schema
// asks for go to the dead-letter file with the reason; the others are
// written, and the run succeeds.
func TestLLMProcessorDeadLetterE2E(t *testing.T) {
	bin := flowctlBinary(t)
	srv := llmtest.New("")
	defer srv.Close()
	srv.SetFault(func(_ int, prompt string) llmtest.Fault {
		switch prompt {
		case "account acct-3":
			return llmtest.Fault{Status: 400, Message: "This model's maximum context length is 8192 tokens"}
		case "account acct-5":
			return llmtest.Fault{Content: "I think it is fine."}
		}
		return llmtest.Fault{}
	})
	dir := t.TempDir()
	writeEvents(t, filepath.Join(dir, "events.jsonl"), 10)
	pf := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(pf, []byte(`name: llm-dlq
sources:
  - {name: in, type: file, config: {path: events.jsonl}}
processors:
  - name: ask
    type: llm
    inputs: [in]
    config:
      url: ${LLM_URL}
      model: stand-in
      prompt: '"account " + data.account'
      response_schema: {type: object, properties: {ok: {type: boolean}}, required: [ok]}
      merge: true
sinks:
  - {name: out, type: file, inputs: [ask], config: {path: out.jsonl}}
dead_letter:
  type: file
  config: {path: failed.jsonl, format: envelope}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-f", pf, "--state-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "LLM_URL="+srv.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	good := readLines(t, filepath.Join(dir, "out.jsonl"))
	failed := readLines(t, filepath.Join(dir, "failed.jsonl"))
	all := strings.Join(failed, "\n")
	if len(good) != 8 || len(failed) != 2 || !strings.Contains(all, "400 Bad Request: This model's maximum context length") || !strings.Contains(all, "the reply is not valid JSON") {
		t.Fatalf("%d written, %d dead letters:\n%s\nrun:\n%s", len(good), len(failed), all, out)
	}
	if !strings.Contains(good[0], `"ok":true`) {
		t.Errorf("merged reply missing: %s", good[0])
	}
}
