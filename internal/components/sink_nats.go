package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleSink,
		Name:    "nats",
		Summary: "Publishes each event as a NATS message (CloudEvents NATS binding: attributes in ce-* headers); with jetstream, waits for the stream's acknowledgement of every message.",
		Delivery: "With jetstream (the default) an event counts as written only once the stream acknowledged it, and every message carries Nats-Msg-Id = the event id: an event sent again after a crash within the stream's duplicate window (2 minutes unless the stream says otherwise) is not stored twice — exactly once within the window, at-least-once beyond it. " +
			"That needs ids unique per event: the file source's are (<component>:<line>), the http source's restart with each run — set dedupe: false behind it, or two events with one id within the window keep only the first (the log counts such duplicates). " +
			"Without jetstream a message is handed to the server with no acknowledgement from a subscriber: at-most-once.",
		Fields: append([]flow.Field{
			{Name: "subject", Type: flow.TypeString, Required: true, Example: "orders.created",
				Description: "The subject every event is published on."},
			{Name: "jetstream", Type: flow.TypeBool, Default: true,
				Description: "Publish to JetStream and wait for the stream's acknowledgement of each message; false: core NATS publish (at-most-once, no stream needed)."},
			{Name: "dedupe", Type: flow.TypeBool, Default: true,
				Description: "With jetstream, set the Nats-Msg-Id header to the event id, so that the stream drops an event published again within its duplicate window."},
			{Name: "stream", Type: flow.TypeString,
				Description: "With jetstream, the stream expected to take subject; checked when the run starts. Default: whichever stream takes subject (one must)."},
			{Name: "create_stream", Type: flow.TypeBool, Default: false,
				Description: "With jetstream and stream, create the stream (file storage, taking subject) if it does not exist."},
			{Name: "format", Type: flow.TypeString, Default: "data", Enum: []string{"data", "envelope"},
				Description: "data: the payload is the event's data, its attributes in ce-* headers; envelope: the payload is the whole CloudEvent as JSON (structured mode)."},
			{Name: "timeout", Type: flow.TypeDuration, Default: "10s",
				Description: "How long a batch may wait for its acknowledgements before its unacknowledged events fail (on_error applies)."},
		}, natsConnFields...),
		Examples: []string{
			"url: nats://127.0.0.1:4222\nsubject: orders.created",
			"url: ${NATS_URL}\nsubject: payments.large\nstream: PAYMENTS\ncreate_stream: true",
		},
		Validate: validateWith(natsParseSink),
		New: func(bc flow.BuildContext) (any, error) {
			s, err := natsParseSink(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name, s.dir = bc.Name, bc.Dir
			s.clientName = "flowctl " + bc.Pipeline + "/" + bc.Name
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			return s, nil
		},
	})
}

// natsSink publishes events on one subject.
type natsSink struct {
	conn         natsConn
	name, dir    string
	clientName   string
	subject      string
	jetstream    bool
	dedupe       bool
	stream       string
	createStream bool
	format       ioFormat
	timeout      time.Duration
	log          *slog.Logger

	nc *nats.Conn
	js jetstream.JetStream

	dups      atomic.Int64 // events the stream already had (Nats-Msg-Id)
	dupLogged atomic.Int64 // when duplicates were last logged (unix ns)
}

// natsDupLogEvery spaces the log lines about duplicates.
const natsDupLogEvery = 5 * time.Second

func (s *natsSink) logDuplicates() {
	s.log.Info("JetStream already had messages with these ids (Nats-Msg-Id) within its duplicate window: not stored again (a replay after a crash, or ids that are not unique)", "duplicates", s.dups.Load())
}

