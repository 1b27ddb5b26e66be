package wirecodec

import (
	"errors"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

type field struct {
	num protowire.Number
	typ protowire.Type
	v   string
	x   uint64
}

func TestFields(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 1<<40)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("abc"))
	b = protowire.AppendTag(b, 3, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 7)
	b = protowire.AppendTag(b, 4, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 8)
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	b = protowire.AppendBytes(b, nil)
	var got []field
	err := Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		got = append(got, field{num, typ, string(v), x})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []field{
		{1, protowire.VarintType, "", 1 << 40},
		{2, protowire.BytesType, "abc", 0},
		{3, protowire.Fixed32Type, "", 0}, // skipped over, reported without a value
		{4, protowire.Fixed64Type, "", 0},
		{5, protowire.BytesType, "", 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fields %+v, want %+v", got, want)
	}

	stop := errors.New("stop")
	calls := 0
	if err := Fields(b, func(protowire.Number, protowire.Type, []byte, uint64) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Fields returned %v after %d calls, want the callback's error after 1", err, calls)
	}

	for name, bad := range map[string][]byte{
		"truncated bytes":  {0x12, 0x05, 'a'},
		"truncated varint": {0x08, 0xff},
		"bad tag":          {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"field number 0":   {0x02, 0x00},
		"bad wire type":    {0x0f},
	} {
		err := Fields(bad, func(protowire.Number, protowire.Type, []byte, uint64) error { return nil })
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestString(t *testing.T) {
	b := []byte("ünï")
	s, err := String(b)
	if err != nil || s != "ünï" {
		t.Fatalf("String = %q, %v", s, err)
	}
	if unsafe.StringData(s) != &b[0] {
		t.Error("String copied its bytes")
	}
	if s, err := String(nil); s != "" || err != nil {
		t.Errorf("String(nil) = %q, %v", s, err)
	}
	if _, err := String([]byte{'a', 0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid UTF-8: err = %v, want ErrMalformed", err)
	}
}

func TestTimestamp(t *testing.T) {
	for _, ts := range []*timestamppb.Timestamp{
		{}, {Seconds: 1767225600, Nanos: 999999999}, {Seconds: -5, Nanos: 7}, {Seconds: -62135596800},
	} {
		b, _ := proto.Marshal(ts)
		secs, nanos, err := Timestamp(b)
		if err != nil || secs != ts.GetSeconds() || nanos != int64(ts.GetNanos()) {
			t.Errorf("%v: got %d %d %v", ts, secs, nanos, err)
		}
	}
	if _, _, err := Timestamp([]byte{0x08}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated: err = %v", err)
	}
}

func TestMapEntry(t *testing.T) {
	ev := &streamv1.Event{Metadata: map[string]string{"k": "v", "": "empty key", "x": ""}}
	b, _ := proto.Marshal(ev)
	m := map[string]string{"old": "kept"}
	err := Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		return MapEntry(v, m)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"old": "kept", "k": "v", "": "empty key", "x": ""}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("map %v, want %v", m, want)
	}
	bad := protowire.AppendTag(nil, 2, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte{0xff})
	if err := MapEntry(bad, map[string]string{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid UTF-8 value: err = %v", err)
	}
}

// TestDecodeEvent decodes Events marshalled by the generated code and
// compares them with the generated decoding.
func TestDecodeEvent(t *testing.T) {
	for i, we := range []*streamv1.Event{
		{
			Id: "e1", Source: "src", Type: "t", Subject: "s", Datacontenttype: "application/json",
			Time: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)), Data: []byte(`{"a":1}`),
			Metadata: map[string]string{"k": "v", "": "empty key", "x": ""},
		},
		{},
		{Id: "ünï", Time: timestamppb.New(time.Unix(-5, 7)), Data: []byte{0, 1, 2}},
		{Id: "e4", Time: timestamppb.New(time.Unix(0, 0))},
	} {
		b, err := proto.Marshal(we)
		if err != nil {
			t.Fatal(err)
		}
		b = protowire.AppendTag(b, 15, protowire.BytesType) // an unknown field
		b = protowire.AppendBytes(b, []byte("future"))
		b = protowire.AppendTag(b, 16, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
		var got Event
		if err := DecodeEvent(b, &got); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want := Event{
			ID: we.GetId(), Source: we.GetSource(), Type: we.GetType(), Subject: we.GetSubject(),
			DataContentType: we.GetDatacontenttype(), Data: we.GetData(), Metadata: we.GetMetadata(),
		}
		if we.GetTime() != nil {
			want.Time = we.GetTime().AsTime()
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d: %+v, want %+v", i, got, want)
		}
		if len(got.Data) > 0 {
			if cap(got.Data) != len(got.Data) {
				t.Errorf("event %d: Data capacity %d, want %d", i, cap(got.Data), len(got.Data))
			}
			if !aliases(b, got.Data) {
				t.Errorf("event %d: Data does not point into the message", i)
			}
		}
	}
	bad := protowire.AppendTag(nil, 1, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte{0xff})
	if err := DecodeEvent(bad, &Event{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid UTF-8 id: err = %v", err)
	}
}

// aliases reports whether sub (not empty) lies within b's memory.
func aliases(b, sub []byte) bool {
	p, start := uintptr(unsafe.Pointer(&sub[0])), uintptr(unsafe.Pointer(&b[0]))
	return p >= start && p+uintptr(len(sub)) <= start+uintptr(len(b))
}

func BenchmarkDecodeEvent(b *testing.B) {
	msg, _ := proto.Marshal(&streamv1.Event{
		Id: "ledger-123456", Source: "ledger", Type: "flowctl.line", Datacontenttype: "application/json",
		Time: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)), Metadata: map[string]string{"k": "v"},
		Data: []byte(`{"id":123456,"ts":"2026-01-01T00:00:00Z","account":"acct-456","amount":7919,"kind":"PAYMENT","amount_usd":79.19}`),
	})
	b.ReportAllocs()
	for range b.N {
		var e Event
		if err := DecodeEvent(msg, &e); err != nil {
			b.Fatal(err)
		}
	}
}
