package kafkatest

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProduceAndReadAll writes records to a kfake topic of 3 partitions
// and reads every one back.
func TestProduceAndReadAll(t *testing.T) {
	k := Start(t, 3, "t")
	const n = 100
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Topic: "t", Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "%d", i)}
	}
	k.Produce(t, rs...)
	got := k.ReadAll(t, "t", n, 30*time.Second)
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	parts := map[int32]bool{}
	seen := map[string]bool{}
	for _, r := range got {
		parts[r.Partition] = true
		seen[string(r.Value)] = true
	}
	if len(seen) != n || len(parts) != 3 {
		t.Fatalf("%d distinct values over %d partitions, want %d over 3", len(seen), len(parts), n)
	}
}

// TestStoredAndCommitted counts a topic's records and reads the offsets
// of a group that never committed (the components' tests read real ones).
func TestStoredAndCommitted(t *testing.T) {
	k := Start(t, 2, "t")
	k.Produce(t, &kgo.Record{Topic: "t", Partition: 0, Value: []byte("a")}, &kgo.Record{Topic: "t", Value: []byte("b")}, &kgo.Record{Topic: "t", Value: []byte("c")})
	if n := k.Stored(t, "t"); n != 3 {
		t.Fatalf("stored %d, want 3", n)
	}
	if c := k.Committed(t, "g", "t"); len(c) != 0 {
		t.Fatalf("a group that never committed has offsets %v", c)
	}
}
