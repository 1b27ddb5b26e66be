package flow

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// ParseJSON decodes a JSON document, keeping integers as int64 and other
// numbers as float64, the way CEL expects them: objects become
// map[string]any, arrays []any, and strings, bools and null string, bool
// and nil. It gives the same values as encoding/json with UseNumber (and
// the same verdict on invalid input: strings with invalid UTF-8 get
// U+FFFD, duplicate keys keep the last value), in one pass and with far
// fewer allocations. It does not keep data.
func ParseJSON(data []byte) (any, error) {
	// One copy up front lets every string point into it instead of being
	// copied one by one.
	return parseJSON(bytes.Clone(data))
}

// parseJSON is ParseJSON for bytes that are never modified afterwards (an
// event's Data): strings without escapes share data's memory.
func parseJSON(data []byte) (any, error) {
	p := jsonParser{data: data}
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, errors.New("invalid JSON: empty input")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.errorf("data after the first value")
	}
	return v, nil
}

// maxDepth bounds nesting like encoding/json, so hostile input cannot
// exhaust the stack.
const maxDepth = 10000

type jsonParser struct {
	data []byte
	pos  int
	// escaped: checkString met an escape (validateIndexed clears it for
	// every key).
	escaped bool
	// strs, ints and flts are the free cells of the current slabs that
	// parsed scalars are boxed from: a handful of values share one
	// allocation instead of one each (see box).
	strs []string
	ints []int64
	flts []float64
}

// slabSize is how many values of a kind one slab holds: typical events
// have a few strings and numbers, so 4 wastes little and saves most
// allocations.
const slabSize = 4

// valueSlab holds the boxed scalars of one parse. Strings and integers
// share it (one allocation for a typical event); floats come in their own
// slab as they are rarer.
type valueSlab struct {
	strs [slabSize]string
	ints [slabSize]int64
}

// newSlab starts a slab for strings and integers; the kind that asked
// for it may leave the other kind's current slab unfinished, which only
// wastes a few words.
func (p *jsonParser) newSlab() {
	s := new(valueSlab)
	p.strs = s.strs[:]
	p.ints = s.ints[:]
}

// eface is the layout of an empty interface: the runtime's type word and
// a pointer to the value.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

func typeWord(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

var (
	stringType  = typeWord("")
	int64Type   = typeWord(int64(0))
	float64Type = typeWord(float64(0))
)

// box makes an interface holding the value at p, of the type typ names,
// without copying it to a new allocation: p points into a slab, which the
// interface keeps alive. This is what the runtime builds itself when it
// converts a value to an interface; the values are never modified (the
// parsed view is read-only), so sharing a slab is safe.
func box(typ, p unsafe.Pointer) (v any) {
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, p
	return v
}

func (p *jsonParser) boxString(s string) any {
	if len(p.strs) == 0 {
		p.newSlab()
	}
	p.strs[0] = s
	v := box(stringType, unsafe.Pointer(&p.strs[0]))
	p.strs = p.strs[1:]
	return v
}

func (p *jsonParser) boxInt(i int64) any {
	if i >= 0 && i < 256 {
		return i // the runtime boxes small integers without allocating
	}
	if len(p.ints) == 0 {
		p.newSlab()
	}
	p.ints[0] = i
	v := box(int64Type, unsafe.Pointer(&p.ints[0]))
	p.ints = p.ints[1:]
	return v
}

func (p *jsonParser) boxFloat(f float64) any {
	if len(p.flts) == 0 {
		p.flts = make([]float64, slabSize)
	}
	p.flts[0] = f
	v := box(float64Type, unsafe.Pointer(&p.flts[0]))
	p.flts = p.flts[1:]
	return v
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) unexpected(what string) error {
	if p.pos >= len(p.data) {
		return p.errorf("unexpected end of input in %s", what)
	}
	return p.errorf("unexpected %q in %s", p.data[p.pos], what)
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.unexpected("value")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return p.boxString(s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	}
	return nil, p.unexpected("value")
}

func (p *jsonParser) literal(word string, v any) (any, error) {
	if len(p.data)-p.pos >= len(word) && string(p.data[p.pos:p.pos+len(word)]) == word {
		p.pos += len(word)
		return v, nil
	}
	return nil, p.unexpected("literal " + word)
}

func (p *jsonParser) object(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deeply")
	}
	p.pos++ // {
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return map[string]any{}, nil
	}
	// A hint of one group's worth (8) makes the map's slots at once
	// instead of on the first insert; most event objects fit.
	m := make(map[string]any, 8)
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.unexpected("object (expecting a key)")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.unexpected("object (expecting ':')")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.unexpected("object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			return m, nil
		default:
			return nil, p.unexpected("object (expecting ',' or '}')")
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deeply")
	}
	p.pos++ // [
	a := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return a, nil
	}
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.unexpected("array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			return a, nil
		default:
			return nil, p.unexpected("array (expecting ',' or ']')")
		}
	}
}

