package server

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The server starts each pipeline's child with --log-format json, so every
// line the child logs is a slog JSON record: {"time", "level", "msg", attrs…}.
// An external component's own output reaches the child's stderr as a
// record too, with "source": "component" (see cli's componentOutput). The
// store keeps the record's component, level and time as fields and the
// rest as text in slog's text form, so `flowctl logs` reads as before.

// record is one parsed JSON log record.
type record struct {
	time      time.Time
	level     string
	component string
	source    string
	text      string
}

// parseRecord parses a slog JSON record; ok is false for any other line
// (a panic's stack, a table the run printed), which is stored as text.
func parseRecord(line string) (record, bool) {
	var r record
	if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
		return r, false
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return r, false
	}
	type attr struct {
		key string
		val json.RawMessage
	}
	var attrs []attr
	var msg string
	var hasMsg, hasLevel bool
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return r, false
		}
		key, ok := t.(string)
		if !ok {
			return r, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return r, false
		}
		var s string
		isString := json.Unmarshal(raw, &s) == nil
		switch {
		case key == "time" && isString:
			if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
				r.time = tm
				continue
			}
		case key == "level" && isString:
			r.level, hasLevel = strings.ToUpper(s), true
			continue
		case key == "msg" && isString:
			msg, hasMsg = s, true
			continue
		case key == "source" && isString && s == sourceComponent:
			r.source = sourceComponent
			continue
		case key == "component" && isString:
			r.component = s
		}
		attrs = append(attrs, attr{key, raw})
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') || dec.More() {
		return record{}, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return record{}, false
	}
	if !hasMsg || !hasLevel {
		return record{}, false
	}
	if r.source == sourceComponent {
		// The component's own line, as it wrote it.
		r.text = msg
		return r, true
	}
	r.source = sourceFlowctl
	var b strings.Builder
	b.WriteString("level=")
	b.WriteString(r.level)
	b.WriteString(" msg=")
	b.WriteString(textValue(msg))
	for _, a := range attrs {
		b.WriteByte(' ')
		b.WriteString(a.key)
		b.WriteByte('=')
		var s string
		if json.Unmarshal(a.val, &s) == nil {
			b.WriteString(textValue(s))
		} else {
			var compact bytes.Buffer
			if json.Compact(&compact, a.val) == nil {
				b.Write(compact.Bytes())
			} else {
				b.Write(a.val)
			}
		}
	}
	r.text = b.String()
	return r, true
}

// textValue quotes s the way slog's text handler does: only when it is
// empty or holds a space, a quote, '=' or a non-printing character.
func textValue(s string) string {
	if s == "" {
		return `""`
	}
	for _, c := range s {
		if c == '=' || c == '"' || unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return strconv.Quote(s)
		}
	}
	return s
}
