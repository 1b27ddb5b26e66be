package components

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/natstest"
)

func TestNATSSinkConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  flow.Config
		want string // "" = valid
	}{
		{"minimal", flow.Config{"subject": "orders.created"}, ""},
		{"everything", flow.Config{"subject": "a.b", "stream": "S", "create_stream": true, "dedupe": false, "format": "envelope", "timeout": "1s", "url": "nats://h:1"}, ""},
		{"core nats", flow.Config{"subject": "a", "jetstream": false}, ""},
		{"no subject", flow.Config{}, "subject: is required"},
		{"wildcard subject", flow.Config{"subject": "a.*"}, `subject: "a.*" is not a subject to publish on`},
		{"bad stream", flow.Config{"subject": "a", "stream": "x y"}, `stream: "x y" is not a stream name`},
		{"create without stream", flow.Config{"subject": "a", "create_stream": true}, "create_stream: needs jetstream: true and stream"},
		{"bad format", flow.Config{"subject": "a", "format": "xml"}, `format: unknown format "xml"`},
		{"bad timeout", flow.Config{"subject": "a", "timeout": "-1s"}, "timeout: must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := NewRegistry().Lookup(flow.RoleSink, "nats")
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

func natsTestSink(t *testing.T, cfg flow.Config) *natsSink {
	t.Helper()
	spec, err := NewRegistry().Lookup(flow.RoleSink, "nats")
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
	return c.(*natsSink)
}

// TestNATSSinkPublishDedupe: every event is stored with its attributes in
// ce-* headers and Nats-Msg-Id = its id; the same batch written again
// (a replay after a crash) is not stored twice; a nats source reading the
// stream gets the events back with their ids and types.
func TestNATSSinkPublishDedupe(t *testing.T) {
	srv := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sink := natsTestSink(t, flow.Config{"url": srv.URL, "subject": "out.events", "stream": "OUT", "create_stream": true})
	if err := sink.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer sink.Close(ctx)
	batch := []*flow.Event{
		{ID: "in:1", Type: "payment", Source: "in", DataContentType: "application/json", Data: []byte(`{"n":1}`), Metadata: map[string]string{"tenant": "a"}},
		{ID: "in:2", Type: "payment", Source: "in", DataContentType: "application/json", Data: []byte(`{"n":2}`)},
		{ID: "in:3", Type: "refund", Source: "in", DataContentType: "application/json", Data: []byte(`{"n":3}`)},
	}
	for range 2 {
		if err := sink.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if d := sink.Duplicates(); d != 3 {
		t.Fatalf("%d duplicates reported, want 3", d)
	}
	_, js := srv.Connect(t)
	st, err := js.Stream(ctx, "OUT")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("the stream holds %d messages, want 3 (the replay deduplicated)", info.State.Msgs)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{jetstream.MsgIDHeader: "in:1", "ce-id": "in:1", "ce-type": "payment", "ce-source": "in", "ce-specversion": "1.0", "ce-tenant": "a", "content-type": "application/json"} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}

	em := newIOTestEmitter()
	em.autoAck = true
	natsRun(t, natsTestSource(t, flow.Config{"url": srv.URL, "stream": "OUT"}), em)
	evs := em.waitEvents(t, 3)
	for i, e := range evs {
		if e.ID != batch[i].ID || e.Type != batch[i].Type || string(e.Data) != string(batch[i].Data) || e.Source != "in" {
			t.Fatalf("round trip %d: %+v, want %+v", i, e, batch[i])
		}
	}
	if evs[0].Metadata["tenant"] != "a" {
		t.Fatalf("metadata %v, want tenant a", evs[0].Metadata)
	}
}

// TestNATSSinkErrors: a subject no stream takes fails at Open with how to
// make one; core NATS needs no stream.
func TestNATSSinkErrors(t *testing.T) {
	srv := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		cfg  flow.Config
		want string
	}{
		{"no stream takes the subject", flow.Config{"url": srv.URL, "subject": "lost"}, `no JetStream stream takes subject "lost" — create one (nats stream add NAME --subjects "lost")`},
		{"named stream missing", flow.Config{"url": srv.URL, "subject": "lost", "stream": "GONE"}, `JetStream stream "GONE" does not exist — create it (nats stream add GONE --subjects "lost")`},
		{"core nats", flow.Config{"url": srv.URL, "subject": "lost", "jetstream": false}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := natsTestSink(t, tc.cfg)
			err := s.Open(ctx)
			defer s.Close(ctx)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Write(ctx, []*flow.Event{{ID: "1", Data: []byte(`{}`)}}); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open: %v\nwant %q", err, tc.want)
			}
		})
	}
}
