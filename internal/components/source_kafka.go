package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/backoff"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleSource,
		Name:    "kafka",
		Summary: "Reads Kafka topics as a member of a consumer group; a partition's offset is committed to the group only up to the last record whose event the pipeline finished.",
		Delivery: "At-least-once, kept by the consumer group's committed offsets rather than by flowctl's checkpoint: offsets are committed (automatic commits are off) only for a partition's records whose events were all written by every sink, filtered or dead-lettered, in offset order, so after a crash the group resumes at the first record not finished. " +
			"The records finished but not yet committed when flowctl dies are written again: at most the records finished in the few milliseconds a commit takes. " +
			"When a partition moves to another member (rebalance), what was finished is committed and the new owner reads the rest again.",
		Fields: append([]flow.Field{
			{Name: "topics", Type: flow.TypeStrings, Required: true, Example: []any{"orders"},
				Description: "The topics to read; with regex, each is a regular expression (RE2) and every matching topic is read, those created later included."},
			{Name: "regex", Type: flow.TypeBool, Default: false,
				Description: "Read topics as regular expressions rather than names."},
			{Name: "group", Type: flow.TypeString,
				Description: "The consumer group: the offsets read up to are committed under it, and the members of one group share the partitions. Default: <pipeline>_<component>."},
			{Name: "start", Type: flow.TypeString, Default: "earliest", Enum: []string{"earliest", "latest"},
				Description: "Where a group with no committed offset for a partition starts: earliest, the partition's first record; latest, records produced from now on. A group with a committed offset goes on from it."},
			{Name: "batch", Type: flow.TypeInt, Default: 256,
				Description: "Most records handed to the pipeline at once (1–256): records are taken from the client only once the previous ones were handed over, so a full pipeline stops the polling (backpressure)."},
			{Name: "session_timeout", Type: flow.TypeDuration, Default: "45s",
				Description: "How long the group waits for a silent member before it gives its partitions to the others: after flowctl is killed, the restarted run gets its partitions back only once the killed member's session ran out (the brokers bound it, by default to 6s–30m)."},
			{Name: "format", Type: flow.TypeString, Default: "json", Enum: []string{"json", "text"},
				Description: "json: the record value is the event data (application/json); a value that is not valid JSON goes to the dead-letter sink with the reason (or without one is dropped and counted) and its offset is committed. text: the value is the data as it is (content-type header, else text/plain)."},
			{Name: "event_type", Type: flow.TypeString,
				Description: "The type of the emitted events; default: the record's ce_type header, else its topic."},
		}, kafkaConnFields...),
		Examples: []string{
			"brokers: [127.0.0.1:9092]\ntopics: [orders]",
			"brokers: [\"${KAFKA_BROKERS}\"]\ntopics: [\"orders\\\\..*\"]\nregex: true\ngroup: orders-eu\nstart: latest",
		},
		Validate: validateWith(kafkaParseSource),
		OutputTypes: func(name string, cfg flow.Config, _ []string) ([]string, bool) {
			if t, ok := cfg["event_type"].(string); ok && t != "" {
				return []string{t}, true
			}
			return nil, false // the records' topics or ce_type headers
		},
		New: func(bc flow.BuildContext) (any, error) {
			s, err := kafkaParseSource(bc.Config)
			if err != nil {
				return nil, err
			}
			s.name = bc.Name
			s.clientID = "flowctl-" + bc.Pipeline + "-" + bc.Name
			s.conn.resolve(bc.Dir)
			if s.group == "" {
				s.group = bc.Pipeline + "_" + bc.Name
			}
			s.log = bc.Logger
			if s.log == nil {
				s.log = slog.New(slog.DiscardHandler)
			}
			return s, nil
		},
	})
}

