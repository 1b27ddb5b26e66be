package wasmguest

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Event is one event as the host hands it over. Data is the JSON payload
// as raw bytes; the other fields are the CloudEvents attributes. In an
// event a handler returns, an empty attribute (and nil Data) means "the
// same as the input event's".
type Event struct {
	ID       string            `json:"id,omitempty"`
	Type     string            `json:"type,omitempty"`
	Source   string            `json:"source,omitempty"`
	Subject  string            `json:"subject,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Data     json.RawMessage   `json:"data,omitempty"`
}

// Func handles one event: it returns the events it produces (none drops
// the event), or an error, which sends the input event to the pipeline's
// dead-letter output with the error's text as the reason.
type Func func(Event) ([]Event, error)

var handler Func

// Handle sets the function the module runs for every event. Call it from
// an init function: a reactor module (c-shared) never runs main.
func Handle(f Func) { handler = f }

// result is one output line: the events of one input, or its error.
type result struct {
	Events []Event `json:"events"`
	Error  string  `json:"error,omitempty"`
}

// Batch runs the handler over in, a batch in the ABI's input format (one
// JSON event per line), and appends the answer (one JSON result per line,
// in input order) to out. It is what flowctl_process does; exported so
// that a handler can be tested with go test on any platform.
func Batch(in, out []byte) []byte {
	for len(in) > 0 {
		line := in
		if i := bytes.IndexByte(in, '\n'); i >= 0 {
			line, in = in[:i], in[i+1:]
		} else {
			in = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		out = appendResult(out, line)
		out = append(out, '\n')
	}
	return out
}

func appendResult(out, line []byte) []byte {
	var r result
	var ev Event
	var err error
	if !readEvent(line, &ev) {
		ev = Event{} // what readEvent left is not to be merged into
		err = json.Unmarshal(line, &ev)
	}
	if err != nil {
		r.Error = "wasmguest: cannot read the event: " + err.Error()
	} else if handler == nil {
		r.Error = "wasmguest: no handler: call wasmguest.Handle in an init function"
	} else if evs, err := call(ev); err != nil {
		r.Error = err.Error()
	} else {
		r.Events = evs
		if r.Events == nil {
			r.Events = []Event{}
		}
	}
	if fast, ok := appendFastResult(out, &r); ok {
		return fast
	}
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(result{Events: []Event{}, Error: "wasmguest: cannot write the result: " + err.Error()})
	}
	return append(out, b...)
}

// call runs the handler; a panic becomes the event's error, so that one
// bad event does not cost the whole batch a trap.
func call(ev Event) (evs []Event, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return handler(ev)
}
