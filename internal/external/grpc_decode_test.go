package external

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
	"github.com/flowctl/flowctl/pkg/wire/wirecodec"
)

// TestResponseCodec decodes ProcessResponses marshalled by the generated
// code and checks the result against the generated decoding.
func TestResponseCodec(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	full := &streamv1.Event{
		Id: "e1", Source: "src", Type: "t", Subject: "s", Datacontenttype: "application/json",
		Time: timestamppb.New(when), Data: []byte(`{"a":1}`), Metadata: map[string]string{"k": "v", "x": ""},
	}
	cases := []struct {
		name string
		msg  *streamv1.ProcessResponse
	}{
		{"empty", &streamv1.ProcessResponse{}},
		{"credit only", &streamv1.ProcessResponse{Credit: &streamv1.Credit{Batches: 3}}},
		{"drain", &streamv1.ProcessResponse{Drain: &streamv1.Drain{Reason: "stopping"}}},
		{"empty result", &streamv1.ProcessResponse{Result: &streamv1.Result{Seq: 9}, Credit: &streamv1.Credit{Batches: 1}}},
		{"outputs and failures", &streamv1.ProcessResponse{Result: &streamv1.Result{
			Seq: 1 << 40,
			Outputs: []*streamv1.Output{
				{InputIndex: 0, Event: full},
				{InputIndex: 0, Event: &streamv1.Event{Id: "e2", Data: []byte("x")}},
				{InputIndex: 2, Event: &streamv1.Event{Id: "ünï", Time: timestamppb.New(time.Unix(-5, 7))}},
				{InputIndex: 3},
			},
			Failures: []*streamv1.Failure{{Index: 1, Error: "boom", Permanent: true}},
		}}},
	}
	codec := newResponseCodec()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := proto.Marshal(c.msg)
			if err != nil {
				t.Fatal(err)
			}
			// An unknown field at the end must be skipped.
			b = protowire.AppendTag(b, 15, protowire.BytesType)
			b = protowire.AppendBytes(b, []byte("future"))
			var got processResponse
			if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got); err != nil {
				t.Fatal(err)
			}
			if got.credit != c.msg.GetCredit().GetBatches() || !proto.Equal(got.drain, c.msg.GetDrain()) {
				t.Fatalf("credit %d drain %v, want %d %v", got.credit, got.drain, c.msg.GetCredit().GetBatches(), c.msg.GetDrain())
			}
			r := c.msg.GetResult()
			if (got.result == nil) != (r == nil) {
				t.Fatalf("result %v, want %v", got.result, r)
			}
			if r == nil {
				return
			}
			if got.result.seq != r.GetSeq() || len(got.result.outputs) != len(r.GetOutputs()) || len(got.result.failures) != len(r.GetFailures()) {
				t.Fatalf("got seq %d, %d outputs, %d failures; want %d, %d, %d", got.result.seq,
					len(got.result.outputs), len(got.result.failures), r.GetSeq(), len(r.GetOutputs()), len(r.GetFailures()))
			}
			for i, f := range r.GetFailures() {
				if !proto.Equal(got.result.failures[i], f) {
					t.Errorf("failure %d = %v, want %v", i, got.result.failures[i], f)
				}
			}
			for i, o := range r.GetOutputs() {
				g := got.result.outputs[i]
				if g.index != o.GetInputIndex() {
					t.Errorf("output %d: index %d, want %d", i, g.index, o.GetInputIndex())
				}
				var want *flow.Event
				if o.GetEvent() != nil {
					want = eventFromStream(proto.Clone(o.GetEvent()).(*streamv1.Event))
				}
				if !reflect.DeepEqual(g.event, want) {
					t.Errorf("output %d: event %+v, want %+v", i, g.event, want)
				}
			}
		})
	}
}

func TestResponseCodecMalformed(t *testing.T) {
	good, _ := proto.Marshal(&streamv1.ProcessResponse{Result: &streamv1.Result{Seq: 1, Outputs: []*streamv1.Output{{Event: &streamv1.Event{Id: "abc"}}}}})
	badUTF8 := protowire.AppendTag(nil, 1, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, []byte{0xff})
	badUTF8 = wrap(2, wrap(2, badUTF8))
	badUTF8 = wrap(1, badUTF8)
	cases := map[string][]byte{
		"truncated":     good[:len(good)-1],
		"bad tag":       {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"invalid UTF-8": badUTF8,
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var got processResponse
			err := newResponseCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got)
			if err == nil || !errors.Is(err, wirecodec.ErrMalformed) {
				t.Fatalf("err = %v, want a malformed-message error", err)
			}
			// The generated code refuses it too.
			if proto.Unmarshal(b, &streamv1.ProcessResponse{}) == nil {
				t.Fatal("the generated code accepts it")
			}
		})
	}
}

// wrap returns b as the bytes field num of a message.
func wrap(num protowire.Number, b []byte) []byte {
	out := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(out, b)
}

func BenchmarkResponseCodec(b *testing.B) {
	r := &streamv1.Result{Seq: 1}
	for i := range 256 {
		r.Outputs = append(r.Outputs, &streamv1.Output{InputIndex: uint32(i), Event: &streamv1.Event{
			Id: "ledger-123456", Source: "ledger", Type: "flowctl.line", Datacontenttype: "application/json",
			Data: []byte(`{"id":123456,"ts":"2026-01-01T00:00:00Z","account":"acct-456","amount":7919,"kind":"PAYMENT","amount_usd":79.19}`),
		}})
	}
	msg, _ := proto.Marshal(&streamv1.ProcessResponse{Result: r, Credit: &streamv1.Credit{Batches: 1}})
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		codec := newResponseCodec()
		for range b.N {
			var m processResponse
			if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var m streamv1.ProcessResponse
			if err := proto.Unmarshal(msg, &m); err != nil {
				b.Fatal(err)
			}
			slab := make([]flow.Event, len(m.GetResult().GetOutputs()))
			for i, o := range m.GetResult().GetOutputs() {
				eventFromStreamInto(&slab[i], o.GetEvent())
			}
		}
	})
}

// TestResponseCodecRepeatedEvent: an Output whose Event field comes twice
// (no encoder writes that) keeps the last one whole, nothing of the first.
func TestResponseCodecRepeatedEvent(t *testing.T) {
	first, _ := proto.Marshal(&streamv1.Event{Id: "a", Subject: "s", Data: []byte(`{"x":1}`), Metadata: map[string]string{"k": "v"}})
	second, _ := proto.Marshal(&streamv1.Event{Id: "b", Type: "t"})
	out := append(wrap(2, first), wrap(2, second)...)
	msg := wrap(1, append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7), wrap(2, out)...))
	var got processResponse
	if err := newResponseCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, &got); err != nil {
		t.Fatal(err)
	}
	if got.result == nil || len(got.result.outputs) != 1 {
		t.Fatalf("result %+v, want one output", got.result)
	}
	want := &flow.Event{ID: "b", Type: "t"}
	if e := got.result.outputs[0].event; !reflect.DeepEqual(e, want) {
		t.Fatalf("event %+v, want %+v", e, want)
	}
}
