package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/backoff"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleSource,
		Name:    "nats",
		Summary: "Reads a NATS JetStream stream through a durable pull consumer; each message is acknowledged to JetStream only once the pipeline wrote its event.",
		Delivery: "At-least-once, kept by JetStream rather than by flowctl's checkpoint: a message is acked only after every sink wrote its event (or it was filtered or dead-lettered), so after a crash the durable consumer delivers again, after ack_wait, every message not yet acked — those whose events were written but whose ack had not reached the server are the ones written twice. " +
			"A stopped run naks what it did not finish, so the next one gets it at once.",
		Fields: append([]flow.Field{
			{Name: "stream", Type: flow.TypeString, Required: true, Example: "ORDERS",
				Description: "The JetStream stream to read."},
			{Name: "subjects", Type: flow.TypeStrings, Example: []any{"orders.>"},
				Description: "Read only messages on these subjects (wildcards * and >); default: the whole stream. With create_stream, the subjects the new stream takes."},
			{Name: "durable", Type: flow.TypeString,
				Description: "The durable consumer's name: where the stream was read up to is kept under it on the server. Default: <pipeline>_<component>, with characters NATS does not allow in a name replaced by _."},
			{Name: "deliver", Type: flow.TypeString, Default: "all", Enum: []string{"all", "new"},
				Description: "Where a consumer that does not exist yet starts: all, the stream's first message; new, messages stored from now on. An existing durable consumer goes on where it was."},
			{Name: "batch", Type: flow.TypeInt, Default: 256,
				Description: "Most messages asked for at once (1–256): the server is asked for the next batch only once the previous one was handed to the pipeline, so a full pipeline stops the fetching (backpressure)."},
			{Name: "ack_wait", Type: flow.TypeDuration, Default: "30s",
				Description: "How long the server waits for a delivered message's ack before it delivers it again. While an event is in the pipeline the source tells the server it is in progress, so a slow sink does not cause redeliveries; after a crash, unacked messages come again once ack_wait has passed."},
			{Name: "max_ack_pending", Type: flow.TypeInt, Default: 1024,
				Description: "Most messages delivered and not yet acked (at least batch): bounds the events of this source in flight in the pipeline."},
			{Name: "create_stream", Type: flow.TypeBool, Default: false,
				Description: "Create the stream (file storage, taking subjects) if it does not exist; default: a missing stream stops the run with a hint."},
			{Name: "format", Type: flow.TypeString, Default: "json", Enum: []string{"json", "text"},
				Description: "json: the message payload is the event data (application/json); a payload that is not valid JSON, or whose value would change when read, goes to the dead-letter sink with the reason (or without one is dropped and counted) and its message is acked. text: the payload is the data as it is (content-type header, else text/plain)."},
			{Name: "event_type", Type: flow.TypeString,
				Description: "The type of the emitted events; default: the message's ce-type header, else its subject."},
		}, natsConnFields...),
		Examples: []string{
			"url: nats://127.0.0.1:4222\nstream: ORDERS",
			"url: ${NATS_URL}\nstream: ORDERS\nsubjects: [orders.eu.>]\ndurable: orders-eu\nack_wait: 1m",
		},
		Validate: validateWith(natsParseSource),
		OutputTypes: func(name string, cfg flow.Config, _ []string) ([]string, bool) {
			if t, ok := cfg["event_type"].(string); ok && t != "" {
				return []string{t}, true
			}
			return nil, false // the messages' subjects or ce-type headers
		},
		New: func(bc flow.BuildContext) (any, error) {
			s, err := natsParseSource(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name, s.dir = bc.Name, bc.Dir
			s.clientName = "flowctl " + bc.Pipeline + "/" + bc.Name
			if s.durable == "" {
				s.durable = natsConsumerName(bc.Pipeline + "_" + bc.Name)
			}
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			return s, nil
		},
	})
}

// natsNameBad are the characters NATS refuses in a stream or consumer
// name (with white space). Plain strings, not a regexp: nothing is
// compiled at package initialisation.
const natsNameBad = ".*>/\\~"

// natsValidName reports whether NATS takes s as a stream or consumer name.
func natsValidName(s string) bool {
	return s != "" && !strings.ContainsAny(s, natsNameBad) && !strings.ContainsFunc(s, unicode.IsSpace)
}

// natsConsumerName makes a default durable name: characters NATS refuses
// become _.
func natsConsumerName(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(natsNameBad, r) || unicode.IsSpace(r) {
			return '_'
		}
		return r
	}, s)
}

