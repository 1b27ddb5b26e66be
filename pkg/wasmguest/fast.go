package wasmguest

import (
	"encoding/json"
	"slices"
)

// The hot path of Batch without encoding/json's reflection, which is slow
// in a Go module run by wazero. readEvent takes the common shape of an
// event line (what flowctl writes) and says false for anything else;
// Batch then reads the line with encoding/json, so that its answer, and its
// error text, stay exactly encoding/json's. appendResult likewise writes
// with encoding/json what it cannot write byte for byte the same way.

// readEvent reads one event line into ev; false: leave it to encoding/json.
func readEvent(line []byte, ev *Event) bool {
	s := scanner{b: line}
	s.space()
	if !s.consume('{') {
		return false
	}
	s.space()
	if s.consume('}') {
		return s.end()
	}
	for {
		key, ok := s.plainString()
		if !ok {
			return false
		}
		s.space()
		if !s.consume(':') {
			return false
		}
		s.space()
		switch key {
		case "id":
			ok = s.stringField(&ev.ID)
		case "type":
			ok = s.stringField(&ev.Type)
		case "source":
			ok = s.stringField(&ev.Source)
		case "subject":
			ok = s.stringField(&ev.Subject)
		case "metadata":
			ok = s.metadata(ev)
		case "data":
			start := s.i
			if ok, _ = s.value(0); ok {
				ev.Data = append(json.RawMessage(nil), line[start:s.i]...)
			}
		default:
			// encoding/json matches keys case-insensitively: leave
			// "ID" and the like to it.
			for _, k := range []string{"id", "type", "source", "subject", "metadata", "data"} {
				if len(k) == len(key) && equalFoldASCII(k, key) {
					return false
				}
			}
			ok, _ = s.value(0)
		}
		if !ok {
			return false
		}
		s.space()
		if s.consume('}') {
			return s.end()
		}
		if !s.consume(',') {
			return false
		}
		s.space()
	}
}

func equalFoldASCII(a, b string) bool {
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// plainString reads a string of printable ASCII without escapes (its
// text is its bytes); false for any other string.
func (s *scanner) plainString() (string, bool) {
	if !s.consume('"') {
		return "", false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			str := string(s.b[start:s.i])
			s.i++
			return str, true
		case c < 0x20 || c == '\\' || c >= 0x7F:
			return "", false
		}
	}
	return "", false
}

// stringField reads a plain string or null (which leaves *dst as it is,
// as encoding/json does).
func (s *scanner) stringField(dst *string) bool {
	if s.literal("null") {
		return true
	}
	str, ok := s.plainString()
	*dst = str
	return ok
}

func (s *scanner) metadata(ev *Event) bool {
	if s.literal("null") {
		ev.Metadata = nil
		return true
	}
	if !s.consume('{') {
		return false
	}
	if ev.Metadata == nil {
		ev.Metadata = map[string]string{}
	}
	s.space()
	if s.consume('}') {
		return true
	}
	for {
		k, ok := s.plainString()
		if !ok {
			return false
		}
		s.space()
		if !s.consume(':') {
			return false
		}
		s.space()
		v, ok := s.plainString()
		if !ok {
			return false
		}
		ev.Metadata[k] = v
		s.space()
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return false
		}
		s.space()
	}
}

// value skips one JSON value, checking its syntax. compact says it can be
// copied to an output as encoding/json would write it: no space outside
// strings and no byte that encoding/json escapes (<, >, &, and the first
// byte of U+2028 and U+2029).
func (s *scanner) value(depth int) (ok, compact bool) {
	if depth > 1000 {
		return false, false
	}
	if s.i >= len(s.b) {
		return false, false
	}
	compact = true
	switch c := s.b[s.i]; {
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		s.i++
		if s.skipSpace() {
			compact = false
		}
		if s.consume(closing) {
			return true, compact
		}
		for {
			if c == '{' {
				ok, cm := s.str()
				compact = compact && cm
				if !ok {
					return false, false
				}
				if s.skipSpace() {
					compact = false
				}
				if !s.consume(':') {
					return false, false
				}
				if s.skipSpace() {
					compact = false
				}
			}
			ok, cm := s.value(depth + 1)
			compact = compact && cm
			if !ok {
				return false, false
			}
			if s.skipSpace() {
				compact = false
			}
			if s.consume(closing) {
				return true, compact
			}
			if !s.consume(',') {
				return false, false
			}
			if s.skipSpace() {
				compact = false
			}
		}
	case c == '"':
		return s.str()
	case c == 't':
		return s.literal("true"), true
	case c == 'f':
		return s.literal("false"), true
	case c == 'n':
		return s.literal("null"), true
	default:
		return s.number(), true
	}
}