// str reads a string at p.pos (on the opening quote). Plain ASCII or valid
// UTF-8 without escapes is returned without copying.
func (p *jsonParser) str() (string, error) {
	p.pos++ // "
	start := p.pos
	plain := true
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		switch {
		case c == '"':
			raw := p.data[start:i]
			if plain || utf8.Valid(raw) {
				p.pos = i + 1
				return unsafe.String(unsafe.SliceData(raw), len(raw)), nil
			}
			return p.unquote(start)
		case c == '\\':
			return p.unquote(start)
		case c < 0x20:
			p.pos = i
			return "", p.errorf("control character %#02x in string", c)
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	p.pos = len(p.data)
	return "", p.unexpected("string")
}

// unquote decodes the string starting at start (after the quote) into a
// new buffer: escapes resolved, invalid UTF-8 replaced by U+FFFD (as
// encoding/json does).
func (p *jsonParser) unquote(start int) (string, error) {
	buf := make([]byte, 0, 32)
	i := start
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return unsafe.String(unsafe.SliceData(buf), len(buf)), nil
		case c < 0x20:
			p.pos = i
			return "", p.errorf("control character %#02x in string", c)
		case c == '\\':
			if i+1 >= len(p.data) {
				p.pos = len(p.data)
				return "", p.unexpected("string escape")
			}
			switch e := p.data[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
				i += 2
			case 'b':
				buf = append(buf, '\b')
				i += 2
			case 'f':
				buf = append(buf, '\f')
				i += 2
			case 'n':
				buf = append(buf, '\n')
				i += 2
			case 'r':
				buf = append(buf, '\r')
				i += 2
			case 't':
				buf = append(buf, '\t')
				i += 2
			case 'u':
				r, ok := hex4(p.data, i+2)
				if !ok {
					p.pos = i
					return "", p.errorf("invalid \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok2 := rune(0), false
					if i+1 < len(p.data) && p.data[i] == '\\' && p.data[i+1] == 'u' {
						r2, ok2 = hex4(p.data, i+2)
					}
					if d := utf16.DecodeRune(r, r2); ok2 && d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				p.pos = i
				return "", p.errorf("invalid escape \\%c", e)
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRune(p.data[i:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, p.data[i:i+size]...)
			}
			i += size
		}
	}
	p.pos = len(p.data)
	return "", p.unexpected("string")
}

// hex4 reads four hex digits at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
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

// number reads a JSON number: an int64 when it is an integer literal that
// fits, else a float64 (out-of-range exponents give ±Inf, like
// json.Number.Float64 ignoring its error).
func (p *jsonParser) number() (any, error) {
	start := p.pos
	i := start
	neg := false
	if p.data[i] == '-' {
		neg = true
		i++
	}
	if i >= len(p.data) || p.data[i] < '0' || p.data[i] > '9' {
		p.pos = i
		return nil, p.unexpected("number")
	}
	var n uint64
	digits := 0
	if p.data[i] == '0' {
		i++
		digits = 1
	} else {
		for i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' {
			n = n*10 + uint64(p.data[i]-'0') // may wrap; only used when digits <= 18
			i++
			digits++
		}
	}
	integer := true
	if i < len(p.data) && p.data[i] == '.' {
		integer = false
		i++
		j := i
		for i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' {
			i++
		}
		if i == j {
			p.pos = i
			return nil, p.unexpected("number (digits after '.')")
		}
	}
	if i < len(p.data) && (p.data[i] == 'e' || p.data[i] == 'E') {
		integer = false
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
			return nil, p.unexpected("number (exponent digits)")
		}
	}
	p.pos = i
	lit := p.data[start:i]
	s := unsafe.String(unsafe.SliceData(lit), len(lit))
	if integer {
		if digits <= 18 {
			if neg {
				return p.boxInt(-int64(n)), nil
			}
			return p.boxInt(int64(n)), nil
		}
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return p.boxInt(v), nil
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	return p.boxFloat(f), nil
}
