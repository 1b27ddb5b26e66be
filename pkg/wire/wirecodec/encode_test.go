package wirecodec

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// toGenerated is e as the generated type, the reference encoding.
func toGenerated(e *Event) *streamv1.Event {
	w := &streamv1.Event{
		Id: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject, Datacontenttype: e.DataContentType,
		Data: e.Data, Metadata: e.Metadata,
	}
	if !e.Time.IsZero() {
		w.Time = timestamppb.New(e.Time)
	}
	return w
}

// checkAppendEvent compares AppendEvent with the generated encoding of the
// same event: the same bytes when the order of map entries cannot differ,
// else the same message once decoded.
func checkAppendEvent(t *testing.T, e *Event) {
	t.Helper()
	prefix := []byte("prefix")
	got, err := AppendEvent(append([]byte(nil), prefix...), e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatal("AppendEvent overwrote what was in the buffer")
	}
	got = got[len(prefix):]
	if n := EventSize(e); n != len(got) {
		t.Fatalf("EventSize %d, AppendEvent wrote %d bytes", n, len(got))
	}
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(toGenerated(e))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Metadata) <= 1 && !bytes.Equal(got, want) {
		t.Fatalf("AppendEvent wrote\n%x\nthe generated code\n%x", got, want)
	}
	var back streamv1.Event
	if err := proto.Unmarshal(got, &back); err != nil {
		t.Fatalf("the generated code cannot read what AppendEvent wrote: %v", err)
	}
	if !proto.Equal(&back, toGenerated(e)) {
		t.Fatalf("read back %v, want %v", &back, toGenerated(e))
	}
}

func TestAppendEvent(t *testing.T) {
	cases := []struct {
		name string
		e    Event
	}{
		{"zero", Event{}},
		{"all attributes", Event{
			ID: "e1", Source: "src", Type: "t", Subject: "s", DataContentType: "application/json",
			Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Data: []byte(`{"a":1}`),
			Metadata: map[string]string{"k": "v"},
		}},
		{"several metadata entries, empty key and value", Event{ID: "m", Metadata: map[string]string{"k": "v", "": "empty key", "x": ""}}},
		{"time before 1970", Event{ID: "ünï", Time: time.Unix(-5, 7), Data: []byte{0, 1, 2}}},
		{"time at the epoch", Event{ID: "e4", Time: time.Unix(0, 0)}},
		{"local time zone", Event{ID: "tz", Time: time.Date(2026, 6, 1, 12, 0, 0, 999999999, time.FixedZone("x", 3600))}},
		{"large data", Event{ID: "big", Data: bytes.Repeat([]byte("x"), 70000)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkAppendEvent(t, &c.e) })
	}
}

func TestAppendEventInvalid(t *testing.T) {
	for name, e := range map[string]Event{
		"id":             {ID: "\xff"},
		"content type":   {DataContentType: "a\xc3"},
		"metadata key":   {Metadata: map[string]string{"\xff": "v"}},
		"metadata value": {Metadata: map[string]string{"k": "\xff"}},
	} {
		if _, err := AppendEvent(nil, &e); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s not UTF-8: err %v, want ErrMalformed", name, err)
		}
		if _, err := proto.Marshal(toGenerated(&e)); err == nil {
			t.Errorf("%s not UTF-8: the generated code encodes it", name)
		}
	}
}

func TestBatchSize(t *testing.T) {
	events := []*Event{{ID: "a"}, {}, {ID: "c", Data: []byte("{}")}}
	for _, redelivered := range []bool{false, true} {
		gen := &streamv1.Batch{Seq: 300, Redelivered: redelivered}
		var sizes []int
		for _, e := range events {
			gen.Events = append(gen.Events, toGenerated(e))
			sizes = append(sizes, EventSize(e))
		}
		if got, want := BatchSize(300, redelivered, sizes), proto.Size(gen); got != want {
			t.Errorf("redelivered %v: BatchSize %d, generated %d", redelivered, got, want)
		}
	}
}

// FuzzAppendEvent checks AppendEvent against the generated encoding on
// arbitrary attributes.
func FuzzAppendEvent(f *testing.F) {
	f.Add("e1", "src", "t", "s", "application/json", int64(1767225600), int64(5), []byte(`{"a":1}`), "k", "v")
	f.Add("", "", "", "", "", int64(0), int64(0), []byte(nil), "", "")
	f.Add("ünï", "", "", "", "", int64(-5), int64(999999999), []byte{0}, "", "x")
	f.Fuzz(func(t *testing.T, id, source, typ, subject, ct string, secs, nanos int64, data []byte, k, v string) {
		e := Event{ID: id, Source: source, Type: typ, Subject: subject, DataContentType: ct, Data: data}
		if secs != 0 || nanos != 0 {
			e.Time = time.Unix(secs, nanos%1e9)
		}
		if k != "" || v != "" {
			e.Metadata = map[string]string{k: v}
		}
		_, err := AppendEvent(nil, &e)
		_, genErr := proto.Marshal(toGenerated(&e))
		if (err != nil) != (genErr != nil) {
			t.Fatalf("AppendEvent error %v, generated code error %v", err, genErr)
		}
		if err == nil {
			checkAppendEvent(t, &e)
		}
	})
}
