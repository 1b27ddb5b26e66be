package external

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
	"github.com/flowctl/flowctl/pkg/wire/wirecodec"
)

// TestBatchCodec encodes batches by hand and compares the bytes with the
// generated encoding of the same ProcessRequest and SinkRequest (both
// hold the Batch as field 1).
func TestBatchCodec(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	full := &flow.Event{
		ID: "e1", Source: "src", Type: "t", Subject: "s", DataContentType: "application/json",
		Time: when, Data: []byte(`{"a":1}`), Metadata: map[string]string{"k": "v"},
	}
	many := make([]*flow.Event, flow.MaxBatch+1) // beyond the sizes kept on the stack
	for i := range many {
		many[i] = &flow.Event{ID: fmt.Sprint(i), Data: bytes.Repeat([]byte("x"), 100)}
	}
	cases := []struct {
		name string
		b    outBatch
	}{
		{"one small event", outBatch{seq: 1, events: []*flow.Event{{ID: "a"}}}},
		{"all attributes, redelivered", outBatch{seq: 1 << 40, redelivered: true, events: []*flow.Event{full, {}, {ID: "ünï", Time: time.Unix(-5, 7)}}}},
		{"pooled buffer", outBatch{seq: 7, events: many[:flow.MaxBatch]}},
		{"more than MaxBatch", outBatch{seq: 8, events: many}},
		{"large event", outBatch{seq: 9, events: []*flow.Event{{ID: "big", Data: bytes.Repeat([]byte("y"), 1<<20)}}}},
	}
	codec := newResponseCodec()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bs, err := codec.Marshal(&c.b)
			if err != nil {
				t.Fatal(err)
			}
			got := bs.Materialize()
			bs.Free()
			batch := &streamv1.Batch{Seq: c.b.seq, Redelivered: c.b.redelivered, Events: eventsToStream(c.b.events)}
			for name, m := range map[string]proto.Message{
				"ProcessRequest": &streamv1.ProcessRequest{Batch: batch},
				"SinkRequest":    &streamv1.SinkRequest{Batch: batch},
			} {
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: hand encoding differs from the generated one (%d and %d bytes)", name, len(got), len(want))
				}
			}
		})
	}
}

func TestBatchCodecInvalid(t *testing.T) {
	b := &outBatch{seq: 1, events: []*flow.Event{{ID: "ok"}, {ID: "x", Metadata: map[string]string{"k": "\xff"}}}}
	if _, err := newResponseCodec().Marshal(b); !errors.Is(err, wirecodec.ErrMalformed) {
		t.Errorf("metadata that is not UTF-8: err %v, want ErrMalformed", err)
	}
}

// BenchmarkBatchCodec encodes a batch of 256 W1 events: by hand, and
// through the generated types as before.
//
//	go test -run XXX -bench BatchCodec -benchmem ./internal/external/
func BenchmarkBatchCodec(b *testing.B) {
	batch := jsonBatch("w", flow.MaxBatch, func(i int) string {
		return `,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5000,"kind":"fee"`
	})
	for _, e := range batch {
		e.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	codec := newResponseCodec()
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			bs, err := codec.Marshal(&outBatch{seq: uint64(i + 1), events: batch})
			if err != nil {
				b.Fatal(err)
			}
			bs.Free()
		}
	})
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			m := &streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: uint64(i + 1), Events: eventsToStream(batch)}}
			bs, err := codec.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			bs.Free()
		}
	})
}
