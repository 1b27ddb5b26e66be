package flow

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// ErrMalformedJSON is what ValidateJSON's errors wrap: the data is not one
// strict JSON document.
var ErrMalformedJSON = errors.New("malformed JSON")

// ValidateJSON reports whether data is one JSON document that keeps its
// meaning when read: besides the grammar (what encoding/json.Valid
// checks), strings must be valid UTF-8 with no lone UTF-16 surrogate
// escape (both would become U+FFFD), every number must be a finite
// float64 (1e999 would become +Inf), and an integer literal must fit in
// int64 or be exactly a float64 (123456789012345678901234567890 would
// silently lose its low digits). The error wraps ErrMalformedJSON and says
// what and where.
//
// It is the check the line sources run on every event in their strict
// mode, so it allocates nothing on valid input and reads each byte once.
// ParseJSON stays lenient, as encoding/json is.
func ValidateJSON(data []byte) error {
	p := jsonParser{data: data}
	p.skipSpace()
	if p.pos >= len(p.data) {
		return malformed(errors.New("invalid JSON: empty input"))
	}
	if err := p.check(0); err != nil {
		return malformed(err)
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return malformed(p.errorf("data after the first value"))
	}
	return nil
}

// malformedError wraps ErrMalformedJSON without adding to the message
// (the parser's errors already start "invalid JSON").
type malformedError struct{ err error }

func (e *malformedError) Error() string   { return e.err.Error() }
func (e *malformedError) Unwrap() []error { return []error{ErrMalformedJSON, e.err} }

func malformed(err error) error { return &malformedError{err} }

// check validates the value at p.pos, as value parses it.
func (p *jsonParser) check(depth int) error {
	if p.pos >= len(p.data) {
		return p.unexpected("value")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		if depth+1 > maxDepth {
			return p.errorf("nested too deeply")
		}
		p.pos++
		p.skipSpace()
		if p.pos < len(p.data) && p.data[p.pos] == '}' {
			p.pos++
			return nil
		}
		for {
			if p.pos >= len(p.data) || p.data[p.pos] != '"' {
				return p.unexpected("object (expecting a key)")
			}
			if err := p.checkString(); err != nil {
				return err
			}
			p.skipSpace()
			if p.pos >= len(p.data) || p.data[p.pos] != ':' {
				return p.unexpected("object (expecting ':')")
			}
			p.pos++
			p.skipSpace()
			if err := p.check(depth + 1); err != nil {
				return err
			}
			p.skipSpace()
			if p.pos >= len(p.data) {
				return p.unexpected("object")
			}
			switch p.data[p.pos] {
			case ',':
				p.pos++
				p.skipSpace()
			case '}':
				p.pos++
				return nil
			default:
				return p.unexpected("object (expecting ',' or '}')")
			}
		}
	case c == '[':
		if depth+1 > maxDepth {
			return p.errorf("nested too deeply")
		}
		p.pos++
		p.skipSpace()
		if p.pos < len(p.data) && p.data[p.pos] == ']' {
			p.pos++
			return nil
		}
		for {
			if err := p.check(depth + 1); err != nil {
				return err
			}
			p.skipSpace()
			if p.pos >= len(p.data) {
				return p.unexpected("array")
			}
			switch p.data[p.pos] {
			case ',':
				p.pos++
				p.skipSpace()
			case ']':
				p.pos++
				return nil
			default:
				return p.unexpected("array (expecting ',' or ']')")
			}
		}
	case c == '"':
		return p.checkString()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.checkNumber()
	case c == 't':
		_, err := p.literal("true", true)
		return err
	case c == 'f':
		_, err := p.literal("false", false)
		return err
	case c == 'n':
		_, err := p.literal("null", nil)
		return err
	}
	return p.unexpected("value")
}

// plainByte marks the bytes a string may hold as they are: printable
// ASCII other than the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// nonPlain returns, for eight bytes of data loaded little-endian (the
// first byte lowest), a mask whose lowest set bit is the top bit of the
// first byte that is not plainByte (below 0x20, non-ASCII, a quote or a
// backslash), or 0 when all eight are plain. Each term is the classic
// "has a byte less than n" bit trick (Hacker's Delight 6-1); a borrow
// can only mark bytes above a byte truly marked, so the lowest mark is
// exact.
func nonPlain(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	b := x ^ (ones * '\\')
	return ((x - ones*0x20) | (q - ones) | (b - ones) | x) & highs
}

