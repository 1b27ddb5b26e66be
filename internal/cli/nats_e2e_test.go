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
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowctl/flowctl/internal/natstest"
)

// TestNATSSourceKill9E2E puts 5000 messages in a JetStream stream, runs
// `flowctl run` (nats source → file sink) and kills it with SIGKILL when
// some but not all events are written, runs it again until every event is
// in the file, stops it with SIGTERM, and counts the events lost (must be
// 0) and written twice (measured: the source is at-least-once). The NATS
// server runs in this test process: only flowctl dies.
func TestNATSSourceKill9E2E(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("stops flowctl with SIGTERM")
	}
	bin := flowctlBinary(t)
	const total = 5000
	srv := natstest.Start(t)
	srv.CreateStream(t, "EVENTS", "events.>")
	_, js := srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// In rounds of 500 acknowledged before the next: all 5000 at once
	// exceed nats.go's async window and stall (an error) on a busy machine.
	futs := make([]jetstream.PubAckFuture, 0, 500)
	for i := range total {
		f, err := js.PublishAsync(fmt.Sprintf("events.k%d", i%3), fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, (i*7919)%10000))
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) < cap(futs) && i < total-1 {
			continue
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatal(err)
			case <-ctx.Done():
				t.Fatal("publishing the events timed out")
			}
		}
		futs = futs[:0]
	}

	dir := t.TempDir()
	pf := filepath.Join(dir, "pipeline.yaml")
	out := filepath.Join(dir, "out.jsonl")
	// The rate limit stretches the run over about 2.5 s so that the kill
	// lands in its middle; ack_wait is short so that the resumed run gets
	// what the killed one left unacked soon. The envelope keeps each
	// event's nats_delivered, so the test sees the redeliveries.
	os.WriteFile(pf, []byte(`name: natskill
sources:
  - {name: in, type: nats, config: {url: "${NATS_URL}", stream: EVENTS, ack_wait: 2s}}
processors:
  - {name: slow, type: rate_limit, inputs: [in], config: {rate: 2000, burst: 100}}
sinks:
  - {name: out, type: file, inputs: [slow], config: {path: out.jsonl, format: envelope}}
`), 0o644)
	state := t.TempDir()
	run := func() *flowctlProc {
		return startFlowctl(t, bin, []string{"NATS_URL=" + srv.URL}, "run", "-f", pf, "--state-dir", state)
	}
	count := func() (int, int) {
		lines, distinct, _ := natsCountOutput(t, out, total)
		return lines, distinct
	}

	first := run()
	first.waitOutput(t, ctx, "half the events", count, func(lines, _ int) bool { return lines >= total/2 })
	first.kill9(t)
	killedLines, _, _ := natsCountOutput(t, out, total)
	if killedLines >= total {
		t.Fatalf("every event was written before the kill (%d lines): the test proves nothing", killedLines)
	}

	second := run()
	second.waitOutput(t, ctx, "every event", count, func(_, distinct int) bool { return distinct == total })
	second.stop(t, ctx)
	lines, distinct, redelivered := natsCountOutput(t, out, total)
	lost, repeated := total-distinct, lines-distinct

	// JetStream's side: everything acked, nothing left for the consumer.
	c, err := js.Consumer(ctx, "EVENTS", "natskill_in")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("nats source → file: %d lines when killed; after the resumed run %d lines: lost %d, repeated %d; %d events written from a redelivery (fetched but not acked by the killed run); consumer: %d acked, %d pending acks",
		killedLines, lines, lost, repeated, redelivered, info.AckFloor.Stream, info.NumAckPending)
	if lost != 0 {
		t.Fatalf("lost %d events\nfirst run:\n%s\nsecond run:\n%s", lost, first.stderr.String(), second.stderr.String())
	}
	if info.AckFloor.Stream != total || info.NumAckPending != 0 || info.NumPending != 0 {
		t.Fatalf("consumer after the runs: ack floor %d, %d pending acks, %d undelivered; want %d, 0, 0", info.AckFloor.Stream, info.NumAckPending, info.NumPending, total)
	}
}

