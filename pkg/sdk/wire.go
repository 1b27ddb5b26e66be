package sdk

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	gproto "google.golang.org/protobuf/proto"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
	"github.com/flowctl/flowctl/pkg/wire/wirecodec"
)

// A processor's batches and answers carry one event each way per input:
// most of the SDK's own work. Going through the generated types costs
// several allocations per event each way (the wire Event, each string, a
// copy of the data, the Output) plus the reflection-driven encoding. The
// processor stream reads a ProcessRequest straight into a slab of Events
// and writes a ProcessResponse straight from them instead (wireCodec).
// The wire format is unchanged (stream.proto); every other message goes
// through gRPC's proto codec.

// processRequest is a ProcessRequest decoded by wireCodec.
type processRequest struct {
	batch *inBatch // nil: no batch in the message
}

// inBatch is a batch of a processor or sink stream: decoded into events
// (processor), or as the generated message (sink).
type inBatch struct {
	seq         uint64
	redelivered bool
	events      []Event         // processor: decoded by wireCodec
	pb          *streamv1.Batch // sink
}

// count is the number of events in the batch.
func (b *inBatch) count() int {
	if b.pb != nil {
		return len(b.pb.GetEvents())
	}
	return len(b.events)
}

// processAnswer is a ProcessResponse that wireCodec encodes.
type processAnswer struct {
	result   bool // a Result with seq, outputs and failures is set
	seq      uint64
	outputs  []answerOutput
	failures []*streamv1.Failure
	credit   *streamv1.Credit
	drain    *streamv1.Drain
}

type answerOutput struct {
	index uint32
	event *Event
}

// wireCodec is gRPC's proto codec, except for processRequest and
// processAnswer, which it reads and writes by hand. Its name stays
// "proto": the content type is unchanged.
type wireCodec struct {
	encoding.CodecV2
}

func newWireCodec() wireCodec { return wireCodec{CodecV2: encoding.GetCodecV2(proto.Name)} }

// Marshal implements encoding.CodecV2.
func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	a, ok := v.(*processAnswer)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	m, err := a.marshal()
	if err != nil {
		return nil, fmt.Errorf("encode a ProcessResponse: %w", err)
	}
	return m, nil
}

// Unmarshal implements encoding.CodecV2.
func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*processRequest)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	// gRPC recycles data's buffers once Unmarshal returns: copy them once,
	// into a buffer the events own. Each event's Data is its own window of
	// it (capacity capped: appending reallocates, writing in place stays
	// inside the event), and its strings point into it too (never written).
	if err := r.decode(data.Materialize()); err != nil {
		return fmt.Errorf("decode a ProcessRequest: %w", err)
	}
	return nil
}

func (r *processRequest) decode(b []byte) error {
	*r = processRequest{}
	return wirecodec.Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return nil // unknown fields are skipped
		}
		if r.batch == nil {
			r.batch = &inBatch{}
		}
		return r.batch.decode(v)
	})
}

func (ib *inBatch) decode(b []byte) error {
	n := 0
	err := wirecodec.Fields(b, func(num protowire.Number, typ protowire.Type, _ []byte, _ uint64) error {
		if num == 2 && typ == protowire.BytesType {
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	ib.events = make([]Event, 0, n)
	return wirecodec.Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			ib.seq = x
		case num == 3 && typ == protowire.VarintType:
			ib.redelivered = x != 0
		case num == 2 && typ == protowire.BytesType:
			ib.events = ib.events[:len(ib.events)+1]
			return decodeEvent(v, &ib.events[len(ib.events)-1])
		}
		return nil
	})
}

// decodeEvent decodes a wire Event into e, pointing into b.
func decodeEvent(b []byte, e *Event) error {
	var w wirecodec.Event
	if err := wirecodec.DecodeEvent(b, &w); err != nil {
		return err
	}
	e.ID, e.Source, e.Type, e.Subject, e.DataContentType = w.ID, w.Source, w.Type, w.Subject, w.DataContentType
	e.Time, e.Data, e.Metadata = w.Time, w.Data, w.Metadata
	return nil
}

// Encoding: the answer is written straight from the events
// (wirecodec.AppendEvent) into one buffer from gRPC's pool, which gRPC
// returns to the pool once the bytes are on the connection.

// codecEvent views e as a wirecodec.Event (no copy of its strings or data).
func (e *Event) codecEvent() wirecodec.Event {
	return wirecodec.Event{
		ID: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject, DataContentType: e.DataContentType,
		Time: e.Time, Data: e.Data, Metadata: e.Metadata,
	}
}

// maxStackOutputs is how many outputs an answer sizes without allocating.
const maxStackOutputs = 256

// marshal encodes the answer (wirecodec.Marshal: into a buffer from gRPC's
// pool when it is large enough to be worth it).
func (a *processAnswer) marshal() (mem.BufferSlice, error) {
	var (
		stack    [maxStackOutputs]int
		sizes    []int
		failures [][]byte
		drain    []byte
		rsize    int
		size     int
		err      error
	)
	if a.result {
		// Sizes of the events (computed once), of the Result, of the whole.
		sizes = stack[:0]
		if len(a.outputs) > len(stack) {
			sizes = make([]int, 0, len(a.outputs))
		}
		outSizes := 0
		for _, o := range a.outputs {
			w := o.event.codecEvent()
			es := wirecodec.EventSize(&w)
			sizes = append(sizes, es)
			outSizes += wirecodec.SizeMessage(2, wirecodec.SizeVarint(1, uint64(o.index))+wirecodec.SizeMessage(2, es))
		}
		failures = make([][]byte, len(a.failures))
		for i, f := range a.failures {
			if failures[i], err = gproto.Marshal(f); err != nil {
				return nil, err
			}
			outSizes += wirecodec.SizeMessage(3, len(failures[i]))
		}
		rsize = wirecodec.SizeVarint(1, a.seq) + outSizes
		size = wirecodec.SizeMessage(1, rsize)
	}
	if a.credit != nil {
		size += wirecodec.SizeMessage(2, wirecodec.SizeVarint(1, uint64(a.credit.GetBatches())))
	}
	if a.drain != nil {
		if drain, err = gproto.Marshal(a.drain); err != nil {
			return nil, err
		}
		size += wirecodec.SizeMessage(3, len(drain))
	}
	return wirecodec.Marshal(size, func(b []byte) ([]byte, error) {
		return a.appendTo(b, rsize, sizes, failures, drain)
	})
}

func (a *processAnswer) appendTo(b []byte, rsize int, sizes []int, failures [][]byte, drain []byte) ([]byte, error) {
	var err error
	if a.result {
		b = wirecodec.AppendMessageHeader(b, 1, rsize)
		b = wirecodec.AppendVarint(b, 1, a.seq)
		for i, o := range a.outputs {
			b = wirecodec.AppendMessageHeader(b, 2, wirecodec.SizeVarint(1, uint64(o.index))+wirecodec.SizeMessage(2, sizes[i]))
			b = wirecodec.AppendVarint(b, 1, uint64(o.index))
			b = wirecodec.AppendMessageHeader(b, 2, sizes[i])
			w := o.event.codecEvent()
			if b, err = wirecodec.AppendEvent(b, &w); err != nil {
				return nil, err
			}
		}
		for _, f := range failures {
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendBytes(b, f)
		}
	}
	if a.credit != nil {
		x := uint64(a.credit.GetBatches())
		b = wirecodec.AppendMessageHeader(b, 2, wirecodec.SizeVarint(1, x))
		b = wirecodec.AppendVarint(b, 1, x)
	}
	if a.drain != nil {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, drain)
	}
	return b, nil
}
