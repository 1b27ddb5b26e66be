package external

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// eventFromStream converts a native wire event. The result takes over w's
// Data and Metadata: w must not be used afterwards.
func eventFromStream(w *streamv1.Event) *flow.Event {
	e := &flow.Event{}
	eventFromStreamInto(e, w)
	return e
}

// eventFromStreamInto is eventFromStream into a zero event.
func eventFromStreamInto(e *flow.Event, w *streamv1.Event) {
	e.ID, e.Source, e.Type, e.Subject = w.GetId(), w.GetSource(), w.GetType(), w.GetSubject()
	e.DataContentType, e.Data, e.Metadata = w.GetDatacontenttype(), w.GetData(), w.GetMetadata()
	if t := w.GetTime(); t != nil {
		e.Time = t.AsTime()
	}
}

// eventsToStream converts a batch to wire events, allocated together in
// one slab (one allocation per batch instead of one per event). The wire
// events share Data and Metadata with the events (both are immutable once
// emitted; marshalling only reads them).
func eventsToStream(batch []*flow.Event) []*streamv1.Event {
	out := make([]*streamv1.Event, len(batch))
	slab := make([]streamv1.Event, len(batch))
	for i, e := range batch {
		w := &slab[i]
		w.Id, w.Source, w.Type, w.Subject = e.ID, e.Source, e.Type, e.Subject
		w.Datacontenttype, w.Data, w.Metadata = e.DataContentType, e.Data, e.Metadata
		if !e.Time.IsZero() {
			w.Time = timestamppb.New(e.Time)
		}
		out[i] = w
	}
	return out
}

// EventFromStream converts a native wire event for other hops of the same
// protocol (flowctl node); it takes over w's Data and Metadata.
func EventFromStream(w *streamv1.Event) *flow.Event { return eventFromStream(w) }

// EventsToStream converts a batch to wire events for other hops of the
// same protocol (flowctl node); they share Data and Metadata with batch.
func EventsToStream(batch []*flow.Event) []*streamv1.Event { return eventsToStream(batch) }
