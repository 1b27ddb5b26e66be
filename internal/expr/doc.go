// Package expr compiles and evaluates the CEL expressions of flowctl's
// built-in components (filter, map, route, dedupe, generate).
//
// An expression is compiled once, when the pipeline file is validated, and
// evaluated for every event, so evaluation is built for the hot path: the
// event itself is the CEL activation (no map per evaluation), and the parsed
// JSON payload is read by CEL's native map fast path.
//
// Most expressions do not get that far: Compile turns the frequent shapes
// (field reads, comparisons, `in` constant lists, logic, arithmetic,
// conversions, string functions, has) into Go closures that read the
// fields they need straight from the event's raw JSON bytes, so a filter
// such as `data.amount >= 5000` touches one field and parses nothing.
// Those closures answer only when nothing goes wrong; any error, and every
// other shape (the whole `data`, lists, maps, comprehensions, metadata,
// time), goes to cel-go over the parsed payload, so results and errors
// are the same either way (fast.go; FuzzCompiledMatchesCEL checks it).
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