func (s *scanner) skipSpace() bool {
	start := s.i
	s.space()
	return s.i > start
}

// str skips a string, checking its escapes.
func (s *scanner) str() (ok, compact bool) {
	if !s.consume('"') {
		return false, false
	}
	compact = true
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		switch {
		case c == '"':
			return true, compact
		case c < 0x20:
			return false, false
		case c == '<' || c == '>' || c == '&' || c >= 0x80:
			// encoding/json escapes the first three, and U+2028 and
			// U+2029; any non-ASCII byte takes the careful way.
			compact = false
		case c == '\\':
			if s.i >= len(s.b) {
				return false, false
			}
			e := s.b[s.i]
			s.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(s.b)-s.i < 4 {
					return false, false
				}
				for _, h := range s.b[s.i : s.i+4] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false, false
					}
				}
				s.i += 4
			default:
				return false, false
			}
		}
	}
	return false, false
}

// number skips a number in JSON's grammar.
func (s *scanner) number() bool {
	s.consume('-')
	digits := func() int {
		n := 0
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.consume('0') {
		// no more integer digits
	} else if digits() == 0 {
		return false
	}
	if s.consume('.') && digits() == 0 {
		return false
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if !s.consume('+') {
			s.consume('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// appendPlainString appends str quoted when encoding/json would write it
// byte for byte (printable ASCII, none of " \ < > &).
func appendPlainString(out []byte, str string) ([]byte, bool) {
	for i := range len(str) {
		if c := str[i]; c < 0x20 || c >= 0x7F || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return out, false
		}
	}
	out = append(out, '"')
	out = append(out, str...)
	return append(out, '"'), true
}

// appendFastResult appends r as json.Marshal would; false (and out as it
// was) when it cannot be sure to.
func appendFastResult(out []byte, r *result) ([]byte, bool) {
	orig := len(out)
	fail := func() ([]byte, bool) { return out[:orig], false }
	var ok bool
	if r.Events == nil {
		out = append(out, `{"events":null`...)
	} else {
		out = append(out, `{"events":[`...)
		for n := range r.Events {
			if n > 0 {
				out = append(out, ',')
			}
			if out, ok = appendFastEvent(out, &r.Events[n]); !ok {
				return fail()
			}
		}
		out = append(out, ']')
	}
	if r.Error != "" {
		out = append(out, `,"error":`...)
		if out, ok = appendPlainString(out, r.Error); !ok {
			return fail()
		}
	}
	return append(out, '}'), true
}

func appendFastEvent(out []byte, ev *Event) ([]byte, bool) {
	out = append(out, '{')
	first := true
	var ok bool
	field := func(name, v string) bool {
		if v == "" {
			return true
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, '"')
		out = append(out, name...)
		out = append(out, `":`...)
		out, ok = appendPlainString(out, v)
		return ok
	}
	if !field("id", ev.ID) || !field("type", ev.Type) || !field("source", ev.Source) || !field("subject", ev.Subject) {
		return out, false
	}
	if len(ev.Metadata) > 0 {
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, `"metadata":{`...)
		keys := make([]string, 0, len(ev.Metadata))
		for k := range ev.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for n, k := range keys {
			if n > 0 {
				out = append(out, ',')
			}
			if out, ok = appendPlainString(out, k); !ok {
				return out, false
			}
			out = append(out, ':')
			if out, ok = appendPlainString(out, ev.Metadata[k]); !ok {
				return out, false
			}
		}
		out = append(out, '}')
	}
	if len(ev.Data) > 0 {
		s := scanner{b: ev.Data}
		if ok, compact := s.value(0); !ok || !compact || s.i != len(ev.Data) {
			return out, false
		}
		if !first {
			out = append(out, ',')
		}
		out = append(out, `"data":`...)
		out = append(out, ev.Data...)
	}
	return append(out, '}'), true
}
