package external

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	gproto "google.golang.org/protobuf/proto"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
	"github.com/flowctl/flowctl/pkg/wire/wirecodec"
)

// A processor's answers are the bulk of what flowctl receives from a
// component: one event per input. Decoding them into the generated types
// and then converting costs several allocations per event (the Output, the
// wire Event, each string, a copy of the data). processResponse decodes a
// ProcessResponse straight into flow events instead: the message is copied
// once into a buffer of its own, and every event's strings and Data point
// into it (events are immutable, so sharing is safe; the buffer lives as
// long as any of its events). The wire format is unchanged: this is only
// flowctl's way of reading it.

// processResponse is a ProcessResponse decoded by responseCodec.
type processResponse struct {
	result *decodedResult // nil: no Result in the message
	credit uint32
	drain  *streamv1.Drain
}

// decodedResult is a Result with its outputs as flow events.
type decodedResult struct {
	seq      uint64
	outputs  []decodedOutput
	failures []*streamv1.Failure
}

// decodedOutput is one Output; event is nil when the Output had none.
type decodedOutput struct {
	index uint32
	event *flow.Event
}

// responseCodec is gRPC's proto codec, except that it decodes into a
// *processResponse by hand. It keeps the name "proto", so the content type
// on the wire stays application/grpc+proto.
type responseCodec struct {
	encoding.CodecV2
}

func newResponseCodec() responseCodec {
	return responseCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

// Unmarshal implements encoding.CodecV2.
func (c responseCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*processResponse)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	// The buffers are recycled once Unmarshal returns: copy them once.
	buf := data.Materialize()
	if err := r.decode(buf); err != nil {
		return fmt.Errorf("decode a ProcessResponse: %w", err)
	}
	return nil
}

func (r *processResponse) decode(b []byte) error {
	*r = processResponse{}
	return wirecodec.Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil // not ours: unknown fields are skipped
		}
		switch num {
		case 1:
			if r.result == nil {
				r.result = &decodedResult{}
			}
			return r.result.decode(v)
		case 2:
			c := &streamv1.Credit{}
			if err := gproto.Unmarshal(v, c); err != nil {
				return err
			}
			r.credit = c.GetBatches()
		case 3:
			r.drain = &streamv1.Drain{}
			return gproto.Unmarshal(v, r.drain)
		}
		return nil
	})
}

func (r *decodedResult) decode(b []byte) error {
	// Count the outputs first, to allocate their events in one slab.
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
	slab := make([]flow.Event, n)
	r.outputs = make([]decodedOutput, 0, n)
	return wirecodec.Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			r.seq = x
		case num == 2 && typ == protowire.BytesType:
			o, err := decodeOutput(v, &slab[len(r.outputs)])
			if err != nil {
				return err
			}
			r.outputs = append(r.outputs, o)
		case num == 3 && typ == protowire.BytesType:
			f := &streamv1.Failure{}
			if err := gproto.Unmarshal(v, f); err != nil {
				return err
			}
			r.failures = append(r.failures, f)
		}
		return nil
	})
}

// decodeOutput decodes an Output whose event, if any, goes into e.
func decodeOutput(b []byte, e *flow.Event) (decodedOutput, error) {
	var o decodedOutput
	err := wirecodec.Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			o.index = uint32(x)
		case num == 2 && typ == protowire.BytesType:
			*e = flow.Event{} // a repeated field: the last one wins
			if err := decodeEvent(v, e); err != nil {
				return err
			}
			o.event = e
		}
		return nil
	})
	return o, err
}

// decodeEvent decodes an Event into e, pointing into b.
func decodeEvent(b []byte, e *flow.Event) error {
	var w wirecodec.Event
	if err := wirecodec.DecodeEvent(b, &w); err != nil {
		return err
	}
	e.ID, e.Source, e.Type, e.Subject, e.DataContentType = w.ID, w.Source, w.Type, w.Subject, w.DataContentType
	e.Time, e.Data, e.Metadata = w.Time, w.Data, w.Metadata
	return nil
}
