package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flowctl/flowctl/internal/flow"
)

// This file holds what the kafka source and sink share: the connection
// fields, connecting with a clear error, checking that topics exist, and
// the CloudEvents Kafka binding (binary mode: attributes travel as ce_*
// headers).
//
// franz-go is imported here, but nothing of it runs before a pipeline
// opens a kafka component: its package initialisation only sets
// variables, and the client is built in Open, so the built-ins that do not
// use Kafka pay nothing at start-up.

const kafkaDefaultBrokers = "127.0.0.1:9092"

// kafkaConnFields are the connection fields of both kafka components.
var kafkaConnFields = append([]flow.Field{
	{Name: "brokers", Type: flow.TypeStrings, Default: []any{kafkaDefaultBrokers}, Example: []any{"kafka-1:9092", "kafka-2:9092"},
		Description: "Bootstrap brokers, host:port each; an item may hold several comma-separated addresses, so that [\"${KAFKA_BROKERS}\"] takes a list from the environment. The client learns the rest of the cluster from them."},
	{Name: "client_id", Type: flow.TypeString,
		Description: "The client id the brokers see (logs, quotas). Default: flowctl-<pipeline>-<component>."},
	{Name: "connect_timeout", Type: flow.TypeDuration, Default: "10s",
		Description: "How long reaching the cluster and checking the topics may take when the run starts before it stops with an error."},
}, kafkaSecurityFields...) // package variables initialise in dependency order

// The CloudEvents Kafka protocol binding, binary content mode: each
// attribute is a header named ce_<attribute>; the data's media type is the
// content-type header.
const (
	kafkaHdrPrefix      = "ce_"
	kafkaHdrSpecVersion = "ce_specversion"
	kafkaHdrID          = "ce_id"
	kafkaHdrType        = "ce_type"
	kafkaHdrSource      = "ce_source"
	kafkaHdrSubject     = "ce_subject"
	kafkaHdrTime        = "ce_time"
	kafkaHdrContentType = "content-type"
)

// kafkaMetaPrefix marks the metadata a kafka source sets itself
// (kafka_topic, kafka_offset, ...): a kafka sink does not send it on as
// headers.
const kafkaMetaPrefix = "kafka_"

// kafkaConn is a parsed connection config.
type kafkaConn struct {
	brokers  []string
	clientID string
	timeout  time.Duration
	tls      *kafkaTLS  // nil: plaintext
	sasl     *kafkaSASL // nil: no authentication
}

func kafkaParseConn(cfg flow.Config) (kafkaConn, []error) {
	var errs []error
	c := kafkaConn{clientID: ioCfgString(cfg, "client_id", "")}
	var list []string
	if s, ok := cfg["brokers"].(string); ok {
		list = strings.Split(s, ",")
	} else {
		l, err := ioCfgStrings(cfg, "brokers")
		if err != nil {
			errs = append(errs, err)
		}
		for _, b := range l {
			list = append(list, strings.Split(b, ",")...)
		}
	}
	if _, ok := cfg["brokers"]; !ok {
		list = []string{kafkaDefaultBrokers}
	}
	for _, b := range list {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			errs = append(errs, ioFieldErr("brokers", fmt.Sprintf("%q is not a broker address", b), "write host:port, e.g. 127.0.0.1:9092"))
			continue
		}
		c.brokers = append(c.brokers, b)
	}
	if len(c.brokers) == 0 && len(errs) == 0 {
		errs = append(errs, ioFieldErr("brokers", "names no broker", "list at least one, e.g. brokers: [127.0.0.1:9092]"))
	}
	to, err := ioCfgDuration(cfg, "connect_timeout", 10*time.Second)
	if err == nil && to <= 0 {
		err = ioFieldErr("connect_timeout", "must be positive", `use e.g. "10s"`)
	}
	if err != nil {
		errs = append(errs, err)
	}
	c.timeout = to
	errs = append(errs, kafkaParseSecurity(cfg, &c)...)
	return c, errs
}

// opts are the client options every kafka component uses: the brokers,
// the client id, and TLS and SASL when configured (their files and the
// password are read now).
func (c kafkaConn) opts(clientID string, log *slog.Logger) ([]kgo.Opt, error) {
	if c.clientID != "" {
		clientID = c.clientID
	}
	sec, err := c.securityOpts()
	if err != nil {
		return nil, err
	}
	if w := c.plaintextWarning(); w != "" {
		log.Warn("kafka: " + w)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.ClientID(clientID),
		kgo.DialTimeout(c.timeout),
		kgo.WithLogger(kafkaLogger{log}),
	}
	return append(opts, sec...), nil
}

// kafkaCheckTopics asks the cluster for the topics' metadata, so that an
// unreachable cluster or a missing topic stops the run before any event
// flows, with a hint.
func kafkaCheckTopics(ctx context.Context, cl *kgo.Client, c kafkaConn, role, name string, topics []string) error {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("%s %q: reach the Kafka cluster at %s: %w — check brokers and that the cluster is up", role, name, strings.Join(c.brokers, ","), err)
	}
	var errs []error
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			tn := ""
			if t.Topic != nil {
				tn = *t.Topic
			}
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				err = fmt.Errorf("topic %q does not exist — create it (kafka-topics.sh --create --topic %s) or fix the name", tn, tn)
			} else {
				err = fmt.Errorf("topic %q: %w", tn, err)
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s %q: %w", role, name, errors.Join(errs...))
	}
	return nil
}

// kafkaLogger hands franz-go's warnings and errors to the component's
// logger (its info and debug lines are too chatty for a pipeline's log).
type kafkaLogger struct{ log *slog.Logger }

func (l kafkaLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kafkaLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		l.log.Error("kafka: "+msg, keyvals...)
	case kgo.LogLevelWarn:
		l.log.Warn("kafka: "+msg, keyvals...)
	}
}
