package components

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/kafkatest"
)

// The kafka tests run against kfake, franz-go's in-process fake of the
// Kafka protocol (not Apache Kafka).

func TestKafkaSourceConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  flow.Config
		want string // "" = valid
	}{
		{"minimal", flow.Config{"topics": []any{"orders"}}, ""},
		{"everything", flow.Config{"topics": []any{"orders", "x_y-z.1"}, "brokers": []any{"a:9092", "b:9092,c:9093"}, "group": "g", "start": "latest", "batch": 10, "session_timeout": "6s", "format": "text", "event_type": "t", "client_id": "me", "connect_timeout": "3s"}, ""},
		{"regex", flow.Config{"topics": []any{`orders\..*`}, "regex": true}, ""},
		{"no topics", flow.Config{}, "topics: is required"},
		{"bad topic", flow.Config{"topics": []any{"a b"}}, `topics[0]: "a b" is not a topic name`},
		{"bad regex", flow.Config{"topics": []any{"a("}, "regex": true}, `topics[0]: "a(" is not a regular expression`},
		{"bad broker", flow.Config{"topics": []any{"t"}, "brokers": []any{"kafka"}}, `brokers: "kafka" is not a broker address`},
		{"no broker", flow.Config{"topics": []any{"t"}, "brokers": []any{" , "}}, "brokers: names no broker"},
		{"bad start", flow.Config{"topics": []any{"t"}, "start": "middle"}, `start: unknown start "middle"`},
		{"batch too big", flow.Config{"topics": []any{"t"}, "batch": 1000}, "batch: 1000 is out of range"},
		{"short session", flow.Config{"topics": []any{"t"}, "session_timeout": "10ms"}, "session_timeout: must be at least 1s"},
		{"bad format", flow.Config{"topics": []any{"t"}, "format": "xml"}, `format: unknown format "xml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := NewRegistry().Lookup(flow.RoleSource, "kafka")
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

func kafkaTestSource(t *testing.T, cfg flow.Config) *kafkaSource {
	t.Helper()
	spec, err := NewRegistry().Lookup(flow.RoleSource, "kafka")
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
	return c.(*kafkaSource)
}

// kafkaRun opens src and runs it in the background; the returned stop
// cancels it, waits for Run and closes the source.
func kafkaRun(t *testing.T, src *kafkaSource, em flow.Emitter) (stop func()) {
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
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
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
	}
	t.Cleanup(stop)
	return stop
}

// TestKafkaSourceCommitsFinishedPrefix: offsets are committed only up to
// the records whose events were all finished, in offset order, whatever
// order the pipeline finishes batches in; a malformed record goes to the
// dead letter with the reason and counts as finished.
func TestKafkaSourceCommitsFinishedPrefix(t *testing.T) {
	k := kafkatest.Start(t, 1, "one")
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "one", Key: []byte("k"), Value: fmt.Appendf(nil, `{"i":%d}`, i),
			Headers: []kgo.RecordHeader{{Key: "ce_type", Value: []byte("order.created")}, {Key: "ce_region", Value: []byte("eu")}, {Key: "trace", Value: []byte("x")}}})
	}
	recs = append(recs, &kgo.Record{Topic: "one", Value: []byte("not json")})
	k.Produce(t, recs...)

	em := &natsRejectEmitter{ioTestEmitter: newIOTestEmitter()}
	src := kafkaTestSource(t, flow.Config{"brokers": k.Brokers, "topics": []any{"one"}, "batch": 5, "group": "g1"})
	stop := kafkaRun(t, src, em)
	evs := em.waitEvents(t, 10)
	ev := evs[3]
	if ev.ID != "one/0/3" || ev.Type != "order.created" || ev.Source != "in" || ev.Metadata["region"] != "eu" || ev.Metadata["kafka_header_trace"] != "x" ||
		ev.Metadata["kafka_key"] != "k" || ev.Metadata["kafka_offset"] != "3" || string(ev.Data) != `{"i":3}` || ev.Time.IsZero() {
		t.Fatalf("event %+v, want id one/0/3, type order.created, metadata region, kafka_header_trace, kafka_key, kafka_offset", ev)
	}

	// The malformed record (offset 10) may come in a later poll.
	em.waitRejected(t, 1)
	em.mu.Lock()
	dones := em.dones
	em.dones = nil
	rejected, errs := em.rejected, em.errs
	em.mu.Unlock()
	if len(rejected) != 1 || string(rejected[0].Data) != "not json" || !errors.Is(errs[0], flow.ErrMalformedJSON) || !strings.Contains(errs[0].Error(), "one/0/10") {
		t.Fatalf("rejected %v (%v); want 'not json' with a reason naming one/0/10", rejected, errs)
	}
	if len(dones) < 2 {
		t.Fatalf("%d batches for 10 records with batch 5, want at least 2", len(dones))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Every batch but the first finished: the first holds offset 0, so
	// nothing may be committed.
	for _, d := range dones[1:] {
		d(nil)
	}
	if err := src.commit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if c := k.Committed(t, "g1", "one"); len(c) != 0 {
		t.Fatalf("committed %v while offset 0 was still in the pipeline", c)
	}
	dones[0](nil)
	if err := src.commit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if c := k.Committed(t, "g1", "one"); c[0] != 11 {
		t.Fatalf("committed %v after every record finished, want partition 0 at 11", c)
	}
	stop()

	// A new member of the group reads nothing again; another group reads
	// everything, as text.
	k.Produce(t, &kgo.Record{Topic: "one", Value: []byte(`{"i":11}`)})
	em2 := newIOTestEmitter()
	em2.autoAck = true
	kafkaRun(t, kafkaTestSource(t, flow.Config{"brokers": k.Brokers, "topics": []any{"one"}, "group": "g1"}), em2)
	if got := em2.waitEvents(t, 1); len(got) != 1 || got[0].ID != "one/0/11" {
		t.Fatalf("the group read %s again, want only one/0/11", ioDescribe(got))
	}
	em3 := newIOTestEmitter()
	em3.autoAck = true
	kafkaRun(t, kafkaTestSource(t, flow.Config{"brokers": k.Brokers, "topics": []any{"one"}, "group": "g2", "format": "text", "event_type": "raw"}), em3)
	if got := em3.waitEvents(t, 12); string(got[10].Data) != "not json" || got[10].DataContentType != "text/plain" || got[10].Type != "raw" {
		t.Fatalf("text event %+v, want data 'not json', text/plain, type raw", got[10])
	}
}

// TestKafkaSourceStoppedCommitsNothing: events whose run stopped before
// they were written (done with an error) are not committed: the group
// reads them again.
func TestKafkaSourceStoppedCommitsNothing(t *testing.T) {
	k := kafkatest.Start(t, 2, "two")
	for i := range 6 {
		k.Produce(t, &kgo.Record{Topic: "two", Partition: int32(i % 2), Value: fmt.Appendf(nil, `{"i":%d}`, i)})
	}
	em := newIOTestEmitter()
	src := kafkaTestSource(t, flow.Config{"brokers": k.Brokers, "topics": []any{"two"}, "group": "g"})
	stop := kafkaRun(t, src, em)
	em.waitEvents(t, 6)
	em.ackAll(context.Canceled)
	stop()
	if c := k.Committed(t, "g", "two"); len(c) != 0 {
		t.Fatalf("committed %v for events that were never written", c)
	}
	em2 := newIOTestEmitter()
	em2.autoAck = true
	kafkaRun(t, kafkaTestSource(t, flow.Config{"brokers": k.Brokers, "topics": []any{"two"}, "group": "g"}), em2)
	if got := em2.waitEvents(t, 6); len(got) != 6 {
		t.Fatalf("read again %d events, want 6", len(got))
	}
}

// TestKafkaSourceOpenErrors: a cluster that is not there and a topic that
// does not exist stop the run at Open with what to do.
func TestKafkaSourceOpenErrors(t *testing.T) {
	k := kafkatest.Start(t, 1, "here")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name string
		cfg  flow.Config
		want string
	}{
		{"no cluster", flow.Config{"brokers": []any{dead}, "topics": []any{"here"}, "connect_timeout": "1s"}, "reach the Kafka cluster at " + dead},
		{"no topic", flow.Config{"brokers": k.Brokers, "topics": []any{"here", "nowhere"}}, `topic "nowhere" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := kafkaTestSource(t, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := src.Open(ctx)
			src.Close(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestKafkaSourceRebalance: two members share a group; when one leaves,
// its partitions move to the other after it committed what it finished,
// and between them every record is read (some possibly twice), and the
// group ends committed at the end of every partition.
func TestKafkaSourceRebalance(t *testing.T) {
	k := kafkatest.Start(t, 3, "rb")
	produce := func(from, to int) {
		var rs []*kgo.Record
		for i := from; i < to; i++ {
			rs = append(rs, &kgo.Record{Topic: "rb", Partition: int32(i % 3), Value: fmt.Appendf(nil, `{"i":%d}`, i)})
		}
		k.Produce(t, rs...)
	}
	cfg := flow.Config{"brokers": k.Brokers, "topics": []any{"rb"}, "group": "shared", "session_timeout": "2s", "batch": 10}
	produce(0, 300)
	emA, emB := newIOTestEmitter(), newIOTestEmitter()
	emA.autoAck, emB.autoAck = true, true
	stopA := kafkaRun(t, kafkaTestSource(t, cfg), emA)
	emA.waitEvents(t, 300)
	kafkaRun(t, kafkaTestSource(t, cfg), emB)
	produce(300, 600)
	stopA() // commits and leaves: B gets every partition
	produce(600, 900)

	seen := map[string]bool{}
	deadline := time.After(60 * time.Second)
	for {
		n := 0
		for _, em := range []*ioTestEmitter{emA, emB} {
			for _, ev := range em.events() {
				if !seen[ev.ID] {
					seen[ev.ID] = true
				}
				n++
			}
		}
		if len(seen) == 900 {
			t.Logf("900 records read by two members: %d events, %d read twice", n, n-900)
			break
		}
		select {
		case <-emB.changed:
		case <-deadline:
			t.Fatalf("%d of 900 records read after 60s", len(seen))
		}
	}
	if b := len(emB.events()); b < 300 {
		t.Fatalf("the second member read %d records, want at least the 300 produced after the first left", b)
	}
	var sum int64
	for range 100 {
		sum = 0
		for _, o := range k.Committed(t, "shared", "rb") {
			sum += o
		}
		if sum == 900 {
			break
		}
		select {
		case <-emB.changed:
		case <-time.After(100 * time.Millisecond): // the commit trails the acks by a round trip
		}
	}
	if sum != 900 {
		t.Fatalf("committed offsets sum to %d, want 900", sum)
	}
}
