package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowctl/flowctl/internal/kafkatest"
)

// The Kafka end-to-end tests run against kfake, franz-go's in-process
// fake of the Kafka protocol (not Apache Kafka), in this test process:
// only flowctl dies.

// TestKafkaSourceKill9E2E puts 5000 records in a topic of 3 partitions,
// runs `flowctl run` (kafka source → file sink) and kills it with SIGKILL
// when some but not all events are written, runs it again until every
// event is in the file, stops it with SIGTERM, and counts the events lost
// (must be 0) and written twice (measured: the source is at-least-once).
func TestKafkaSourceKill9E2E(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("stops flowctl with SIGTERM")
	}
	bin := flowctlBinary(t)
	const total = 5000
	k := kafkatest.Start(t, 3, "events")
	recs := make([]*kgo.Record, total)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "events", Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, (i*7919)%10000)}
	}
	k.Produce(t, recs...)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	dir := t.TempDir()
	pf := filepath.Join(dir, "pipeline.yaml")
	out := filepath.Join(dir, "out.jsonl")
	// The rate limit stretches the run over about 2.5 s so that the kill
	// lands in its middle; the short session lets the resumed run get
	// the killed member's partitions soon.
	os.WriteFile(pf, []byte(`name: kafkakill
sources:
  - {name: in, type: kafka, config: {brokers: ["${KAFKA_BROKERS}"], topics: [events], session_timeout: 2s}}
processors:
  - {name: slow, type: rate_limit, inputs: [in], config: {rate: 2000, burst: 100}}
sinks:
  - {name: out, type: file, inputs: [slow], config: {path: out.jsonl, format: envelope}}
`), 0o644)
	state := t.TempDir()
	run := func() *flowctlProc {
		return startFlowctl(t, bin, []string{"KAFKA_BROKERS=" + k.BrokerList()}, "run", "-f", pf, "--state-dir", state)
	}
	count := func() (int, int) { return kafkaCountOutput(t, out, total) }

	first := run()
	first.waitOutput(t, ctx, "half the events", count, func(lines, _ int) bool { return lines >= total/2 })
	first.kill9(t)
	killedLines, _ := kafkaCountOutput(t, out, total)
	if killedLines >= total {
		t.Fatalf("every event was written before the kill (%d lines): the test proves nothing", killedLines)
	}
	var atKill int64
	for _, o := range k.Committed(t, "kafkakill_in", "events") {
		atKill += o
	}

	second := run()
	second.waitOutput(t, ctx, "every event", count, func(_, distinct int) bool { return distinct == total })
	second.stop(t, ctx)
	lines, distinct := kafkaCountOutput(t, out, total)
	lost, repeated := total-distinct, lines-distinct
	committed := k.Committed(t, "kafkakill_in", "events")
	var sum int64
	for _, o := range committed {
		sum += o
	}
	t.Logf("kafka source → file (kfake): %d lines when killed, %d offsets committed then; after the resumed run %d lines: lost %d, repeated %d; committed offsets %v (sum %d)",
		killedLines, atKill, lines, lost, repeated, committed, sum)
	if lost != 0 {
		t.Fatalf("lost %d events\nfirst run:\n%s\nsecond run:\n%s", lost, first.stderr.String(), second.stderr.String())
	}
	if sum != total {
		t.Fatalf("the group committed offsets summing to %d, want %d (every record)", sum, total)
	}
}

// kafkaCountOutput reads the file sink's output (CloudEvents envelopes):
// its whole lines and how many distinct events of 0..total-1 they hold. A
// line that is not one of the events fails the test.
func kafkaCountOutput(t *testing.T, path string, total int) (lines, distinct int) {
	t.Helper()
	data, err := os.ReadFile(path)
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
	data = data[:i+1]
	seen := make([]bool, total)
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var ev struct {
			ID   string `json:"id"`
			Data struct {
				I *int `json:"i"`
			} `json:"data"`
			Topic     string `json:"kafka_topic"`
			Partition string `json:"kafka_partition"`
			Offset    string `json:"kafka_offset"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Data.I == nil || *ev.Data.I < 0 || *ev.Data.I >= total ||
			ev.ID != ev.Topic+"/"+ev.Partition+"/"+ev.Offset || ev.Topic != "events" {
			t.Fatalf("output line %d is not one of the events: %q", lines+1, l)
		}
		lines++
		if !seen[*ev.Data.I] {
			seen[*ev.Data.I] = true
			distinct++
		}
	}
	return lines, distinct
}

// TestKafkaSinkKill9E2E runs `flowctl run` producing 5000 events from a
// file to a topic of 3 partitions (key from a CEL expression), kills it
// with SIGKILL when some but not all are stored, runs it again to its
// end, reads the topic back and counts the events lost (must be 0) and
// stored twice (measured: the resumed file source sends again what
// followed its last checkpoint, and the sink is at-least-once).
func TestKafkaSinkKill9E2E(t *testing.T) {
	bin := flowctlBinary(t)
	const total = 5000
	k := kafkatest.Start(t, 3, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	dir := t.TempDir()
	writeEvents(t, filepath.Join(dir, "events.jsonl"), total)
	pf := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pf, []byte(`name: kafkasink
sources:
  - {name: in, type: file, config: {path: events.jsonl}}
processors:
  - {name: slow, type: rate_limit, inputs: [in], config: {rate: 2000, burst: 100}}
sinks:
  - {name: out, type: kafka, inputs: [slow], config: {brokers: ["${KAFKA_BROKERS}"], topic: out, key: data.account}}
`), 0o644)
	state := t.TempDir()
	run := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "-f", pf, "--state-dir", state)
		cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+k.BrokerList())
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
	for i := 0; k.Stored(t, "out") < total/2; i++ {
		select {
		case <-exited:
			t.Fatalf("the first run ended before the kill:\n%s", out1.String())
		case <-ctx.Done():
			t.Fatalf("fewer than %d records stored after %d polls:\n%s", total/2, i, out1.String())
		case <-tick.C:
		}
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	atKill := k.Stored(t, "out")
	if atKill >= total {
		t.Fatalf("every event was stored before the kill (%d): the test proves nothing", atKill)
	}

	second := run()
	out2, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("the resumed run: %v\n%s", err, out2)
	}

	stored := k.Stored(t, "out")
	recs := k.ReadAll(t, "out", int(stored), 60*time.Second)
	if int64(len(recs)) != stored {
		t.Fatalf("read %d records back, the topic holds %d", len(recs), stored)
	}
	seen := map[int]bool{}
	for _, r := range recs {
		var ev struct {
			ID      *int   `json:"id"`
			Account string `json:"account"`
		}
		if err := json.Unmarshal(r.Value, &ev); err != nil || ev.ID == nil {
			t.Fatalf("record %q is not one of the events", r.Value)
		}
		var ceID string
		for _, h := range r.Headers {
			if h.Key == "ce_id" {
				ceID = string(h.Value)
			}
		}
		if want := fmt.Sprintf("in:%d", *ev.ID+1); ceID != want || string(r.Key) != ev.Account {
			t.Fatalf("record %s has ce_id %q and key %q, want %q and %q", r.Value, ceID, r.Key, want, ev.Account)
		}
		seen[*ev.ID] = true
	}
	lost, repeated := total-len(seen), len(recs)-len(seen)
	t.Logf("file → kafka sink (kfake): %d records stored when killed; after the resumed run %d: lost %d, repeated %d", atKill, len(recs), lost, repeated)
	if lost != 0 {
		t.Fatalf("lost %d\nfirst run:\n%s\nsecond run:\n%s", lost, out1.String(), out2)
	}
}
