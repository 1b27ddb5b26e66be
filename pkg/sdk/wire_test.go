package sdk

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

var wireEvents = []*streamv1.Event{
	{
		Id: "e1", Source: "src", Type: "t", Subject: "s", Datacontenttype: "application/json",
		Time: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)), Data: []byte(`{"a":1}`),
		Metadata: map[string]string{"k": "v", "": "empty key", "x": ""},
	},
	{},
	{Id: "ünï", Time: timestamppb.New(time.Unix(-5, 7)), Data: []byte{0, 1, 2}},
	{Id: "e4", Time: timestamppb.New(time.Unix(0, 0))},
}

// TestWireCodecRequest decodes ProcessRequests marshalled by the generated
// code and compares with EventFromWire.
func TestWireCodecRequest(t *testing.T) {
	cases := []struct {
		name string
		msg  *streamv1.ProcessRequest
	}{
		{"no batch", &streamv1.ProcessRequest{}},
		{"empty batch", &streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: 3}}},
		{"events", &streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: 1 << 40, Redelivered: true, Events: wireEvents}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := proto.Marshal(c.msg)
			if err != nil {
				t.Fatal(err)
			}
			b = protowire.AppendTag(b, 9, protowire.BytesType) // an unknown field
			b = protowire.AppendBytes(b, []byte("future"))
			var got processRequest
			if err := newWireCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got); err != nil {
				t.Fatal(err)
			}
			want := c.msg.GetBatch()
			if (got.batch == nil) != (want == nil) {
				t.Fatalf("batch %v, want %v", got.batch, want)
			}
			if want == nil {
				return
			}
			if got.batch.seq != want.GetSeq() || got.batch.redelivered != want.GetRedelivered() || got.batch.count() != len(want.GetEvents()) {
				t.Fatalf("got seq %d redelivered %v %d events, want %d %v %d", got.batch.seq, got.batch.redelivered, got.batch.count(),
					want.GetSeq(), want.GetRedelivered(), len(want.GetEvents()))
			}
			for i, we := range want.GetEvents() {
				w := EventFromWire(proto.Clone(we).(*streamv1.Event))
				if !reflect.DeepEqual(&got.batch.events[i], w) {
					t.Errorf("event %d: %+v, want %+v", i, &got.batch.events[i], w)
				}
			}
		})
	}
}

// TestWireCodecAnswer encodes answers and reads them with the generated
// code.
func TestWireCodecAnswer(t *testing.T) {
	var events []*Event
	for _, we := range wireEvents {
		events = append(events, EventFromWire(we))
	}
	cases := []struct {
		name string
		a    processAnswer
		want *streamv1.ProcessResponse
	}{
		{"credit", processAnswer{credit: &streamv1.Credit{Batches: 4}}, &streamv1.ProcessResponse{Credit: &streamv1.Credit{Batches: 4}}},
		{"drain", processAnswer{drain: &streamv1.Drain{Reason: "stop"}}, &streamv1.ProcessResponse{Drain: &streamv1.Drain{Reason: "stop"}}},
		{"empty result", processAnswer{result: true, seq: 7, credit: &streamv1.Credit{Batches: 1}},
			&streamv1.ProcessResponse{Result: &streamv1.Result{Seq: 7}, Credit: &streamv1.Credit{Batches: 1}}},
		{"outputs and failures", processAnswer{
			result: true, seq: 1 << 40,
			outputs:  []answerOutput{{0, events[0]}, {0, events[1]}, {2, events[2]}, {300, events[3]}},
			failures: []*streamv1.Failure{{Index: 1, Error: "boom", Permanent: true}},
		}, &streamv1.ProcessResponse{Result: &streamv1.Result{
			Seq: 1 << 40,
			Outputs: []*streamv1.Output{
				{InputIndex: 0, Event: events[0].ToWire()}, {InputIndex: 0, Event: events[1].ToWire()},
				{InputIndex: 2, Event: events[2].ToWire()}, {InputIndex: 300, Event: events[3].ToWire()},
			},
			Failures: []*streamv1.Failure{{Index: 1, Error: "boom", Permanent: true}},
		}}},
	}
	// More outputs than are sized on the stack, in a buffer from gRPC's pool.
	many := processAnswer{result: true, seq: 5, credit: &streamv1.Credit{Batches: 1}}
	manyWant := &streamv1.ProcessResponse{Result: &streamv1.Result{Seq: 5}, Credit: &streamv1.Credit{Batches: 1}}
	for i := range maxStackOutputs + 44 {
		many.outputs = append(many.outputs, answerOutput{uint32(i), events[0]})
		manyWant.Result.Outputs = append(manyWant.Result.Outputs, &streamv1.Output{InputIndex: uint32(i), Event: events[0].ToWire()})
	}
	cases = append(cases, struct {
		name string
		a    processAnswer
		want *streamv1.ProcessResponse
	}{"many outputs", many, manyWant})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bs, err := newWireCodec().Marshal(&c.a)
			if err != nil {
				t.Fatal(err)
			}
			got := &streamv1.ProcessResponse{}
			if err := proto.Unmarshal(bs.Materialize(), got); err != nil {
				t.Fatal(err)
			}
			bs.Free()
			if !proto.Equal(got, c.want) {
				t.Fatalf("got %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestWireCodecInvalid(t *testing.T) {
	bad := &processAnswer{result: true, seq: 1, outputs: []answerOutput{{0, &Event{ID: "\xff"}}}}
	if _, err := newWireCodec().Marshal(bad); err == nil {
		t.Error("an event id that is not UTF-8 was encoded")
	}
	for name, b := range map[string][]byte{
		"truncated":    {0x0a, 0x05, 0x08},
		"bad varint":   {0x0a, 0x02, 0x08, 0xff},
		"not UTF-8":    {0x0a, 0x05, 0x12, 0x03, 0x0a, 0x01, 0xff},
		"bad wiretype": {0x0f},
	} {
		var r processRequest
		if err := newWireCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &r); err == nil {
			t.Errorf("%s: decoded", name)
		}
		if proto.Unmarshal(b, &streamv1.ProcessRequest{}) == nil {
			t.Errorf("%s: the generated code accepts it", name)
		}
	}
}
