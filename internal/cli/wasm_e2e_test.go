package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/wasmtest"
)

// TestWasmKill9E2E runs `flowctl run` with file source → wasm processor
// (the Go example module examples/wasm/usdmap) → file sink over 5000
// events, of which every 500th has no amount and must reach the
// dead-letter file with the module's reason. It kills flowctl with
// SIGKILL when some but not all events are written, runs it again to its
// end, and counts the events lost (must be 0) and written twice (must be
// 0: the file source and file sink are exactly-once by checkpoint).
func TestWasmKill9E2E(t *testing.T) {
	bin := flowctlBinary(t)
	mod := wasmtest.BuildGo(t, "examples/wasm/usdmap")
	const total = 5000
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var buf bytes.Buffer
	bad := 0
	for i := range total {
		if i%500 == 7 {
			fmt.Fprintf(&buf, `{"id":%d,"kind":"fee"}`+"\n", i)
			bad++
			continue
		}
		fmt.Fprintf(&buf, `{"id":%d,"amount":%d,"kind":"payment"}`+"\n", i, 100+i)
	}
	os.WriteFile(in, buf.Bytes(), 0o644)
	pf := filepath.Join(dir, "pipeline.yaml")
	// The rate limit stretches the run over about 2.5 s so that the kill
	// lands in its middle.
	os.WriteFile(pf, []byte(fmt.Sprintf(`name: wasmkill
sources:
  - {name: in, type: file, config: {path: in.jsonl}}
processors:
  - {name: slow, type: rate_limit, inputs: [in], config: {rate: 2000, burst: 100}}
  - {name: usd, type: wasm, inputs: [slow], config: {module: %q}}
sinks:
  - {name: out, type: file, inputs: [usd], config: {path: out.jsonl}}
dead_letter:
  name: failed
  type: file
  config: {path: failed.jsonl, format: envelope}
`, mod)), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// count reads the output's whole lines: how many, how many distinct
	// ids, checking each is the module's answer.
	count := func() (lines, distinct int) {
		data, err := os.ReadFile(out)
		if os.IsNotExist(err) {
			return 0, 0
		}
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.LastIndexByte(data, '\n')
		if i < 0 {
			return 0, 0
		}
		seen := make(map[int]bool)
		for _, l := range strings.Split(string(data[:i]), "\n") {
			var ev struct {
				ID        *int    `json:"id"`
				Amount    int     `json:"amount"`
				AmountUSD float64 `json:"amount_usd"`
				Kind      string  `json:"kind"`
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.ID == nil || ev.Kind != "PAYMENT" || ev.Amount != 100+*ev.ID || ev.AmountUSD != float64(ev.Amount)/100 {
				t.Fatalf("output line %d is not the module's answer: %q", lines+1, l)
			}
			lines++
			if !seen[*ev.ID] {
				seen[*ev.ID] = true
				distinct++
			}
		}
		return lines, distinct
	}

	first := exec.CommandContext(ctx, bin, "run", "-f", pf, "--state-dir", state)
	var stderr1 bytes.Buffer
	first.Stderr = &stderr1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { first.Wait(); close(exited) }()
	t.Cleanup(func() { first.Process.Kill(); <-exited })
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for polls := 0; ; polls++ {
		if lines, _ := count(); lines >= total/2 {
			break
		}
		select {
		case <-exited:
			t.Fatalf("flowctl ended before half the events were written:\n%s", stderr1.String())
		case <-ctx.Done():
			t.Fatalf("not half the events after %d polls:\n%s", polls, stderr1.String())
		case <-tick.C:
		}
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	killedLines, _ := count()
	if killedLines >= total-bad {
		t.Fatalf("every event was written before the kill (%d lines): the test proves nothing", killedLines)
	}

	second := exec.CommandContext(ctx, bin, "run", "-f", pf, "--state-dir", state)
	b, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("the resumed run: %v\n%s", err, b)
	}
	lines, distinct := count()
	lost, repeated := total-bad-distinct, lines-distinct

	// The dead letters: each event without an amount, once, with the
	// module's reason.
	dl, err := os.ReadFile(filepath.Join(dir, "failed.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dead := map[int]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(dl)), "\n") {
		var ev struct {
			Data struct {
				Component string `json:"component"`
				Error     string `json:"error"`
				Event     struct {
					Data struct{ ID int } `json:"data"`
				} `json:"event"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("dead letter %q: %v", l, err)
		}
		if ev.Data.Component != "usd" || ev.Data.Error != "wasm module: amount is missing or not a number" {
			t.Errorf("dead letter %q: want component usd and the module's reason", l)
		}
		dead[ev.Data.Event.Data.ID]++
	}
	deadRepeated := 0
	for _, n := range dead {
		deadRepeated += n - 1
	}
	t.Logf("file → wasm → file: %d lines when killed; after the resumed run %d lines: lost %d, repeated %d; dead letters: %d distinct of %d, %d repeated",
		killedLines, lines, lost, repeated, len(dead), bad, deadRepeated)
	if lost != 0 || repeated != 0 {
		t.Fatalf("lost %d, repeated %d events\nfirst run:\n%s\nsecond run:\n%s", lost, repeated, stderr1.String(), b)
	}
	if len(dead) != bad {
		t.Fatalf("%d distinct dead letters, want %d", len(dead), bad)
	}
}