// checkString validates the string at p.pos (on the opening quote). It
// sets p.escaped when the string holds an escape (it never clears it).
func (p *jsonParser) checkString() error {
	i := p.pos + 1
	// Most bytes of most strings are plain: skip them eight at a time up
	// to the first that is not (a control character, a quote, a
	// backslash or non-ASCII), one at a time in the last few bytes of
	// the data.
	data := p.data
	for i+8 <= len(data) {
		if m := nonPlain(binary.LittleEndian.Uint64(data[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			break
		}
		i += 8
	}
	for i < len(data) && plainByte[data[i]] {
		i++
	}
	if i < len(data) && data[i] == '"' {
		p.pos = i + 1
		return nil
	}
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return nil
		case c < 0x20:
			p.pos = i
			return p.errorf("control character %#02x in string", c)
		case c == '\\':
			p.escaped = true
			if i+1 >= len(p.data) {
				p.pos = len(p.data)
				return p.unexpected("string escape")
			}
			switch e := p.data[i+1]; e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(p.data, i+2)
				if !ok {
					p.pos = i
					return p.errorf("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2, ok2 := rune(0), false
					if i+7 < len(p.data) && p.data[i+6] == '\\' && p.data[i+7] == 'u' {
						r2, ok2 = hex4(p.data, i+8)
					}
					if !ok2 || utf16.DecodeRune(r, r2) == utf8.RuneError {
						p.pos = i
						return p.errorf("\\u%04X is half of a UTF-16 surrogate pair without its other half (it would read as U+FFFD)", r)
					}
					i += 6
				}
				i += 6
			default:
				p.pos = i
				return p.errorf("invalid escape \\%c", e)
			}
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(p.data[i:])
			if r == utf8.RuneError && size <= 1 {
				p.pos = i
				return p.errorf("invalid UTF-8 byte %#02x in string (it would read as U+FFFD)", c)
			}
			i += size
		}
	}
	p.pos = len(p.data)
	return p.unexpected("string")
}

// checkNumber validates the number at p.pos: the grammar, then that it
// reads as number does without losing its value.
func (p *jsonParser) checkNumber() error {
	start := p.pos
	i := start
	if p.data[i] == '-' {
		i++
	}
	if i >= len(p.data) || p.data[i] < '0' || p.data[i] > '9' {
		p.pos = i
		return p.unexpected("number")
	}
	digits := 0
	if p.data[i] == '0' {
		i++
		digits = 1
	} else {
		for i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' {
			i++
			digits++
		}
	}
	integer, exp := true, false
	if i < len(p.data) && p.data[i] == '.' {
		integer = false
		i++
		j := i
		for i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' {
			i++
		}
		if i == j {
			p.pos = i
			return p.unexpected("number (digits after '.')")
		}
	}
	if i < len(p.data) && (p.data[i] == 'e' || p.data[i] == 'E') {
		integer, exp = false, true
		i++
		if i < len(p.data) && (p.data[i] == '+' || p.data[i] == '-') {
			i++
		}
		j := i
		for i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' {
			i++
		}
		if i == j {
			p.pos = i
			return p.unexpected("number (exponent digits)")
		}
	}
	p.pos = i
	// The common numbers stop here: an integer of up to 18 digits is an
	// int64, and a number without exponent and with fewer than 309 integer
	// digits cannot overflow float64.
	if integer && digits <= 18 || !integer && !exp && digits < 309 {
		return nil
	}
	lit := p.data[start:i]
	s := unsafe.String(unsafe.SliceData(lit), len(lit))
	if integer {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			return nil
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	if math.IsInf(f, 0) {
		p.pos = start
		return p.errorf("number %s is beyond the range of float64 (it would read as %v)", short(s), f)
	}
	if integer {
		// Beyond int64: read as the nearest float64, which must be the
		// very integer written.
		exact := strconv.FormatFloat(f, 'f', 0, 64)
		if exact != s {
			p.pos = start
			return p.errorf("integer %s does not fit in int64 and is not exactly a float64 (it would read as %s)", short(s), exact)
		}
	}
	return nil
}

// short cuts a long literal for an error message.
func short(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
