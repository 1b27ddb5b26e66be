package external

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/wirecodec"
)

// The batches flowctl sends a processor or a sink carry one wire Event per
// input. Converting them to the generated types first costs a slab of
// wire events and a Timestamp per event, and then the generated encoding
// walks them again. outBatch is written straight from the flow events
// instead, into a buffer from gRPC's pool (gRPC returns it once the bytes
// are on the connection). ProcessRequest and SinkRequest both hold the
// Batch as field 1, so one encoding serves both streams. The wire format is
// unchanged.

// outBatch is a ProcessRequest or SinkRequest holding one Batch, as
// responseCodec encodes it.
type outBatch struct {
	seq         uint64
	redelivered bool
	events      []*flow.Event
}

// codecEvent views e as a wirecodec.Event (no copy of its strings or data).
func codecEvent(e *flow.Event) wirecodec.Event {
	return wirecodec.Event{
		ID: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject, DataContentType: e.DataContentType,
		Time: e.Time, Data: e.Data, Metadata: e.Metadata,
	}
}

// Marshal implements encoding.CodecV2.
func (c responseCodec) Marshal(v any) (mem.BufferSlice, error) {
	o, ok := v.(*outBatch)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	var stack [flow.MaxBatch]int
	sizes := stack[:0]
	if len(o.events) > len(stack) {
		sizes = make([]int, 0, len(o.events))
	}
	for _, e := range o.events {
		w := codecEvent(e)
		sizes = append(sizes, wirecodec.EventSize(&w))
	}
	bsize := wirecodec.BatchSize(o.seq, o.redelivered, sizes)
	m, err := wirecodec.Marshal(wirecodec.SizeMessage(1, bsize), func(b []byte) ([]byte, error) {
		return o.append(b, bsize, sizes)
	})
	if err != nil {
		return nil, fmt.Errorf("encode a batch of %d events: %w", len(o.events), err)
	}
	return m, nil
}

// append appends the request: field 1, the Batch of bsize bytes.
func (o *outBatch) append(b []byte, bsize int, sizes []int) ([]byte, error) {
	b = wirecodec.AppendMessageHeader(b, 1, bsize)
	b = wirecodec.AppendVarint(b, 1, o.seq)
	for i, e := range o.events {
		w := codecEvent(e)
		b = wirecodec.AppendMessageHeader(b, 2, sizes[i])
		var err error
		if b, err = wirecodec.AppendEvent(b, &w); err != nil {
			return b, err
		}
	}
	if o.redelivered {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b, nil
}
