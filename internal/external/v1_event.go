package external

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/wire/flowctlv1"
)

// StellarCursorKey is the metadata key that carries a flowctl.v1 Event's
// stellar_cursor inside flowctl, as "LEDGER:INDEX" (for example
// "51234567:12"). Converting back to flowctl.v1 turns a well-formed value
// into the stellar_cursor field again, so the cursor round-trips.
const StellarCursorKey = "stellar_cursor"

// eventToV1 converts an event to a flowctl.v1 Event (DESIGN.md, Events):
// id↔id, type↔type, data↔payload, time↔timestamp,
// source↔source_component_id, datacontenttype↔content_type,
// metadata↔metadata, metadata["stellar_cursor"]↔stellar_cursor.
//
// flowctl.v1 has no subject: an event's Subject does not cross a
// flowctl.v1 hop. A stellar_cursor metadata value that is not
// "LEDGER:INDEX" stays in metadata as it is.
func eventToV1(e *flow.Event) *flowctlv1.Event {
	w := &flowctlv1.Event{
		Id:                e.ID,
		Type:              e.Type,
		Payload:           e.Data,
		Metadata:          e.Metadata,
		SourceComponentId: e.Source,
		ContentType:       e.DataContentType,
	}
	if !e.Time.IsZero() {
		w.Timestamp = timestamppb.New(e.Time)
	}
	if v, ok := e.Metadata[StellarCursorKey]; ok {
		if c, err := parseStellarCursor(v); err == nil {
			w.StellarCursor = c
			// The event's metadata is immutable: copy it without the key.
			md := maps.Clone(e.Metadata)
			delete(md, StellarCursorKey)
			if len(md) == 0 {
				md = nil
			}
			w.Metadata = md
		}
	}
	return w
}

// eventFromV1 converts a flowctl.v1 Event; see eventToV1 for the mapping.
// The result takes over w's payload and metadata.
func eventFromV1(w *flowctlv1.Event) *flow.Event {
	e := &flow.Event{
		ID:              w.GetId(),
		Type:            w.GetType(),
		Data:            w.GetPayload(),
		Metadata:        w.GetMetadata(),
		Source:          w.GetSourceComponentId(),
		DataContentType: w.GetContentType(),
	}
	if t := w.GetTimestamp(); t != nil {
		e.Time = t.AsTime()
	}
	if c := w.GetStellarCursor(); c != nil {
		md := make(map[string]string, len(e.Metadata)+1)
		maps.Copy(md, e.Metadata)
		md[StellarCursorKey] = formatStellarCursor(c)
		e.Metadata = md
	}
	return e
}

// formatStellarCursor writes c as "LEDGER:INDEX".
func formatStellarCursor(c *flowctlv1.StellarCursor) string {
	return strconv.FormatUint(c.GetLedgerSequence(), 10) + ":" + strconv.FormatUint(uint64(c.GetIndexInLedger()), 10)
}

// parseStellarCursor reads "LEDGER:INDEX".
func parseStellarCursor(s string) (*flowctlv1.StellarCursor, error) {
	ledger, index, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("stellar cursor %q: want LEDGER:INDEX", s)
	}
	l, err := strconv.ParseUint(ledger, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("stellar cursor %q: ledger: %w", s, err)
	}
	i, err := strconv.ParseUint(index, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("stellar cursor %q: index: %w", s, err)
	}
	return &flowctlv1.StellarCursor{LedgerSequence: l, IndexInLedger: uint32(i)}, nil
}
