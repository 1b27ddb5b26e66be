package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleSink,
		Name:    "kafka",
		Summary: "Produces each event as a Kafka record (CloudEvents Kafka binding: attributes in ce_* headers) through an idempotent producer with acks from all in-sync replicas; the record key can come from a CEL expression.",
		Delivery: "At-least-once. An event counts as written only once every in-sync replica of its partition acknowledged its record (acks=all). The producer is idempotent, so the client's own retries never store a record twice; " +
			"but after a crash the source sends again what followed its last checkpoint, and those events are produced again as new records: they are stored twice. Each record carries the event id in its ce_id header, so a consumer can drop them.",
		Fields: append([]flow.Field{
			{Name: "topic", Type: flow.TypeString, Required: true, Example: "orders",
				Description: "The topic every event is produced to; it must exist (checked when the run starts)."},
			{Name: "key", Type: flow.TypeString, Example: "data.customer_id",
				Description: "A CEL expression over the event (data, id, type, source, subject, metadata) that returns the record key as a string — string(...) converts a number or bytes; records with one key go to one partition, in order. Default: no key (the client spreads records over the partitions). An event whose key fails to evaluate fails alone (on_error applies)."},
			ioFormatField,
			{Name: "timeout", Type: flow.TypeDuration, Default: "30s",
				Description: "How long a record may wait for its acknowledgement, retries included, before its event fails (on_error applies)."},
		}, kafkaConnFields...),
		Examples: []string{
			"brokers: [127.0.0.1:9092]\ntopic: orders",
			"brokers: [\"${KAFKA_BROKERS}\"]\ntopic: payments\nkey: string(data.customer_id)",
		},
		Validate: validateWith(kafkaParseSink),
		New: func(bc flow.BuildContext) (any, error) {
			s, err := kafkaParseSink(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name = bc.Name
			s.clientID = "flowctl-" + bc.Pipeline + "-" + bc.Name
			s.conn.resolve(bc.Dir)
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			return s, nil
		},
	})
}

// kafkaSink produces events to one topic.
type kafkaSink struct {
	conn     kafkaConn
	name     string
	clientID string
	topic    string
	key      *expr.Program
	format   ioFormat
	timeout  time.Duration
	log      *slog.Logger

	cl *kgo.Client
}

func kafkaParseSink(cfg flow.Config) (*kafkaSink, error) {
	conn, errs := kafkaParseConn(cfg)
	s := &kafkaSink{conn: conn, topic: ioCfgString(cfg, "topic", "")}
	switch {
	case s.topic == "":
		errs = append(errs, ioFieldErr("topic", "is required", "name the topic to produce to, e.g. topic: orders"))
	case !kafkaValidTopic(s.topic):
		errs = append(errs, ioFieldErr("topic", fmt.Sprintf("%q is not a topic name", s.topic), "a topic name is 1–249 characters of letters, digits, '.', '_' and '-'"))
	}
	if src := ioCfgString(cfg, "key", ""); src != "" {
		p, err := compileField("key", src, expr.String)
		if err != nil {
			errs = append(errs, err)
		}
		s.key = p
	}
	f, err := ioParseFormat(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	s.format = f
	to, err := ioCfgDuration(cfg, "timeout", 30*time.Second)
	if err == nil && to <= 0 {
		err = ioFieldErr("timeout", "must be positive", `use e.g. "30s"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.timeout = to
	return s, errors.Join(errs...)
}

// Open builds the producer and checks that the topic exists, so that a
// wrong address or a missing topic stops the run before any event.
func (s *kafkaSink) Open(ctx context.Context) error {
	base, err := s.conn.opts(s.clientID, s.log)
	if err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	opts := append(base,
		kgo.DefaultProduceTopic(s.topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, and what idempotence needs
		kgo.RecordDeliveryTimeout(s.timeout),
		kgo.ProducerLinger(0), // a batch is what Write has: send it now
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	s.cl = cl
	ctx, cancel := context.WithTimeout(ctx, s.conn.timeout)
	defer cancel()
	return kafkaCheckTopics(ctx, cl, s.conn, "sink", s.name, []string{s.topic})
}

// record builds the record of an event.
func (s *kafkaSink) record(e *flow.Event) (*kgo.Record, error) {
	r := &kgo.Record{Topic: s.topic}
	if s.key != nil {
		k, err := s.key.EvalString(e)
		if err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		r.Key = []byte(k)
	}
	h := func(k, v string) { r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	if s.format == ioFormatEnvelope {
		r.Value = ioAppendEnvelope(nil, e)
		h(kafkaHdrContentType, "application/cloudevents+json")
		return r, nil
	}
	r.Value = e.Data
	h(kafkaHdrSpecVersion, "1.0")
	if e.ID != "" {
		h(kafkaHdrID, e.ID)
	}
	if e.Type != "" {
		h(kafkaHdrType, e.Type)
	}
	if e.Source != "" {
		h(kafkaHdrSource, e.Source)
	}
	if e.Subject != "" {
		h(kafkaHdrSubject, e.Subject)
	}
	if !e.Time.IsZero() {
		h(kafkaHdrTime, e.Time.UTC().Format(time.RFC3339Nano))
	}
	if e.DataContentType != "" {
		h(kafkaHdrContentType, e.DataContentType)
	}
	for k, v := range e.Metadata {
		if !strings.HasPrefix(k, kafkaMetaPrefix) { // a kafka source's own, not the event's
			h(kafkaHdrPrefix+k, v)
		}
	}
	return r, nil
}

// Write produces the batch and waits for every record's acknowledgement:
// an event whose key failed or whose record was refused or not
// acknowledged within timeout fails alone (a *flow.BatchError).
func (s *kafkaSink) Write(ctx context.Context, batch []*flow.Event) error {
	if s.cl == nil {
		return fmt.Errorf("sink %q: not open", s.name)
	}
	var mu sync.Mutex
	failed := map[int]error{}
	var wg sync.WaitGroup
	for i, e := range batch {
		r, err := s.record(e)
		if err != nil {
			failed[i] = err
			continue
		}
		wg.Add(1)
		s.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				failed[i] = fmt.Errorf("produce to %s: %w", s.topic, err)
				mu.Unlock()
			}
		})
	}
	// Every promise is called: acknowledged, refused, or failed by
	// timeout (RecordDeliveryTimeout) or ctx.
	wg.Wait()
	switch {
	case len(failed) == 0:
		return nil
	case len(failed) == len(batch):
		for _, err := range failed {
			return fmt.Errorf("sink %q: %w", s.name, err)
		}
	}
	return &flow.BatchError{Failed: failed}
}

// Close waits for what is still buffered and closes the client.
func (s *kafkaSink) Close(ctx context.Context) error {
	if s.cl == nil {
		return nil
	}
	var err error
	if ferr := s.cl.Flush(ctx); ferr != nil {
		err = fmt.Errorf("sink %q: flush: %w", s.name, ferr)
	}
	s.cl.Close()
	s.cl = nil
	return err
}

var (
	_ flow.Sink   = (*kafkaSink)(nil)
	_ flow.Opener = (*kafkaSink)(nil)
	_ flow.Closer = (*kafkaSink)(nil)
)
