package sdk

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// Event is one event. Attribute names follow CloudEvents. An Event handed
// to a component belongs to it: a processor may change it and return it as
// an output.
type Event struct {
	// ID identifies the event; unique per source.
	ID string
	// Source names what produced the event.
	Source string
	// Type is the event type used for routing.
	Type string
	// Subject is the subject of the event in the context of its source.
	Subject string
	// DataContentType is the media type of Data; empty means JSON.
	DataContentType string
	// Time is when the event happened; zero when unknown.
	Time time.Time
	// Data is the payload, as raw bytes.
	Data []byte
	// Metadata holds string extension attributes.
	Metadata map[string]string
}

// Decode unmarshals the JSON payload into v.
func (e *Event) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode event %q: %w", e.ID, err)
	}
	return nil
}

// SetJSON replaces the payload with v marshalled as JSON.
func (e *Event) SetJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event %q: %w", e.ID, err)
	}
	e.Data = b
	return nil
}

// Clone returns a deep copy of e, for a processor that emits several events
// from one input.
func (e *Event) Clone() *Event {
	c := *e
	c.Data = append([]byte(nil), e.Data...)
	c.Metadata = maps.Clone(e.Metadata)
	return &c
}

// EventFromWire converts a wire event. The result shares nothing mutable
// with w except Data, which the caller must treat as owned by the result.
func EventFromWire(w *streamv1.Event) *Event {
	e := &Event{}
	e.fromWire(w)
	return e
}

// fromWire sets e from w, as EventFromWire does.
func (e *Event) fromWire(w *streamv1.Event) {
	e.ID, e.Source, e.Type, e.Subject = w.GetId(), w.GetSource(), w.GetType(), w.GetSubject()
	e.DataContentType, e.Data, e.Metadata = w.GetDatacontenttype(), w.GetData(), w.GetMetadata()
	if t := w.GetTime(); t != nil {
		e.Time = t.AsTime()
	}
}

// ToWire converts e to the wire event.
func (e *Event) ToWire() *streamv1.Event {
	w := &streamv1.Event{}
	e.intoWire(w)
	return w
}

// intoWire sets every field of w from e, reusing w's timestamp if it has
// one.
func (e *Event) intoWire(w *streamv1.Event) {
	w.Id, w.Source, w.Type, w.Subject = e.ID, e.Source, e.Type, e.Subject
	w.Datacontenttype, w.Data, w.Metadata = e.DataContentType, e.Data, e.Metadata
	switch {
	case e.Time.IsZero():
		w.Time = nil
	case w.Time != nil:
		w.Time.Seconds, w.Time.Nanos = e.Time.Unix(), int32(e.Time.Nanosecond())
	default:
		w.Time = timestamppb.New(e.Time)
	}
}
