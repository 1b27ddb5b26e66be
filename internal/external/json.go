package external

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// wireEvent is an event as the stdio and http protocols write it: the
// CloudEvents attributes, data inline when it is JSON, else base64 in
// data_base64. Every field may be left out of an output event: it then
// takes the value of the input event it answers.
type wireEvent struct {
	ID              *string           `json:"id,omitempty"`
	Source          *string           `json:"source,omitempty"`
	Type            *string           `json:"type,omitempty"`
	Subject         *string           `json:"subject,omitempty"`
	DataContentType *string           `json:"datacontenttype,omitempty"`
	Time            *time.Time        `json:"time,omitempty"`
	Data            json.RawMessage   `json:"data,omitempty"`
	DataBase64      *string           `json:"data_base64,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// appendEvent appends ev as a JSON object to b. It is hand-written so that
// the hot path does not reflect.
func appendEvent(b []byte, ev *flow.Event) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, ev.ID)
	if ev.Source != "" {
		b = append(b, `,"source":`...)
		b = appendString(b, ev.Source)
	}
	b = append(b, `,"type":`...)
	b = appendString(b, ev.Type)
	if ev.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendString(b, ev.Subject)
	}
	if ev.DataContentType != "" {
		b = append(b, `,"datacontenttype":`...)
		b = appendString(b, ev.DataContentType)
	}
	if !ev.Time.IsZero() {
		b = append(b, `,"time":"`...)
		b = ev.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if len(ev.Metadata) > 0 {
		b = append(b, `,"metadata":{`...)
		first := true
		for k, v := range ev.Metadata {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, v)
		}
		b = append(b, '}')
	}
	switch {
	case len(ev.Data) == 0:
	case ev.StrictJSON() || json.Valid(ev.Data):
		// StrictJSON is checked at most once per event and is usually
		// known already (a strict source, a filter that read the data);
		// json.Valid for what it refuses and encoding/json accepts.
		b = append(b, `,"data":`...)
		b = appendCompact(b, ev.Data)
	default:
		b = append(b, `,"data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, ev.Data)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendCompact appends valid JSON without its newlines (one line per
// message on stdio).
func appendCompact(b, data []byte) []byte {
	for _, c := range data {
		if c == '\n' || c == '\r' {
			goto compact
		}
	}
	return append(b, data...)
compact:
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, data); err != nil {
		return append(b, "null"...)
	}
	return buf.Bytes()
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			mb, _ := json.Marshal(s)
			return append(b, mb...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// toEvent makes the output event w describes, inheriting what w leaves out
// from in (the input it answers).
func (w *wireEvent) toEvent(in *flow.Event) (*flow.Event, error) {
	var data []byte
	switch {
	case w.DataBase64 != nil:
		d, err := base64.StdEncoding.DecodeString(*w.DataBase64)
		if err != nil {
			return nil, fmt.Errorf("data_base64: %w", err)
		}
		data = d
	case w.Data != nil:
		data = []byte(w.Data) // RawMessage is a copy owned by us
	default:
		data = in.Data
	}
	ev := in.WithData(data)
	if w.ID != nil {
		ev.ID = *w.ID
	}
	if w.Source != nil {
		ev.Source = *w.Source
	}
	if w.Type != nil {
		ev.Type = *w.Type
	}
	if w.Subject != nil {
		ev.Subject = *w.Subject
	}
	if w.DataContentType != nil {
		ev.DataContentType = *w.DataContentType
	}
	if w.Time != nil {
		ev.Time = *w.Time
	}
	if w.Metadata != nil {
		ev.Metadata = w.Metadata
	}
	return ev, nil
}

// appendUint appends n in decimal.
func appendUint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }
