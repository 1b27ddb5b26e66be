package kafkatest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster is a running kfake cluster (franz-go's in-process Kafka-protocol
// fake, not Apache Kafka).
type Cluster struct {
	// Brokers are the host:port addresses clients bootstrap from.
	Brokers []string
	// ClientOpts are added to every client the helpers make (Client,
	// Produce, ReadAll, ...): the TLS and SASL options a cluster started
	// by StartWith needs.
	ClientOpts []kgo.Opt

	c *kfake.Cluster
}

// Start starts a one-broker kfake cluster for t on 127.0.0.1 at a random
// port, with topics created with partitions partitions each (none if
// topics is empty); it is closed when t ends.
func Start(t testing.TB, partitions int32, topics ...string) *Cluster {
	t.Helper()
	return StartWith(t, nil, partitions, topics...)
}

// StartWith is Start with more kfake options, such as kfake.TLS,
// kfake.EnableSASL and kfake.Superuser for a cluster that clients must
// reach over TLS or authenticate to. Client and the helpers built on it
// then need the matching kgo options.
func StartWith(t testing.TB, extra []kfake.Opt, partitions int32, topics ...string) *Cluster {
	t.Helper()
	// Sessions from 1s, so that a test can set a short session_timeout
	// and a restarted member gets the partitions of a killed one soon.
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(0), kfake.GroupMinSessionTimeout(time.Second)}
	opts = append(opts, extra...)
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kafkatest: start kfake: %v", err)
	}
	k := &Cluster{Brokers: c.ListenAddrs(), c: c}
	t.Cleanup(c.Close)
	return k
}

// BrokerList is Brokers joined with commas, as a pipeline file takes them
// from an environment variable.
func (k *Cluster) BrokerList() string { return strings.Join(k.Brokers, ",") }

// Client returns a franz-go client of the cluster with opts added, closed
// when t ends.
func (k *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, k.ClientOpts...)
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Produce writes records to the cluster and waits until every one was
// acknowledged; it fails t on the first error.
func (k *Cluster) Produce(t testing.TB, records ...*kgo.Record) {
	t.Helper()
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatalf("kafkatest: produce: %v", err)
	}
}

// ReadAll reads topic from its start until it has want records or
// timeout passes, and returns what it read (fewer than want on timeout).
// It reads every partition directly, not through a consumer group.
func (k *Cluster) ReadAll(t testing.TB, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := k.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// Stored returns how many records topic holds (the sum of its partitions'
// end offsets; the topic is never truncated in a test).
func (k *Cluster) Stored(t testing.TB, topic string) int64 {
	t.Helper()
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 {
		t.Fatalf("kafkatest: metadata of %s: %v", topic, err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.Timestamp = -1 // the end
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("kafkatest: end offsets of %s: %v", topic, err)
	}
	var n int64
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				t.Fatalf("kafkatest: end offset of %s/%d: %v", topic, p.Partition, err)
			}
			n += p.Offset
		}
	}
	return n
}

// Committed returns the offsets group committed for topic, by partition.
func (k *Cluster) Committed(t testing.TB, group, topic string) map[int32]int64 {
	t.Helper()
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	req.Topics = nil // every topic of the group
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{} // it never committed
	}
	if err != nil {
		t.Fatalf("kafkatest: committed offsets of group %s: %v", group, err)
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		if rt.Topic != topic {
			continue
		}
		for _, p := range rt.Partitions {
			if p.Offset >= 0 {
				out[p.Partition] = p.Offset
			}
		}
	}
	return out
}
