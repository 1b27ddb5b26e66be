// Package expr compiles and evaluates the CEL expressions of flowctl's
// built-in components (filter, map, route, dedupe, generate).
//
// An expression is compiled once, when the pipeline file is validated, and
// evaluated for every event, so evaluation is built for the hot path: the
// event itself is the CEL activation (no map per evaluation), and the parsed
// JSON payload is read by CEL's native map fast path.
//
// Variables seen by an expression over an event:
//
//	data      dyn                  the payload (JSON: int, double, string, bool, null, list, map)
//	id        string               the event id
//	type      string               the event type
//	source    string               the component that produced it
//	subject   string               the CloudEvents subject
//	time      timestamp            the event time
//	metadata  map(string, string)  the string extension attributes
//
// JSON integers are CEL int (so `data.id % 2` works) and other numbers
// double. A missing field is an evaluation error: guard it with has() or use
// an optional (`data.?x.orValue(0)`).
//
// It imports package flow (for Event and FieldError) and cel-go, and no
// other flowctl package; the components use it, and spec reaches it only
// through the components' Validate hooks.
package expr
