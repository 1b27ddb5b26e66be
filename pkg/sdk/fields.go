package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Field helpers: read and set top-level fields of a JSON object payload
// in place, without decoding it into a map and encoding it back. They
// scan the raw bytes; the rest of the payload is kept byte for byte (field
// order, spacing, number spelling). A processor that touches a few fields
// of each event is several times cheaper this way than with Decode and
// SetJSON:
//
//	amount, _ := e.Field("amount").Float()
//	if err := e.SetField("amount_usd", amount/100); err != nil {
//		return nil, sdk.Permanent(err) // the payload is not a JSON object
//	}
//
// A name is matched against the field names as they are written in the
// payload (a name spelled with escapes is not found); when a name occurs
// twice, the first occurrence counts. The helpers check the structure of
// what they scan, not the whole payload: use Decode to validate it.

// errNotObject is returned by SetField for a payload that is not a JSON
// object.
var errNotObject = errors.New("payload is not a JSON object")

// Value is the raw JSON of one field, as Event.Field found it; the zero
// Value is a missing field. It aliases the event's Data: it is valid until
// Data changes.
type Value struct {
	raw []byte
}

// Exists reports whether the field was found.
func (v Value) Exists() bool { return v.raw != nil }

// Raw returns the field's JSON text, or nil when it is missing.
func (v Value) Raw() json.RawMessage { return json.RawMessage(v.raw) }

// IsNull reports whether the field is JSON null.
func (v Value) IsNull() bool { return string(v.raw) == "null" }

// Float returns the field as a number; ok is false when it is missing or
// not a number.
func (v Value) Float() (f float64, ok bool) {
	if len(v.raw) == 0 || !(v.raw[0] == '-' || isDigit(v.raw[0])) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v.raw), 64) // the conversion does not allocate
	return f, err == nil
}

// Int returns the field as an integer; ok is false when it is missing or
// not a number without fraction or exponent that fits in an int64.
func (v Value) Int() (n int64, ok bool) {
	if len(v.raw) == 0 || !(v.raw[0] == '-' || isDigit(v.raw[0])) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v.raw), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Bool returns the field as a boolean; ok is false when it is missing or