func natsParseSink(cfg flow.Config) (*natsSink, error) {
	conn, errs := natsParseConn(cfg)
	s := &natsSink{
		conn:         conn,
		subject:      ioCfgString(cfg, "subject", ""),
		jetstream:    ioCfgBool(cfg, "jetstream", true),
		dedupe:       ioCfgBool(cfg, "dedupe", true),
		stream:       ioCfgString(cfg, "stream", ""),
		createStream: ioCfgBool(cfg, "create_stream", false),
	}
	switch {
	case s.subject == "":
		errs = append(errs, ioFieldErr("subject", "is required", "name the subject to publish on, e.g. subject: orders.created"))
	case natsBadSubject(s.subject) || strings.ContainsAny(s.subject, "*>"):
		errs = append(errs, ioFieldErr("subject", fmt.Sprintf("%q is not a subject to publish on", s.subject), "write tokens separated by dots, without wildcards, e.g. orders.created"))
	}
	if s.stream != "" && !natsValidName(s.stream) {
		errs = append(errs, ioFieldErr("stream", fmt.Sprintf("%q is not a stream name", s.stream), "a name has no spaces, '.', '*', '>', '/', '\\' or '~'"))
	}
	if s.createStream && (s.stream == "" || !s.jetstream) {
		errs = append(errs, ioFieldErr("create_stream", "needs jetstream: true and stream", "name the stream to create, e.g. stream: ORDERS"))
	}
	f, err := ioParseFormat(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	s.format = f
	to, err := ioCfgDuration(cfg, "timeout", 10*time.Second)
	if err == nil && to <= 0 {
		err = ioFieldErr("timeout", "must be positive", `use e.g. "10s"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.timeout = to
	return s, errors.Join(errs...)
}

// Open connects and, with jetstream, checks that a stream takes the
// subject, so that a missing stream stops the run before any event.
func (s *natsSink) Open(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.conn.timeout)
	defer cancel()
	nc, err := s.conn.connect(ctx, "sink", s.name, s.clientName, s.dir)
	if err != nil {
		return err
	}
	s.nc = nc
	if !s.jetstream {
		return nil
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(flow.MaxBatch))
	if err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	s.js = js
	if s.stream != "" {
		return natsEnsureStream(ctx, js, "sink", s.name, s.stream, []string{s.subject}, s.createStream)
	}
	if _, err := js.StreamNameBySubject(ctx, s.subject); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("sink %q: no JetStream stream takes subject %q — create one (nats stream add NAME --subjects %q), set stream and create_stream: true, or set jetstream: false for a core NATS publish", s.name, s.subject, s.subject)
		}
		return fmt.Errorf("sink %q: find the stream of subject %q: %w", s.name, s.subject, err)
	}
	return nil
}

// msg builds the message of an event.
func (s *natsSink) msg(e *flow.Event) *nats.Msg {
	m := nats.NewMsg(s.subject)
	if s.format == ioFormatEnvelope {
		m.Data = ioAppendEnvelope(nil, e)
		m.Header.Set(natsHdrContentType, "application/cloudevents+json")
	} else {
		m.Data = e.Data
		m.Header.Set(natsHdrSpecVersion, "1.0")
		if e.ID != "" {
			m.Header.Set(natsHdrID, e.ID)
		}
		if e.Type != "" {
			m.Header.Set(natsHdrType, e.Type)
		}
		if e.Source != "" {
			m.Header.Set(natsHdrSource, e.Source)
		}
		if e.Subject != "" {
			m.Header.Set(natsHdrSubject, e.Subject)
		}
		if !e.Time.IsZero() {
			m.Header.Set(natsHdrTime, e.Time.UTC().Format(time.RFC3339Nano))
		}
		if e.DataContentType != "" {
			m.Header.Set(natsHdrContentType, e.DataContentType)
		}
		for k, v := range e.Metadata {
			if !strings.HasPrefix(k, "nats_") { // the source's own, not the event's
				m.Header.Set(natsHdrPrefix+k, v)
			}
		}
	}
	if s.jetstream && s.dedupe && e.ID != "" {
		m.Header.Set(jetstream.MsgIDHeader, e.ID)
	}
	return m
}

// Write publishes the batch. With jetstream it publishes every message
// asynchronously and then waits for each acknowledgement: an event whose
// message was refused or not acknowledged within timeout fails alone
// (a *flow.BatchError).
func (s *natsSink) Write(ctx context.Context, batch []*flow.Event) error {
	if s.nc == nil {
		return fmt.Errorf("sink %q: not open", s.name)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if !s.jetstream {
		for _, e := range batch {
			if err := s.nc.PublishMsg(s.msg(e)); err != nil {
				return fmt.Errorf("sink %q: publish on %s: %w", s.name, s.subject, err)
			}
		}
		// A round trip: the server has every message of the batch.
		if err := s.nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("sink %q: flush to NATS: %w", s.name, err)
		}
		return nil
	}
	futs := make([]jetstream.PubAckFuture, len(batch))
	failed := map[int]error{}
	for i, e := range batch {
		f, err := s.js.PublishMsgAsync(s.msg(e))
		if err != nil {
			failed[i] = fmt.Errorf("publish on %s: %w", s.subject, err)
			continue
		}
		futs[i] = f
	}
	var dups int64
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				dups++
			}
		case err := <-f.Err():
			failed[i] = s.pubErr(err)
		case <-ctx.Done():
			failed[i] = fmt.Errorf("no acknowledgement from JetStream within %s: %w", s.timeout, ctx.Err())
		}
	}
	if dups > 0 {
		s.dups.Add(dups)
		// At most one line every natsDupLogEvery while it goes on; Close
		// logs the total.
		now := time.Now().UnixNano()
		if last := s.dupLogged.Load(); now-last >= int64(natsDupLogEvery) && s.dupLogged.CompareAndSwap(last, now) {
			s.logDuplicates()
		}
	}
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

// pubErr says what a refused publish means.
func (s *natsSink) pubErr(err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("no JetStream stream took subject %q: %w — create one (nats stream add NAME --subjects %q)", s.subject, err, s.subject)
	}
	return fmt.Errorf("publish on %s: %w", s.subject, err)
}

// Duplicates is how many events the stream already had (dedupe).
func (s *natsSink) Duplicates() int64 { return s.dups.Load() }

// Close flushes and closes the connection.
func (s *natsSink) Close(ctx context.Context) error {
	if s.nc == nil {
		return nil
	}
	if s.dups.Load() > 0 {
		s.logDuplicates()
	}
	var err error
	if !s.nc.IsClosed() {
		if ferr := s.nc.FlushWithContext(ctx); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
			err = fmt.Errorf("sink %q: flush: %w", s.name, ferr)
		}
	}
	s.nc.Close()
	s.nc = nil
	return err
}

var (
	_ flow.Sink   = (*natsSink)(nil)
	_ flow.Opener = (*natsSink)(nil)
	_ flow.Closer = (*natsSink)(nil)
)