// natsSource reads a stream through a durable pull consumer with explicit
// acks.
//
// Its position is the consumer's, kept by the server: the source is not a
// flow.Resumer and commits nothing to flowctl's checkpoint, so a file
// sink behind it keeps what it wrote after the last checkpoint (the engine
// treats it as a source that cannot be replayed) and no event is lost by
// being cut from the output and not delivered again.
//
//	fetch ─► emit (good events) ─► done(nil) ─► ack
//	      └► reject (bad JSON)  ─► done(nil) ─► ack   (it is in the dead letter)
//	                               done(err) ─► nak   (run stopped: deliver again)
//
// Each batch's messages wait in pending until their done; a ticker tells
// the server they are in progress every ack_wait/3, so events that wait
// in the pipeline longer than ack_wait are not delivered a second time.
type natsSource struct {
	conn          natsConn
	name, dir     string
	clientName    string
	stream        string
	subjects      []string
	durable       string
	deliverNew    bool
	batch         int
	ackWait       time.Duration
	maxAckPending int
	createStream  bool
	text          bool
	eventType     string
	log           *slog.Logger

	nc   *nats.Conn
	cons jetstream.Consumer

	mu      sync.Mutex
	pending map[uint64][]jetstream.Msg // by batch number
	nextID  uint64
}

