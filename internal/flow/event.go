package flow

import (
	"sync"
	"time"
)

// Event is one event flowing through a pipeline. Attributes follow
// CloudEvents names. An Event is immutable once emitted: a processor that
// changes one makes a new one (see With*). Data keeps the raw bytes as they
// arrived; Value parses them at most once, safely from several goroutines.
type Event struct {
	ID              string
	Source          string
	Type            string
	Subject         string
	DataContentType string
	Time            time.Time
	// Data is the payload, JSON unless DataContentType says otherwise.
	Data []byte
	// Metadata holds string extension attributes.
	Metadata map[string]string

	once   sync.Once
	value  any
	valErr error
}

// Value returns the parsed JSON payload (objects as map[string]any, integers
// as int64, other numbers as float64). It parses at most once per event and
// is safe for concurrent use. The result must not be modified.
func (e *Event) Value() (any, error) {
	e.once.Do(func() { e.value, e.valErr = ParseJSON(e.Data) })
	return e.value, e.valErr
}

// WithData returns a copy of e carrying data as its payload. The copy's
// lazy view starts empty.
func (e *Event) WithData(data []byte) *Event {
	return &Event{
		ID: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject,
		DataContentType: e.DataContentType, Time: e.Time, Metadata: e.Metadata,
		Data: data,
	}
}

// WithType returns a copy of e with type t, keeping the parsed view if one
// exists.
func (e *Event) WithType(t string) *Event {
	c := e.WithData(e.Data)
	c.Type = t
	return c
}
