package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// DeadLetterType is the type of the events the dead-letter sink receives.
const DeadLetterType = "flowctl.dead_letter"

// DeadLetter is the payload of a dead-letter event: where and why an event
// failed, with the original inline. The engine writes it; `flowctl dlq`
// reads it back and replays the original (Original).
type DeadLetter struct {
	Component string          `json:"component"`
	Error     string          `json:"error"`
	Attempts  int             `json:"attempts"`
	Event     DeadLetterEvent `json:"event"`
}

// DeadLetterEvent is the original event of a dead letter. Data holds the
// payload as JSON when it is a JSON object, array, number or boolean, and
// as a JSON string of its bytes otherwise (text, malformed JSON, and a
// payload that is itself a JSON string or null), so that Original gives
// back the same bytes: a string always stands for raw bytes.
type DeadLetterEvent struct {
	ID              string            `json:"id"`
	Type            string            `json:"type"`
	Source          string            `json:"source"`
	Subject         string            `json:"subject,omitempty"`
	DataContentType string            `json:"datacontenttype,omitempty"`
	Time            string            `json:"time,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Data            json.RawMessage   `json:"data"`
	// DataBase64 holds a payload that is not even UTF-8 (a line with
	// invalid UTF-8), byte for byte; Data is then null.
	DataBase64 []byte `json:"data_base64,omitempty"`
}

// NewDeadLetter describes ev, which component failed after attempts with
// err.
func NewDeadLetter(component string, err error, attempts int, ev *Event) DeadLetter {
	d := DeadLetter{
		Component: component, Error: err.Error(), Attempts: attempts,
		Event: DeadLetterEvent{
			ID: ev.ID, Type: ev.Type, Source: ev.Source, Subject: ev.Subject,
			DataContentType: ev.DataContentType, Metadata: ev.Metadata,
		},
	}
	if !ev.Time.IsZero() {
		d.Event.Time = ev.Time.Format(time.RFC3339Nano)
	}
	if len(ev.Data) > 0 && ValidateJSON(ev.Data) != nil && !utf8.Valid(ev.Data) {
		d.Event.Data, d.Event.DataBase64 = json.RawMessage("null"), ev.Data
		return d
	}
	d.Event.Data = deadLetterData(ev.Data)
	return d
}

// deadLetterData encodes a payload for DeadLetterEvent.Data.
func deadLetterData(data []byte) json.RawMessage {
	if len(data) == 0 {
		return json.RawMessage("null")
	}
	// Strict JSON (ValidateJSON) only, so that the record itself stays
	// strict JSON: a malformed line is kept as a string of its bytes.
	if t := bytes.TrimLeft(data, " \t\r\n"); ValidateJSON(data) == nil && t[0] != '"' && t[0] != 'n' {
		return json.RawMessage(data)
	}
	s, _ := json.Marshal(string(data))
	return s
}

// Original rebuilds the event that failed: id, type, source, subject,
// datacontenttype, time, metadata and data as they were.
func (d DeadLetter) Original() (*Event, error) {
	e := d.Event
	ev := &Event{ID: e.ID, Type: e.Type, Source: e.Source, Subject: e.Subject,
		DataContentType: e.DataContentType, Metadata: e.Metadata}
	if e.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			return nil, fmt.Errorf("dead letter of event %q: time %q: %w", e.ID, e.Time, err)
		}
		ev.Time = t
	}
	raw := bytes.TrimSpace(e.Data)
	switch {
	case e.DataBase64 != nil:
		ev.Data = bytes.Clone(e.DataBase64)
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("dead letter of event %q: data: %w", e.ID, err)
		}
		ev.Data = []byte(s)
	default:
		ev.Data = bytes.Clone(raw)
	}
	return ev, nil
}

// ErrNotDeadLetter means a line holds no dead letter.
var ErrNotDeadLetter = errors.New("not a dead letter")

// ParseDeadLetter reads one line of a dead-letter file, written either as
// the event's data (a file sink's default) or as the whole CloudEvent
// (format: envelope); in the latter, extension attributes of the envelope
// fill in metadata the record does not carry.
func ParseDeadLetter(line []byte) (DeadLetter, error) {
	var probe struct {
		Type      string          `json:"type"`
		Data      json.RawMessage `json:"data"`
		Component *string         `json:"component"`
	}
	if err := json.Unmarshal(line, &probe); err != nil {
		return DeadLetter{}, fmt.Errorf("%w: %v", ErrNotDeadLetter, err)
	}
	body := line
	if probe.Component == nil && probe.Type == DeadLetterType && len(probe.Data) > 0 {
		body = probe.Data
	}
	var d DeadLetter
	if err := json.Unmarshal(body, &d); err != nil {
		return DeadLetter{}, fmt.Errorf("%w: %v", ErrNotDeadLetter, err)
	}
	if d.Component == "" {
		return DeadLetter{}, fmt.Errorf("%w: it names no component", ErrNotDeadLetter)
	}
	if d.Event.Metadata == nil && len(body) != len(line) {
		d.Event.Metadata = envelopeExtensions(line)
	}
	return d, nil
}

// envelopeExtensions returns the string attributes of a CloudEvents JSON
// envelope that are not core attributes (flowctl writes metadata as
// those).
func envelopeExtensions(line []byte) map[string]string {
	var m map[string]json.RawMessage
	if json.Unmarshal(line, &m) != nil {
		return nil
	}
	var out map[string]string
	for k, v := range m {
		switch k {
		case "specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data", "data_base64":
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = s
	}
	return out
}
