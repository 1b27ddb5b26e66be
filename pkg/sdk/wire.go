package sdk

import (
	"fmt"
	"unicode/utf8"

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
	b, err := a.marshal()
	if err != nil {
		return nil, fmt.Errorf("encode a ProcessResponse: %w", err)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
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

// Encoding. Sizes are computed first (protobuf prefixes a nested message
// with its length), then the message is appended to one buffer.

func sizeWireString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func appendWireString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendWireVarint(b []byte, num protowire.Number, x uint64) []byte {
	if x == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, x)
}

func sizeWireVarint(num protowire.Number, x uint64) int {
	if x == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(x)
}

// timestamp returns the Timestamp fields of e.Time.
func (e *Event) timestamp() (secs uint64, nanos uint64) {
	return uint64(e.Time.Unix()), uint64(int64(int32(e.Time.Nanosecond())))
}

// wireSize is the size of e as a wire Event.
func (e *Event) wireSize() int {
	n := sizeWireString(1, e.ID) + sizeWireString(2, e.Source) + sizeWireString(3, e.Type) +
		sizeWireString(5, e.Subject) + sizeWireString(6, e.DataContentType)
	if len(e.Data) > 0 {
		n += protowire.SizeTag(7) + protowire.SizeBytes(len(e.Data))
	}
	if !e.Time.IsZero() {
		s, ns := e.timestamp()
		n += protowire.SizeTag(4) + protowire.SizeBytes(sizeWireVarint(1, s)+sizeWireVarint(2, ns))
	}
	for k, v := range e.Metadata {
		n += protowire.SizeTag(8) + protowire.SizeBytes(sizeWireString(1, k)+sizeWireString(2, v))
	}
	return n
}

// appendWire appends e as a wire Event (without tag and length).
func (e *Event) appendWire(b []byte) ([]byte, error) {
	for _, s := range [...]string{e.ID, e.Source, e.Type, e.Subject, e.DataContentType} {
		if !utf8.ValidString(s) {
			return b, fmt.Errorf("event %q: a string attribute is not valid UTF-8", e.ID)
		}
	}
	b = appendWireString(b, 1, e.ID)
	b = appendWireString(b, 2, e.Source)
	b = appendWireString(b, 3, e.Type)
	if !e.Time.IsZero() {
		s, ns := e.timestamp()
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeWireVarint(1, s)+sizeWireVarint(2, ns)))
		b = appendWireVarint(b, 1, s)
		b = appendWireVarint(b, 2, ns)
	}
	b = appendWireString(b, 5, e.Subject)
	b = appendWireString(b, 6, e.DataContentType)
	if len(e.Data) > 0 {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendBytes(b, e.Data)
	}
	for k, v := range e.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return b, fmt.Errorf("event %q: metadata %q is not valid UTF-8", e.ID, k)
		}
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeWireString(1, k)+sizeWireString(2, v)))
		b = appendWireString(b, 1, k)
		b = appendWireString(b, 2, v)
	}
	return b, nil
}

// appendMessage appends m as the bytes field num.
func appendMessage(b []byte, num protowire.Number, m gproto.Message) ([]byte, error) {
	raw, err := gproto.Marshal(m)
	if err != nil {
		return b, err
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, raw), nil
}

func (a *processAnswer) marshal() ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if a.result {
		// Sizes of the events (computed once) and of the Result.
		sizes := make([]int, len(a.outputs))
		outSizes := 0
		for i, o := range a.outputs {
			es := o.event.wireSize()
			sizes[i] = es
			os := sizeWireVarint(1, uint64(o.index)) + protowire.SizeTag(2) + protowire.SizeBytes(es)
			outSizes += protowire.SizeTag(2) + protowire.SizeBytes(os)
		}
		failures := make([][]byte, len(a.failures))
		fsize := 0
		for i, f := range a.failures {
			if failures[i], err = gproto.Marshal(f); err != nil {
				return nil, err
			}
			fsize += protowire.SizeTag(3) + protowire.SizeBytes(len(failures[i]))
		}
		rsize := sizeWireVarint(1, a.seq) + outSizes + fsize
		b = make([]byte, 0, protowire.SizeTag(1)+protowire.SizeBytes(rsize)+32)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(rsize))
		b = appendWireVarint(b, 1, a.seq)
		for i, o := range a.outputs {
			os := sizeWireVarint(1, uint64(o.index)) + protowire.SizeTag(2) + protowire.SizeBytes(sizes[i])
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(os))
			b = appendWireVarint(b, 1, uint64(o.index))
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(sizes[i]))
			if b, err = o.event.appendWire(b); err != nil {
				return nil, err
			}
		}
		for _, f := range failures {
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendBytes(b, f)
		}
	}
	if a.credit != nil {
		if b, err = appendMessage(b, 2, a.credit); err != nil {
			return nil, err
		}
	}
	if a.drain != nil {
		if b, err = appendMessage(b, 3, a.drain); err != nil {
			return nil, err
		}
	}
	return b, nil
}