func natsParseSource(cfg flow.Config) (*natsSource, error) {
	conn, errs := natsParseConn(cfg)
	s := &natsSource{
		conn:         conn,
		stream:       ioCfgString(cfg, "stream", ""),
		durable:      ioCfgString(cfg, "durable", ""),
		createStream: ioCfgBool(cfg, "create_stream", false),
		eventType:    ioCfgString(cfg, "event_type", ""),
	}
	switch {
	case s.stream == "":
		errs = append(errs, ioFieldErr("stream", "is required", "name the JetStream stream to read, e.g. stream: ORDERS"))
	case !natsValidName(s.stream):
		errs = append(errs, ioFieldErr("stream", fmt.Sprintf("%q is not a stream name", s.stream), "a name has no spaces, '.', '*', '>', '/', '\\' or '~'"))
	}
	if s.durable != "" && !natsValidName(s.durable) {
		errs = append(errs, ioFieldErr("durable", fmt.Sprintf("%q is not a consumer name", s.durable), "a name has no spaces, '.', '*', '>', '/', '\\' or '~'"))
	}
	subj, err := ioCfgStrings(cfg, "subjects")
	if err != nil {
		errs = append(errs, err)
	}
	for i, x := range subj {
		if x == "" || natsBadSubject(x) {
			errs = append(errs, ioFieldErr(fmt.Sprintf("subjects[%d]", i), fmt.Sprintf("%q is not a subject", x), "write tokens separated by dots, e.g. orders.> or orders.*.created"))
		}
	}
	s.subjects = subj
	if s.createStream && len(subj) == 0 {
		errs = append(errs, ioFieldErr("create_stream", "needs subjects", "list the subjects the new stream takes, e.g. subjects: [orders.>]"))
	}
	switch d := ioCfgString(cfg, "deliver", "all"); d {
	case "all":
	case "new":
		s.deliverNew = true
	default:
		errs = append(errs, ioFieldErr("deliver", fmt.Sprintf("unknown policy %q", d), `use "all" (from the stream's start) or "new" (from now on)`))
	}
	text, err := cfgPayloadFormat(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	s.text = text
	if s.batch, err = cfgIntIn(cfg, "batch", 256, 1, flow.MaxBatch); err != nil {
		errs = append(errs, err)
	}
	aw, err := ioCfgDuration(cfg, "ack_wait", 30*time.Second)
	if err == nil && aw < time.Second {
		err = ioFieldErr("ack_wait", "must be at least 1s", `use e.g. "30s"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.ackWait = aw
	mp, err := cfgInt(cfg, "max_ack_pending", 1024)
	if err == nil && mp < 1 {
		err = ioFieldErr("max_ack_pending", "must be positive", "use e.g. 1024")
	}
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil && s.batch >= 1 && mp < s.batch {
		// The server refuses a pull request for more messages than the
		// consumer may have unacked (409 Exceeded MaxAckPending).
		errs = append(errs, ioFieldErr("max_ack_pending", fmt.Sprintf("%d is smaller than batch (%d)", mp, s.batch), "the server refuses to deliver a batch larger than max_ack_pending: raise it or lower batch"))
	}
	s.maxAckPending = mp
	return s, errors.Join(errs...)
}

// natsBadSubject reports a subject with an empty token, white space, or a
// > that is not the last token.
func natsBadSubject(s string) bool {
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "" || strings.ContainsFunc(t, unicode.IsSpace) || (t == ">" && i != len(toks)-1) {
			return true
		}
	}
	return false
}

// Open connects, checks the stream and creates or binds the durable
// consumer, so that a wrong URL or a missing stream stops the run before
// any event flows.
func (s *natsSource) Open(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.conn.timeout)
	defer cancel()
	nc, err := s.conn.connect(ctx, "source", s.name, s.clientName, s.dir)
	if err != nil {
		return err
	}
	s.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("source %q: %w", s.name, err)
	}
	if err := natsEnsureStream(ctx, js, "source", s.name, s.stream, s.subjects, s.createStream); err != nil {
		return err
	}
	cc := jetstream.ConsumerConfig{
		Durable:       s.durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.ackWait,
		MaxAckPending: s.maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if s.deliverNew {
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	if len(s.subjects) == 1 {
		cc.FilterSubject = s.subjects[0]
	} else {
		cc.FilterSubjects = s.subjects
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, s.stream, cc)
	if err != nil {
		return fmt.Errorf("source %q: create or bind durable consumer %q on stream %s: %w — an existing consumer of that name may have settings that cannot change (deliver); delete it (nats consumer rm %s %s) or choose another durable", s.name, s.durable, s.stream, err, s.stream, s.durable)
	}
	s.cons = cons
	s.pending = map[uint64][]jetstream.Msg{}
	return nil
}

// natsFetchWait is how long one pull request waits on the server for
// messages when the stream has none; cancellation does not wait for it.
const natsFetchWait = 5 * time.Second

// Run fetches and emits until ctx is done. A fetch error (the server
// restarting, the connection reconnecting) is logged and retried with
// backoff; only ctx ends the loop.
func (s *natsSource) Run(ctx context.Context, out flow.Emitter) error {
	if s.cons == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.keepAlive(stop)
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	bo := backoff.New(backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: backoff.DefaultJitter})
	for ctx.Err() == nil {
		// The fetch's context is the run's: when the run stops, the pull
		// request is withdrawn at once, and no message is delivered to a
		// source that will not take it.
		fctx, fcancel := context.WithTimeout(ctx, natsFetchWait)
		mb, err := s.cons.Fetch(s.batch, jetstream.FetchContext(fctx))
		if err == nil {
			err = s.drain(ctx, out, mb)
		}
		fcancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = nil // the pull request expired: nothing came
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			bo.Reset()
			continue
		}
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("source %q: %w — the stream or the durable consumer %q was deleted while the pipeline ran", s.name, err, s.durable)
		}
		if errors.Is(err, errNATSEmit) {
			return err
		}
		d := bo.Next()
		s.log.Warn("fetch from NATS failed; trying again", "error", err, "in", d, "failures", bo.Failures())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
	return nil
}

// errNATSEmit wraps an error of the emitter: it ends Run.
var errNATSEmit = errors.New("emit")

// drain hands one fetch's messages to the pipeline: as soon as one is
// there, with every other one already there (a batch is what is ready
// now). Messages of the fetch not yet handed over when ctx ends are nak'd.
// The fetch must end when ctx does (FetchContext).
func (s *natsSource) drain(ctx context.Context, out flow.Emitter, mb jetstream.MessageBatch) error {
	ch := mb.Messages()
	for {
		var first jetstream.Msg
		select {
		case m, ok := <-ch:
			if !ok {
				return mb.Error()
			}
			first = m
		case <-ctx.Done():
			natsNakRest(ch)
			return nil
		}
		msgs := []jetstream.Msg{first}
	more:
		for len(msgs) < s.batch {
			select {
			case m, ok := <-ch:
				if !ok {
					break more
				}
				msgs = append(msgs, m)
			default:
				break more
			}
		}
		if err := s.emit(ctx, out, msgs); err != nil {
			if ctx.Err() != nil {
				natsNakRest(ch)
				return nil
			}
			return fmt.Errorf("source %q: %w: %w", s.name, errNATSEmit, err)
		}
	}
}

// natsNakRest naks what is left of a fetch once the run stopped, so that
// the next run gets it at once rather than after ack_wait. The fetch
// ends with the run's context, so the channel is closed soon.
func natsNakRest(ch <-chan jetstream.Msg) {
	for m := range ch {
		_ = m.Nak()
	}
}

// emit turns messages into events and hands them over, the malformed ones
// to the dead letter.
func (s *natsSource) emit(ctx context.Context, out flow.Emitter, msgs []jetstream.Msg) error {
	evs := flow.NewBatch()
	var good []jetstream.Msg
	var bad []*flow.Event
	var badMsgs []jetstream.Msg
	var errs []error
	rej, canReject := out.(flow.Rejecter)
	for _, m := range msgs {
		ev := s.event(m)
		if !s.text && canReject {
			if err := flow.ValidateJSON(ev.Data); err != nil {
				bad, badMsgs, errs = append(bad, ev), append(badMsgs, m), append(errs, err)
				continue
			}
		}
		evs = append(evs, ev)
		good = append(good, m)
	}
	if len(bad) > 0 {
		if err := rej.Reject(ctx, bad, errs, s.track(badMsgs)); err != nil {
			s.nakAll(append(badMsgs, good...))
			return err
		}
	}
	if len(evs) == 0 {
		flow.RecycleBatch(evs)
		return nil
	}
	return out.Emit(ctx, evs, s.track(good))
}

// track records msgs as pending and returns the done that acks them (or
// naks them when the run stopped before they were written).
func (s *natsSource) track(msgs []jetstream.Msg) func(error) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.pending[id] = msgs
	s.mu.Unlock()
	return func(err error) {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		if err != nil {
			s.nakAll(msgs)
			return
		}
		for _, m := range msgs {
			if aerr := m.Ack(); aerr != nil {
				// The event was written; the server will deliver it
				// again after ack_wait: it is written twice.
				s.log.Warn("ack to NATS failed: the message will be delivered again", "error", aerr)
				return
			}
		}
	}
}

func (s *natsSource) nakAll(msgs []jetstream.Msg) {
	for _, m := range msgs {
		if m.Nak() != nil {
			return // the connection is gone: ack_wait redelivers
		}
	}
}

// keepAlive tells the server, every ack_wait/3, that the messages still in
// the pipeline are in progress, which restarts their ack_wait.
func (s *natsSource) keepAlive(stop <-chan struct{}) {
	t := time.NewTicker(s.ackWait / 3)
	defer t.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		msgs = msgs[:0]
		s.mu.Lock()
		for _, p := range s.pending {
			msgs = append(msgs, p...)
		}
		s.mu.Unlock()
		for _, m := range msgs {
			if m.InProgress() != nil {
				break
			}
		}
	}
}

// event builds the event of a message: the CloudEvents NATS binding's
// ce-* headers, where the message has them, else NATS's own attributes.
func (s *natsSource) event(m jetstream.Msg) *flow.Event {
	h := m.Headers()
	md, _ := m.Metadata()
	ev := &flow.Event{
		Source:          s.name,
		Subject:         m.Subject(),
		DataContentType: "application/json",
		Data:            m.Data(),
		Metadata:        map[string]string{"nats_subject": m.Subject(), "nats_stream": s.stream},
	}
	if md != nil {
		ev.Time = md.Timestamp
		ev.Metadata["nats_seq"] = strconv.FormatUint(md.Sequence.Stream, 10)
		ev.Metadata["nats_delivered"] = strconv.FormatUint(md.NumDelivered, 10)
	}
	switch {
	case h.Get(jetstream.MsgIDHeader) != "":
		ev.ID = h.Get(jetstream.MsgIDHeader)
	case h.Get(natsHdrID) != "":
		ev.ID = h.Get(natsHdrID)
	case md != nil:
		ev.ID = s.stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	switch {
	case s.eventType != "":
		ev.Type = s.eventType
	case h.Get(natsHdrType) != "":
		ev.Type = h.Get(natsHdrType)
	default:
		ev.Type = m.Subject()
	}
	if v := h.Get(natsHdrSource); v != "" {
		ev.Source = v
	}
	if v := h.Get(natsHdrSubject); v != "" {
		ev.Subject = v
	}
	if v := h.Get(natsHdrTime); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			ev.Time = t
		}
	}
	if s.text {
		ev.DataContentType = "text/plain"
		if v := h.Get(natsHdrContentType); v != "" {
			ev.DataContentType = v
		}
	}
	for k, v := range h {
		if len(v) > 0 && len(k) > len(natsHdrPrefix) && k[:len(natsHdrPrefix)] == natsHdrPrefix && !natsStandardHeaders[k] {
			ev.Metadata[k[len(natsHdrPrefix):]] = v[0]
		}
	}
	return ev
}

// Close naks what the pipeline did not finish, flushes the acks and closes
// the connection.
func (s *natsSource) Close(ctx context.Context) error {
	if s.nc == nil {
		return nil
	}
	s.mu.Lock()
	ids := slices.Sorted(maps.Keys(s.pending))
	var left []jetstream.Msg
	for _, id := range ids {
		left = append(left, s.pending[id]...) // in the order they came
	}
	s.pending = map[uint64][]jetstream.Msg{}
	s.mu.Unlock()
	s.nakAll(left)
	var err error
	if !s.nc.IsClosed() {
		if ferr := s.nc.FlushWithContext(ctx); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
			err = fmt.Errorf("source %q: flush acks: %w — unacked messages are delivered again after ack_wait", s.name, ferr)
		}
	}
	s.nc.Close()
	s.nc = nil
	return err
}

var (
	_ flow.Source = (*natsSource)(nil)
	_ flow.Opener = (*natsSource)(nil)
	_ flow.Closer = (*natsSource)(nil)
)
