package components

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/kafkatest"
)

func TestKafkaSinkConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  flow.Config
		want string // "" = valid
	}{
		{"minimal", flow.Config{"topic": "out"}, ""},
		{"everything", flow.Config{"topic": "out", "brokers": []any{"a:1"}, "key": "string(data.id)", "format": "envelope", "timeout": "5s", "client_id": "c"}, ""},
		{"no topic", flow.Config{}, "topic: is required"},
		{"bad topic", flow.Config{"topic": "a/b"}, `topic: "a/b" is not a topic name`},
		{"key not a string", flow.Config{"topic": "t", "key": "1 + 2"}, "key: "},
		{"key bad syntax", flow.Config{"topic": "t", "key": "data.("}, "key: "},
		{"bad format", flow.Config{"topic": "t", "format": "xml"}, `format: unknown format "xml"`},
		{"bad timeout", flow.Config{"topic": "t", "timeout": "0s"}, "timeout: must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := NewRegistry().Lookup(flow.RoleSink, "kafka")
			if err != nil {
				t.Fatal(err)
			}
			err = spec.Validate(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func kafkaTestSink(t *testing.T, cfg flow.Config) *kafkaSink {
	t.Helper()
	spec, err := NewRegistry().Lookup(flow.RoleSink, "kafka")
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(cfg); err != nil {
		t.Fatalf("validate %v: %v", cfg, err)
	}
	c, err := spec.New(flow.BuildContext{Name: "out", Pipeline: "p", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	s := c.(*kafkaSink)
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// TestKafkaSinkWrite: every event is stored with its attributes in ce_*
// headers and the key from the CEL expression; an event whose key fails
// fails alone; a kafka source reading the topic gets the events back
// with their ids, types and extensions.
func TestKafkaSinkWrite(t *testing.T) {
	k := kafkatest.Start(t, 3, "out")
	s := kafkaTestSink(t, flow.Config{"brokers": k.Brokers, "topic": "out", "key": "string(data.customer)"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var batch []*flow.Event
	for i := range 5 {
		batch = append(batch, &flow.Event{ID: fmt.Sprintf("e%d", i), Type: "order", Source: "shop", Subject: "s", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			DataContentType: "application/json", Data: fmt.Appendf(nil, `{"customer":%d}`, i%2), Metadata: map[string]string{"region": "eu", "kafka_offset": "9"}})
	}
	batch[2].Data = []byte(`{"other":1}`) // no customer: the key fails
	err := s.Write(ctx, batch)
	var be *flow.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[2] == nil || !strings.Contains(be.Failed[2].Error(), "key") {
		t.Fatalf("write: %v, want a batch error for event 2's key", err)
	}
	recs := k.ReadAll(t, "out", 4, 30*time.Second)
	if len(recs) != 4 {
		t.Fatalf("read %d records, want 4", len(recs))
	}
	for _, r := range recs {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		var c int
		fmt.Sscanf(string(r.Value), `{"customer":%d}`, &c)
		if string(r.Key) != fmt.Sprint(c) || h["ce_type"] != "order" || h["ce_source"] != "shop" || h["ce_region"] != "eu" || h["ce_time"] != "2026-01-02T03:04:05Z" ||
			h["content-type"] != "application/json" || h["ce_specversion"] != "1.0" || !strings.HasPrefix(h["ce_id"], "e") || h["ce_kafka_offset"] != "" {
			t.Fatalf("record key %q value %s headers %v", r.Key, r.Value, h)
		}
	}

	em := newIOTestEmitter()
	em.autoAck = true
	kafkaRun(t, kafkaTestSource(t, flow.Config{"brokers": k.Brokers, "topics": []any{"out"}}), em)
	evs := em.waitEvents(t, 4)
	for _, ev := range evs {
		if !strings.HasPrefix(ev.ID, "e") || ev.Type != "order" || ev.Source != "shop" || ev.Subject != "s" || ev.Metadata["region"] != "eu" || !ev.Time.Equal(batch[0].Time) {
			t.Fatalf("read back %+v", ev)
		}
	}
}

// TestKafkaSinkOpenErrors: a topic that does not exist stops the run at
// Open with what to do.
func TestKafkaSinkOpenErrors(t *testing.T) {
	k := kafkatest.Start(t, 1, "here")
	s := kafkaTestSink(t, flow.Config{"brokers": k.Brokers, "topic": "nowhere"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Open(ctx); err == nil || !strings.Contains(err.Error(), `topic "nowhere" does not exist`) {
		t.Fatalf("open: %v, want the missing topic named", err)
	}
}