// not true or false.
func (v Value) Bool() (b, ok bool) {
	switch string(v.raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// Str returns the field as a string, with its escapes resolved; ok is
// false when it is missing or not a string.
func (v Value) Str() (s string, ok bool) {
	if len(v.raw) < 2 || v.raw[0] != '"' {
		return "", false
	}
	body := v.raw[1 : len(v.raw)-1]
	for _, c := range body {
		if c == '\\' {
			s, err := unquote(v.raw)
			return s, err == nil
		}
	}
	return string(body), true
}

// Field returns the top-level field name of the JSON object payload. The
// result is the zero Value when the field is missing or the payload is not
// a JSON object.
func (e *Event) Field(name string) Value {
	_, v, _, err := findField(e.Data, name)
	if err != nil || v < 0 {
		return Value{}
	}
	end, err := skipValue(e.Data, v)
	if err != nil {
		return Value{}
	}
	return Value{raw: e.Data[v:end:end]}
}

// SetField sets the top-level field name of the JSON object payload to
// value: it replaces the field's value where it is, or appends the field
// at the end of the object. Strings, numbers, booleans, nil and
// json.RawMessage are written directly; other values are marshalled with
// encoding/json. A new value of the same size as the old one (an
// upper-cased ASCII string, a number of as many digits) is written over it
// in Data itself, which the event owns; otherwise Data is replaced. It
// fails when the payload is not a JSON object or value cannot be encoded;
// the payload is then unchanged.
func (e *Event) SetField(name string, value any) error {
	_, v, closing, err := findField(e.Data, name)
	if err != nil {
		return fmt.Errorf("set field %q of event %q: %w", name, e.ID, err)
	}
	if v >= 0 {
		end, err := skipValue(e.Data, v)
		if err != nil {
			return fmt.Errorf("set field %q of event %q: %w", name, e.ID, err)
		}
		var buf [64]byte
		enc, err := appendValue(buf[:0], value)
		if err != nil {
			return fmt.Errorf("set field %q of event %q: %w", name, e.ID, err)
		}
		if len(enc) == end-v {
			// Same size (a number of as many digits, an upper-cased
			// ASCII string): the event owns Data, overwrite in place.
			copy(e.Data[v:end], enc)
			return nil
		}
		out := make([]byte, 0, len(e.Data)-(end-v)+len(enc))
		out = append(out, e.Data[:v]...)
		out = append(out, enc...)
		e.Data = append(out, e.Data[end:]...)
		return nil
	}
	// Append before the closing brace, with a comma unless the object is
	// empty.
	out := make([]byte, 0, len(e.Data)+len(name)+24)
	out = append(out, e.Data[:closing]...)
	if !emptyObject(e.Data, closing) {
		out = append(out, ',')
	}
	out = appendJSONString(out, name)
	out = append(out, ':')
	out, err = appendValue(out, value)
	if err != nil {
		return fmt.Errorf("set field %q of event %q: %w", name, e.ID, err)
	}
	e.Data = append(out, e.Data[closing:]...)
	return nil
}

// emptyObject reports whether the object whose closing brace is at
// closing has no fields.
func emptyObject(d []byte, closing int) bool {
	for i := closing - 1; i >= 0; i-- {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// findField scans the object in d for the top-level field name. It returns
// the offset of the field's name, of its value (-1 when not found), and of
// the object's closing brace (when not found).
func findField(d []byte, name string) (key, value, closing int, err error) {
	i := skipSpace(d, 0)
	if i >= len(d) || d[i] != '{' {
		return -1, -1, -1, errNotObject
	}
	i = skipSpace(d, i+1)
	if i < len(d) && d[i] == '}' {
		if skipSpace(d, i+1) != len(d) {
			return -1, -1, -1, errNotObject
		}
		return -1, -1, i, nil
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return -1, -1, -1, errNotObject
		}
		k := i
		end, err := skipString(d, i)
		if err != nil {
			return -1, -1, -1, err
		}
		match := string(d[k+1:end-1]) == name
		i = skipSpace(d, end)
		if i >= len(d) || d[i] != ':' {
			return -1, -1, -1, errNotObject
		}
		i = skipSpace(d, i+1)
		if match {
			if i >= len(d) {
				return -1, -1, -1, errNotObject
			}
			return k, i, -1, nil
		}
		if i, err = skipValue(d, i); err != nil {
			return -1, -1, -1, err
		}
		i = skipSpace(d, i)
		if i >= len(d) {
			return -1, -1, -1, errNotObject
		}
		switch d[i] {
		case ',':
			i = skipSpace(d, i+1)
		case '}':
			if skipSpace(d, i+1) != len(d) {
				return -1, -1, -1, errNotObject
			}
			return -1, -1, i, nil
		default:
			return -1, -1, -1, errNotObject
		}
	}
}

func skipSpace(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

var errSyntax = errors.New("malformed JSON")

// skipString returns the offset just past the string starting at d[i].
func skipString(d []byte, i int) (int, error) {
	for j := i + 1; j < len(d); j++ {
		switch c := d[j]; {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			j++
		case c < 0x20:
			return 0, errSyntax
		}
	}
	return 0, errSyntax
}

// skipValue returns the offset just past the value starting at d[i].
func skipValue(d []byte, i int) (int, error) {
	if i >= len(d) {
		return 0, errSyntax
	}
	switch c := d[i]; {
	case c == '"':
		return skipString(d, i)
	case c == '{' || c == '[':
		depth := 0
		for j := i; j < len(d); j++ {
			switch d[j] {
			case '"':
				end, err := skipString(d, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax
	case c == '-' || isDigit(c):
		j := i + 1
		for j < len(d) && (isDigit(d[j]) || d[j] == '.' || d[j] == 'e' || d[j] == 'E' || d[j] == '+' || d[j] == '-') {
			j++
		}
		return j, nil
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(d)-i >= len(lit) && string(d[i:i+len(lit)]) == lit {
				return i + len(lit), nil
			}
		}
		return 0, errSyntax
	}
}

// appendValue appends the JSON encoding of v. Strings are written by
// flowctl's own writer: invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped, as encoding/json does.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case float64:
		return appendFloat(b, x, 64)
	case float32:
		return appendFloat(b, float64(x), 32)
	case json.RawMessage:
		if !json.Valid(x) {
			return b, errSyntax
		}
		return append(b, x...), nil
	}
	m, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, m...), nil
}

// appendFloat appends f as encoding/json writes it: the shortest decimal
// that reads back as f, in exponent form only for very small or large
// magnitudes.
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("unsupported number %v", f)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	n := len(b)
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// e-09 -> e-9, as encoding/json does.
		if m := len(b) - n; m >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b, nil
}

// unquote resolves the escapes of the JSON string q (quotes included).
func unquote(q []byte) (string, error) {
	body := q[1 : len(q)-1]
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(body) {
			return "", errSyntax
		}
		switch body[i] {
		case '"', '\\', '/':
			out = append(out, body[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(body, i+1)
			if !ok {
				return "", errSyntax
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(body, i+3); ok && i+2 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errSyntax
		}
	}
	return string(out), nil
}

// hex4 reads the four hex digits at body[i:].
func hex4(body []byte, i int) (rune, bool) {
	if i+4 > len(body) {
		return 0, false
	}
	var r rune
	for _, c := range body[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