// kafkaSource reads topics as a consumer group member with automatic
// commits off.
//
// Its position is the group's committed offsets, kept by the cluster: the
// source is not a flow.Resumer and commits nothing to flowctl's
// checkpoint, so a file sink behind it keeps what it wrote after the last
// checkpoint (the engine treats it as a source that cannot be replayed)
// and no event is lost by being cut from the output and not read again.
//
//	poll ─► emit (good records) ─► done(nil) ─┐
//	     └► reject (bad JSON)   ─► done(nil) ─┴► per partition: advance the
//	                                            finished prefix ─► commit
//	                               done(err)  ─► nothing (read again)
//
// Each partition keeps its records in flight in offset order; a record's
// done marks it finished, and the offset committed is the one after the
// longest finished prefix, so a commit never passes a record whose event
// is still in the pipeline, whatever order the sinks finish in.
type kafkaSource struct {
	conn        kafkaConn
	name        string
	clientID    string
	topics      []string
	regex       bool
	group       string
	startLatest bool
	batch       int
	session     time.Duration
	text        bool
	eventType   string
	log         *slog.Logger

	cl *kgo.Client

	mu    sync.Mutex
	parts map[kafkaTP]*kafkaPart // assigned partitions with records read
	kick  chan struct{}          // a partition has something to commit

	commitMu sync.Mutex // one commit at a time: offsets never go back
}

type kafkaTP struct {
	topic     string
	partition int32
}

// kafkaPart is one partition's records in flight.
type kafkaPart struct {
	q         []kafkaInFlight // in offset order
	next      kgo.EpochOffset // the offset after the finished prefix
	committed int64           // the last offset committed (-1: none yet)
}

type kafkaInFlight struct {
	offset int64
	epoch  int32
	done   *bool // shared by the records of one Emit or Reject
}