// natsCountOutput reads the file sink's output (CloudEvents envelopes):
// its lines, how many distinct events of 0..total-1 they hold, and how
// many came from a redelivery (nats_delivered > 1). A line that is not one
// of the events fails the test.
func natsCountOutput(t *testing.T, path string, total int) (lines, distinct, redelivered int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, 0, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	// A line still being written has no newline yet: count whole lines.
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		return 0, 0, 0
	}
	data = data[:i+1]
	seen := make([]bool, total)
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var ev struct {
			ID   string `json:"id"`
			Data struct {
				I *int `json:"i"`
			} `json:"data"`
			Delivered string `json:"nats_delivered"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Data.I == nil || *ev.Data.I < 0 || *ev.Data.I >= total ||
			ev.ID != fmt.Sprintf("EVENTS:%d", *ev.Data.I+1) || ev.Delivered == "" {
			t.Fatalf("output line %d is not one of the events: %q", lines+1, l)
		}
		lines++
		if ev.Delivered != "1" {
			redelivered++
		}
		if !seen[*ev.Data.I] {
			seen[*ev.Data.I] = true
			distinct++
		}
	}
	return lines, distinct, redelivered
}

// TestNATSSinkKill9E2E runs `flowctl run` publishing 5000 events from a
// file to a JetStream stream, kills it with SIGKILL when some but not all
// are stored, runs it again to its end, and counts the events lost and
// stored twice. The resumed file source sends again what followed its
// last checkpoint; the sink's Nats-Msg-Id (the event id) lets the stream
// drop what it already has.
func TestNATSSinkKill9E2E(t *testing.T) {
	bin := flowctlBinary(t)
	const total = 5000
	srv := natstest.Start(t)
	srv.CreateStream(t, "OUT", "out.events")
	_, js := srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "OUT")
	if err != nil {
		t.Fatal(err)
	}
	stored := func() int {
		t.Helper()
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return int(info.State.Msgs)
	}

	dir := t.TempDir()
	writeEvents(t, filepath.Join(dir, "events.jsonl"), total)
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`name: natssink
sources:
  - {name: in, type: file, config: {path: events.jsonl}}
processors:
  - {name: slow, type: rate_limit, inputs: [in], config: {rate: 2000, burst: 100}}
sinks:
  - {name: out, type: nats, inputs: [slow], config: {url: "${NATS_URL}", subject: out.events}}
`), 0o644)
	state := t.TempDir()
	run := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "-f", pf, "--state-dir", state)
		cmd.Env = append(os.Environ(), "NATS_URL="+srv.URL)
		return cmd
	}

	first := run()
	var out1 bytes.Buffer
	first.Stderr = &out1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		first.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		first.Process.Kill()
		<-exited
	})
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; stored() < total/2; i++ {
		select {
		case <-exited:
			t.Fatalf("the first run ended before the kill:\n%s", out1.String())
		case <-ctx.Done():
			t.Fatalf("fewer than %d messages stored after %d polls:\n%s", total/2, i, out1.String())
		case <-tick.C:
		}
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	atKill := stored()
	if atKill >= total {
		t.Fatalf("every event was stored before the kill (%d): the test proves nothing", atKill)
	}

	second := run()
	out2, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("the resumed run: %v\n%s", err, out2)
	}

	// Read the stream back: every event's id once.
	c, err := js.OrderedConsumer(ctx, "OUT", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := stored()
	seen := map[string]bool{}
	for range msgs {
		m, err := c.Next(jetstream.FetchMaxWait(30 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			ID *int `json:"id"`
		}
		if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.ID == nil {
			t.Fatalf("message %q is not one of the events", m.Data())
		}
		if want := fmt.Sprintf("in:%d", *ev.ID+1); m.Headers().Get(jetstream.MsgIDHeader) != want {
			t.Fatalf("message %s has Nats-Msg-Id %q, want %q", m.Data(), m.Headers().Get(jetstream.MsgIDHeader), want)
		}
		seen[fmt.Sprint(*ev.ID)] = true
	}
	lost, repeated := total-len(seen), msgs-len(seen)
	dups := 0
	if m := regexp.MustCompile(`duplicates=(\d+)`).FindAllSubmatch(out2, -1); len(m) > 0 {
		dups, _ = strconv.Atoi(string(m[len(m)-1][1]))
	}
	t.Logf("file → nats sink: %d messages stored when killed; after the resumed run %d: lost %d, repeated %d; %d events sent again were dropped by JetStream (Nats-Msg-Id)",
		atKill, msgs, lost, repeated, dups)
	if lost != 0 || repeated != 0 {
		t.Fatalf("lost %d, repeated %d; want 0, 0\nfirst run:\n%s\nsecond run:\n%s", lost, repeated, out1.String(), out2)
	}
}
