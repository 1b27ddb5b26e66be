package components

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/natstest"
)

func TestNATSSourceConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  flow.Config
		want string // "" = valid
	}{
		{"minimal", flow.Config{"stream": "ORDERS"}, ""},
		{"everything", flow.Config{"stream": "ORDERS", "url": "nats://a:4222, tls://b:4222", "subjects": []any{"orders.>", "x.*.y"}, "durable": "d-1", "deliver": "new", "batch": 10, "ack_wait": "5s", "max_ack_pending": 50, "create_stream": true, "format": "text"}, ""},
		{"no stream", flow.Config{}, "stream: is required"},
		{"bad stream name", flow.Config{"stream": "a.b"}, `stream: "a.b" is not a stream name`},
		{"bad durable", flow.Config{"stream": "S", "durable": "my consumer"}, `durable: "my consumer" is not a consumer name`},
		{"bad subject", flow.Config{"stream": "S", "subjects": []any{"a.>.b"}}, `subjects[0]: "a.>.b" is not a subject`},
		{"empty token", flow.Config{"stream": "S", "subjects": []any{"a..b"}}, `subjects[0]: "a..b" is not a subject`},
		{"create without subjects", flow.Config{"stream": "S", "create_stream": true}, "create_stream: needs subjects"},
		{"batch too big", flow.Config{"stream": "S", "batch": 1000}, "batch: 1000 is out of range"},
		{"ack_wait too short", flow.Config{"stream": "S", "ack_wait": "10ms"}, "ack_wait: must be at least 1s"},
		{"max_ack_pending zero", flow.Config{"stream": "S", "max_ack_pending": 0}, "max_ack_pending: must be positive"},
		{"max_ack_pending below batch", flow.Config{"stream": "S", "max_ack_pending": 10}, "max_ack_pending: 10 is smaller than batch (256)"},
		{"small batch, small max_ack_pending", flow.Config{"stream": "S", "max_ack_pending": 10, "batch": 10}, ""},
		{"bad url", flow.Config{"stream": "S", "url": "http://x:1"}, `url: "http://x:1" is not a NATS server URL`},
		{"bad format", flow.Config{"stream": "S", "format": "xml"}, `format: unknown format "xml"`},
		{"bad deliver", flow.Config{"stream": "S", "deliver": "last"}, `deliver: unknown policy "last"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := NewRegistry().Lookup(flow.RoleSource, "nats")
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

func TestNATSConsumerName(t *testing.T) {
	for in, want := range map[string]string{
		"pipe_in":          "pipe_in",
		"my.pipe_src 1":    "my_pipe_src_1",
		"a/b\\c~d*e>f":     "a_b_c_d_e_f",
		"payments_ledger2": "payments_ledger2",
	} {
		if got := natsConsumerName(in); got != want || !natsValidName(got) {
			t.Errorf("natsConsumerName(%q) = %q, want %q (valid)", in, got, want)
		}
	}
}

// natsTestSource builds a nats source through its spec, for pipeline p.
func natsTestSource(t *testing.T, cfg flow.Config) *natsSource {
	t.Helper()
	spec, err := NewRegistry().Lookup(flow.RoleSource, "nats")
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(cfg); err != nil {
		t.Fatalf("validate %v: %v", cfg, err)
	}
	c, err := spec.New(flow.BuildContext{Name: "in", Pipeline: "p", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return c.(*natsSource)
}

// natsRun opens src and runs it in the background; the returned stop
// cancels it, waits for Run and closes the source.
func natsRun(t *testing.T, src *natsSource, em flow.Emitter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
	defer ocancel()
	if err := src.Open(octx); err != nil {
		cancel()
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, em) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("run did not end within 30s of its cancellation")
			}
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			if err := src.Close(cctx); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func natsPublish(t *testing.T, js jetstream.JetStream, subject string, payloads ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range payloads {
		if _, err := js.Publish(ctx, subject, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
}

// natsWaitConsumer polls the consumer's info (bounded) until ok says yes.
func natsWaitConsumer(t *testing.T, js jetstream.JetStream, stream, durable string, what string, ok func(*jetstream.ConsumerInfo) bool) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last *jetstream.ConsumerInfo
	for i := 0; ; i++ {
		c, err := js.Consumer(ctx, stream, durable)
		if err == nil {
			if last, err = c.Info(ctx); err == nil && ok(last) {
				return last
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumer %s never reached: %s (after %d polls; last %+v, %v)", durable, what, i, last, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestNATSSourceAcksAfterAcknowledgement: messages become events with
// their attributes, and they are acked to JetStream only once the
// pipeline acknowledged them.
func TestNATSSourceAcksAfterAcknowledgement(t *testing.T) {
	srv := natstest.Start(t)
	srv.CreateStream(t, "ORDERS", "orders.>")
	_, js := srv.Connect(t)
	var payloads []string
	for i := range 10 {
		payloads = append(payloads, fmt.Sprintf(`{"n":%d}`, i))
	}
	natsPublish(t, js, "orders.new", payloads...)

	src := natsTestSource(t, flow.Config{"url": srv.URL, "stream": "ORDERS", "batch": 4})
	em := newIOTestEmitter()
	natsRun(t, src, em)
	evs := em.waitEvents(t, 10)
	for i, e := range evs {
		if want := fmt.Sprintf("ORDERS:%d", i+1); e.ID != want || e.Type != "orders.new" || string(e.Data) != payloads[i] ||
			e.Metadata["nats_seq"] != fmt.Sprint(i+1) || e.Metadata["nats_delivered"] != "1" || e.DataContentType != "application/json" || e.Time.IsZero() {
			t.Fatalf("event %d: %+v, want id %s type orders.new data %s", i, e, want, payloads[i])
		}
	}
	if src.durable != "p_in" {
		t.Fatalf("default durable %q, want p_in", src.durable)
	}
	info := natsWaitConsumer(t, js, "ORDERS", "p_in", "10 delivered", func(ci *jetstream.ConsumerInfo) bool { return ci.Delivered.Stream == 10 })
	if info.NumAckPending != 10 || info.AckFloor.Stream != 0 {
		t.Fatalf("before the acknowledgement: %d pending acks, ack floor %d; want 10, 0", info.NumAckPending, info.AckFloor.Stream)
	}
	if n := em.ackAll(nil); n == 0 {
		t.Fatal("no batch waited for its acknowledgement")
	}
	natsWaitConsumer(t, js, "ORDERS", "p_in", "all acked", func(ci *jetstream.ConsumerInfo) bool {
		return ci.NumAckPending == 0 && ci.AckFloor.Stream == 10
	})
}

// TestNATSSourceRedelivery: what the pipeline did not acknowledge comes
// again — at once when the run stopped (nak), after ack_wait when the
// source died without a word (a crash).
func TestNATSSourceRedelivery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash bool
	}{
		{"stopped run naks", false},
		{"crash, redelivered after ack_wait", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Start(t)
			srv.CreateStream(t, "S", "s.>")
			_, js := srv.Connect(t)
			natsPublish(t, js, "s.a", `{"a":1}`, `{"a":2}`, `{"a":3}`)
			cfg := flow.Config{"url": srv.URL, "stream": "S", "durable": "d", "ack_wait": "1s"}

			first := natsTestSource(t, cfg)
			em1 := newIOTestEmitter()
			stop1 := natsRun(t, first, em1)
			em1.waitEvents(t, 3)
			em1.mu.Lock()
			em1.dones = em1.dones[1:] // the first batch stays in flight...
			em1.mu.Unlock()
			if tc.crash {
				first.nc.Close() // ...and the source dies without acking or nak'ing
			} else {
				stop1()
				em1.ackAll(context.Canceled) // the engine fails what the stopped run left
			}
			stop1()

			second := natsTestSource(t, cfg)
			em2 := newIOTestEmitter()
			em2.autoAck = true
			natsRun(t, second, em2)
			evs := em2.waitEvents(t, 3)
			var ids []string
			for _, e := range evs {
				ids = append(ids, e.ID+" delivered "+e.Metadata["nats_delivered"])
			}
			slices.Sort(ids) // redelivery need not keep the order
			if want := []string{"S:1 delivered 2", "S:2 delivered 2", "S:3 delivered 2"}; !slices.Equal(ids, want) {
				t.Fatalf("redelivered %q, want %q", ids, want)
			}
			natsWaitConsumer(t, js, "S", "d", "all acked", func(ci *jetstream.ConsumerInfo) bool {
				return ci.NumAckPending == 0 && ci.AckFloor.Stream == 3
			})
		})
	}
}

// TestNATSSourceBackpressure: while the pipeline does not take a batch,
// the source asks the server for no more than one batch.
func TestNATSSourceBackpressure(t *testing.T) {
	srv := natstest.Start(t)
	srv.CreateStream(t, "B", "b")
	_, js := srv.Connect(t)
	var payloads []string
	for i := range 100 {
		payloads = append(payloads, fmt.Sprintf(`{"i":%d}`, i))
	}
	natsPublish(t, js, "b", payloads...)
	src := natsTestSource(t, flow.Config{"url": srv.URL, "stream": "B", "durable": "d", "batch": 10})
	em := newIOTestEmitter()
	em.gate = make(chan struct{})
	em.autoAck = true
	natsRun(t, src, em)
	// The first Emit is blocked on the gate: exactly one fetch is out.
	info := natsWaitConsumer(t, js, "B", "d", "a first delivery", func(ci *jetstream.ConsumerInfo) bool { return ci.Delivered.Stream > 0 })
	if info.NumAckPending > 10 || info.NumPending < 90 {
		t.Fatalf("with the pipeline full: %d delivered and unacked, %d still in the stream; want at most one batch (10) out", info.NumAckPending, info.NumPending)
	}
	// Let it go: every message is delivered and acked.
	close(em.gate)
	em.waitEvents(t, 100)
	natsWaitConsumer(t, js, "B", "d", "all acked", func(ci *jetstream.ConsumerInfo) bool { return ci.AckFloor.Stream == 100 })
}

// natsRejectEmitter is an ioTestEmitter that takes rejected events too.
type natsRejectEmitter struct {
	*ioTestEmitter
	mu       sync.Mutex
	rejected []*flow.Event
	errs     []error
}

func (m *natsRejectEmitter) Reject(_ context.Context, evs []*flow.Event, errs []error, done func(error)) error {
	m.mu.Lock()
	m.rejected = append(m.rejected, evs...)
	m.errs = append(m.errs, errs...)
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
	if done != nil {
		done(nil)
	}
	return nil
}

// waitRejected waits until n events were rejected (dead-lettered): a
// source may reject a malformed record after it emitted the good ones
// that followed it in the same poll, or in a later one.
func (m *natsRejectEmitter) waitRejected(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		m.mu.Lock()
		have := len(m.rejected)
		m.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-m.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %d rejected events; have %d", n, have)
		}
	}
}

// TestNATSSourceMalformed: a payload that is not JSON goes to the dead
// letter with the reason and its message is acked; in text format it is
// the data as it is.
func TestNATSSourceMalformed(t *testing.T) {
	srv := natstest.Start(t)
	srv.CreateStream(t, "M", "m")
	_, js := srv.Connect(t)
	natsPublish(t, js, "m", `{"ok":1}`, `not json`, `{"ok":2}`)

	em := &natsRejectEmitter{ioTestEmitter: newIOTestEmitter()}
	em.autoAck = true
	natsRun(t, natsTestSource(t, flow.Config{"url": srv.URL, "stream": "M", "durable": "j"}), em)
	evs := em.waitEvents(t, 2)
	natsWaitConsumer(t, js, "M", "j", "all acked", func(ci *jetstream.ConsumerInfo) bool { return ci.AckFloor.Stream == 3 })
	em.mu.Lock()
	if len(evs) != 2 || len(em.rejected) != 1 || string(em.rejected[0].Data) != "not json" || !errors.Is(em.errs[0], flow.ErrMalformedJSON) {
		t.Fatalf("emitted %s, rejected %v (%v); want the two JSON ones emitted and 'not json' rejected", ioDescribe(evs), em.rejected, em.errs)
	}
	em.mu.Unlock()

	tem := newIOTestEmitter()
	tem.autoAck = true
	natsRun(t, natsTestSource(t, flow.Config{"url": srv.URL, "stream": "M", "durable": "t", "format": "text", "event_type": "raw"}), tem)
	tevs := tem.waitEvents(t, 3)
	if string(tevs[1].Data) != "not json" || tevs[1].DataContentType != "text/plain" || tevs[1].Type != "raw" {
		t.Fatalf("text event %+v, want data 'not json', text/plain, type raw", tevs[1])
	}
}

// TestNATSSourceOpenErrors: a server that is not there and a stream that
// does not exist stop the run at Open with what to do.
func TestNATSSourceOpenErrors(t *testing.T) {
	srv := natstest.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "nats://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name string
		cfg  flow.Config
		want []string
	}{
		{"unreachable", flow.Config{"url": down, "stream": "S", "connect_timeout": "2s"}, []string{`source "in": cannot connect to NATS at ` + down, "is nats-server running"}},
		{"missing stream", flow.Config{"url": srv.URL, "stream": "NOPE", "subjects": []any{"nope.>"}}, []string{`JetStream stream "NOPE" does not exist`, `nats stream add NOPE --subjects "nope.>"`, "create_stream: true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := natsTestSource(t, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := src.Open(ctx)
			defer src.Close(ctx)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("open: %v\nwant it to say %q", err, w)
				}
			}
		})
	}
	// create_stream makes the missing stream.
	src := natsTestSource(t, flow.Config{"url": srv.URL, "stream": "NEW", "subjects": []any{"new.>"}, "create_stream": true})
	em := newIOTestEmitter()
	em.autoAck = true
	natsRun(t, src, em)
	_, js := srv.Connect(t)
	natsPublish(t, js, "new.x", `{"x":1}`)
	if e := em.waitEvents(t, 1)[0]; e.Type != "new.x" {
		t.Fatalf("event %+v from the created stream", e)
	}
}

// TestNATSSourceInProgress: an event that stays in the pipeline longer
// than ack_wait (a slow sink) is not delivered again: the source tells
// the server it is in progress. The property is about time passing, so
// the test watches the consumer for three ack_waits (bounded polls).
func TestNATSSourceInProgress(t *testing.T) {
	srv := natstest.Start(t)
	srv.CreateStream(t, "P", "p")
	_, js := srv.Connect(t)
	natsPublish(t, js, "p", `{"slow":true}`)
	em := newIOTestEmitter()
	natsRun(t, natsTestSource(t, flow.Config{"url": srv.URL, "stream": "P", "durable": "d", "ack_wait": "1s"}), em)
	em.waitEvents(t, 1)
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		info := natsWaitConsumer(t, js, "P", "d", "info", func(*jetstream.ConsumerInfo) bool { return true })
		if info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
			t.Fatalf("after %d polls: %d redelivered, %d deliveries; want 0, 1 while the event is in progress", i, info.NumRedelivered, info.Delivered.Consumer)
		}
		if n := len(em.events()); n != 1 {
			t.Fatalf("the event was emitted again: %s", ioDescribe(em.events()))
		}
		time.Sleep(100 * time.Millisecond) // poll interval: what is watched is time passing
	}
	if n := len(em.events()); n != 1 {
		t.Fatalf("%d events emitted, want 1", n)
	}
	em.ackAll(nil)
	natsWaitConsumer(t, js, "P", "d", "acked", func(ci *jetstream.ConsumerInfo) bool { return ci.AckFloor.Stream == 1 })
}