func kafkaParseSource(cfg flow.Config) (*kafkaSource, error) {
	conn, errs := kafkaParseConn(cfg)
	s := &kafkaSource{
		conn:      conn,
		regex:     ioCfgBool(cfg, "regex", false),
		group:     ioCfgString(cfg, "group", ""),
		eventType: ioCfgString(cfg, "event_type", ""),
	}
	topics, err := ioCfgStrings(cfg, "topics")
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil && len(topics) == 0 {
		errs = append(errs, ioFieldErr("topics", "is required", "name the topics to read, e.g. topics: [orders]"))
	}
	for i, t := range topics {
		switch {
		case s.regex:
			if _, err := regexp.Compile(t); err != nil {
				errs = append(errs, ioFieldErr(fmt.Sprintf("topics[%d]", i), fmt.Sprintf("%q is not a regular expression: %v", t, err), `write RE2 syntax, e.g. "orders\\..*"`))
			}
		case !kafkaValidTopic(t):
			errs = append(errs, ioFieldErr(fmt.Sprintf("topics[%d]", i), fmt.Sprintf("%q is not a topic name", t), "a topic name is 1–249 characters of letters, digits, '.', '_' and '-'; set regex: true for a pattern"))
		}
	}
	s.topics = topics
	switch st := ioCfgString(cfg, "start", "earliest"); st {
	case "earliest":
	case "latest":
		s.startLatest = true
	default:
		errs = append(errs, ioFieldErr("start", fmt.Sprintf("unknown start %q", st), `use "earliest" (the partition's first record) or "latest" (from now on)`))
	}
	text, err := cfgPayloadFormat(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	s.text = text
	if s.batch, err = cfgIntIn(cfg, "batch", 256, 1, flow.MaxBatch); err != nil {
		errs = append(errs, err)
	}
	st, err := ioCfgDuration(cfg, "session_timeout", 45*time.Second)
	if err == nil && st < time.Second {
		err = ioFieldErr("session_timeout", "must be at least 1s", `use e.g. "45s"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	s.session = st
	return s, errors.Join(errs...)
}

// kafkaValidTopic reports whether Kafka takes s as a topic name.
func kafkaValidTopic(s string) bool {
	if s == "" || len(s) > 249 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Open builds the client and checks that the cluster answers and that the
// topics exist, so that a wrong address or a missing topic stops the run
// before any event flows. The group is joined by the first poll.
func (s *kafkaSource) Open(ctx context.Context) error {
	start := kgo.NewOffset().AtStart()
	if s.startLatest {
		start = kgo.NewOffset().AtEnd()
	}
	base, err := s.conn.opts(s.clientID, s.log)
	if err != nil {
		return fmt.Errorf("source %q: %w", s.name, err)
	}
	opts := append(base,
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(s.topics...),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(s.session),
		kgo.HeartbeatInterval(min(3*time.Second, s.session/3)),
		// No rebalance between a poll and the tracking of its records:
		// a revoked partition's records are all known when it goes.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	)
	if s.regex {
		opts = append(opts, kgo.ConsumeRegex())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("source %q: %w", s.name, err)
	}
	s.cl = cl
	s.parts = map[kafkaTP]*kafkaPart{}
	s.kick = make(chan struct{}, 1)
	ctx, cancel := context.WithTimeout(ctx, s.conn.timeout)
	defer cancel()
	var check []string
	if !s.regex {
		check = s.topics
	}
	return kafkaCheckTopics(ctx, cl, s.conn, "source", s.name, check)
}

// Run polls and emits until ctx is done. Fetch errors (a broker
// restarting) are logged and retried with backoff; only ctx ends the loop.
func (s *kafkaSource) Run(ctx context.Context, out flow.Emitter) error {
	if s.cl == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.committer(stop)
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	bo := backoff.New(backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: backoff.DefaultJitter})
	for ctx.Err() == nil {
		fs := s.cl.PollRecords(ctx, s.batch)
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("topic %s partition %d: %w", topic, p, err)
			}
		})
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		err := s.emit(ctx, out, recs)
		s.cl.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("source %q: %w", s.name, err)
		}
		if errors.Is(ferr, kgo.ErrClientClosed) {
			return nil
		}
		if ferr != nil && len(recs) == 0 {
			if errors.Is(ferr, kerr.GroupAuthorizationFailed) || errors.Is(ferr, kerr.TopicAuthorizationFailed) {
				return fmt.Errorf("source %q: %w — the cluster refuses this client the group %q or a topic: grant it read access", s.name, ferr, s.group)
			}
			d := bo.Next()
			s.log.Warn("fetch from Kafka failed; trying again", "error", ferr, "in", d, "failures", bo.Failures())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
			continue
		}
		bo.Reset()
	}
	return nil
}

// emit turns records into events and hands them over, the malformed ones
// to the dead letter, after recording them as in flight in their
// partitions.
func (s *kafkaSource) emit(ctx context.Context, out flow.Emitter, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	evs := flow.NewBatch()
	var bad []*flow.Event
	var errs []error
	goodDone, badDone := new(bool), new(bool)
	rej, canReject := out.(flow.Rejecter)
	s.mu.Lock()
	for _, r := range recs {
		ev := s.event(r)
		d := goodDone
		if !s.text && canReject {
			if err := flow.ValidateJSON(ev.Data); err != nil {
				bad, errs = append(bad, ev), append(errs, fmt.Errorf("record %s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err))
				d = badDone
			} else {
				evs = append(evs, ev)
			}
		} else {
			evs = append(evs, ev)
		}
		tp := kafkaTP{r.Topic, r.Partition}
		p := s.parts[tp]
		if p == nil {
			p = &kafkaPart{committed: -1}
			s.parts[tp] = p
		}
		p.q = append(p.q, kafkaInFlight{offset: r.Offset, epoch: r.LeaderEpoch, done: d})
	}
	s.mu.Unlock()
	if len(bad) > 0 {
		if err := rej.Reject(ctx, bad, errs, s.finish(badDone)); err != nil {
			return err
		}
	}
	if len(evs) == 0 {
		flow.RecycleBatch(evs)
		return nil
	}
	return out.Emit(ctx, evs, s.finish(goodDone))
}

// finish returns the done of the records sharing flag: when the pipeline
// finished them, each of their partitions advances its finished prefix
// and the committer is told. An error (the run stopped before they were
// written) commits nothing: they are read again.
func (s *kafkaSource) finish(flag *bool) func(error) {
	return func(err error) {
		if err != nil {
			return
		}
		s.mu.Lock()
		*flag = true
		moved := false
		for _, p := range s.parts {
			i := 0
			for i < len(p.q) && *p.q[i].done {
				i++
			}
			if i > 0 {
				last := p.q[i-1]
				p.next = kgo.EpochOffset{Epoch: last.epoch, Offset: last.offset + 1}
				p.q = p.q[i:]
				moved = true
			}
		}
		s.mu.Unlock()
		if moved {
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	}
}

// committer commits what was finished as soon as there is some, one commit
// at a time, until stop.
func (s *kafkaSource) committer(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-s.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.conn.timeout)
		if err := s.commit(ctx, nil); err != nil {
			s.log.Warn("committing offsets to Kafka failed; the next commit carries them", "error", err)
		}
		cancel()
	}
}

// commit commits the finished prefix of every partition tracked (of only
// those in only, if not nil) that moved since its last commit.
func (s *kafkaSource) commit(ctx context.Context, only map[string][]int32) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	offs := map[string]map[int32]kgo.EpochOffset{}
	s.mu.Lock()
	for tp, p := range s.parts {
		if only != nil && !slices.Contains(only[tp.topic], tp.partition) {
			continue
		}
		if p.next.Offset > 0 && p.next.Offset-1 != p.committed {
			if offs[tp.topic] == nil {
				offs[tp.topic] = map[int32]kgo.EpochOffset{}
			}
			offs[tp.topic][tp.partition] = p.next
		}
	}
	s.mu.Unlock()
	if len(offs) == 0 {
		return nil
	}
	var cerr error
	s.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		var errs []error
		s.mu.Lock()
		for _, t := range resp.Topics {
			for _, rp := range t.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("topic %s partition %d: %w", t.Topic, rp.Partition, err))
					continue
				}
				if p := s.parts[kafkaTP{t.Topic, rp.Partition}]; p != nil {
					p.committed = offs[t.Topic][rp.Partition].Offset - 1
				}
			}
		}
		s.mu.Unlock()
		cerr = errors.Join(errs...)
	})
	return cerr
}

// revoked runs when partitions move to another member (or the client
// leaves the group): what was finished is committed, the rest is dropped
// from tracking — the new owner reads it again, and the events still in
// this pipeline are written twice.
func (s *kafkaSource) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if err := s.commit(ctx, revoked); err != nil {
		s.log.Warn("committing the offsets of revoked partitions failed: their new owner reads again from the last commit", "error", err)
	}
	s.drop(revoked)
}

// lost runs when the group lost partitions without a chance to commit
// (the session expired): they are dropped from tracking.
func (s *kafkaSource) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.log.Warn("Kafka partitions lost (the group session expired): records in flight of them will be read again by their new owner", "partitions", fmt.Sprint(lost))
	s.drop(lost)
}

func (s *kafkaSource) drop(parts map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range parts {
		for _, p := range ps {
			delete(s.parts, kafkaTP{t, p})
		}
	}
}

// event builds the event of a record: the CloudEvents Kafka binding's
// ce_* headers, where the record has them, else Kafka's own attributes.
func (s *kafkaSource) event(r *kgo.Record) *flow.Event {
	part, off := strconv.FormatInt(int64(r.Partition), 10), strconv.FormatInt(r.Offset, 10)
	ev := &flow.Event{
		ID:              r.Topic + "/" + part + "/" + off,
		Source:          s.name,
		Type:            r.Topic,
		Time:            r.Timestamp,
		DataContentType: "application/json",
		Data:            r.Value,
		Metadata:        map[string]string{"kafka_topic": r.Topic, "kafka_partition": part, "kafka_offset": off},
	}
	if r.Key != nil {
		ev.Metadata["kafka_key"] = string(r.Key)
	}
	if s.text {
		ev.DataContentType = "text/plain"
	}
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case kafkaHdrID:
			ev.ID = v
		case kafkaHdrType:
			ev.Type = v
		case kafkaHdrSource:
			ev.Source = v
		case kafkaHdrSubject:
			ev.Subject = v
		case kafkaHdrTime:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				ev.Time = t
			}
		case kafkaHdrContentType:
			if s.text {
				ev.DataContentType = v
			}
		case kafkaHdrSpecVersion:
		default:
			if strings.HasPrefix(h.Key, kafkaHdrPrefix) && len(h.Key) > len(kafkaHdrPrefix) {
				ev.Metadata[h.Key[len(kafkaHdrPrefix):]] = v
			} else {
				ev.Metadata["kafka_header_"+h.Key] = v
			}
		}
	}
	if s.eventType != "" {
		ev.Type = s.eventType
	}
	return ev
}

// Close commits what the pipeline finished and leaves the group, so that
// the partitions go at once to the other members.
func (s *kafkaSource) Close(ctx context.Context) error {
	if s.cl == nil {
		return nil
	}
	err := s.commit(ctx, nil)
	if err != nil {
		err = fmt.Errorf("source %q: commit offsets: %w — the records after the last commit are read again", s.name, err)
	}
	s.cl.Close() // leaves the group: revoked commits again, a no-op
	s.cl = nil
	return err
}

var (
	_ flow.Source = (*kafkaSource)(nil)
	_ flow.Opener = (*kafkaSource)(nil)
	_ flow.Closer = (*kafkaSource)(nil)
)
