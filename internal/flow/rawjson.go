package flow

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unsafe"
)

// The functions below read single values out of an event's raw JSON
// without building the parsed view (Value): they are what compiled
// expressions and the map processor use on the hot path. They assume data
// passed ValidateJSON (see Event.StrictJSON), so they only find
// boundaries; on anything they do not handle exactly as Value would read
// it they say so, and the caller takes the general path.

// MemberStatus is the outcome of JSONMember.
type MemberStatus uint8

// The outcomes of JSONMember.
const (
	// MemberFound: the key is there and its value starts at the offset.
	MemberFound MemberStatus = iota
	// MemberMissing: the object has no such key.
	MemberMissing
	// MemberUnsure: a key of the object has escapes, so it may equal
	// the key once decoded; read the parsed view instead.
	MemberUnsure
)

// JSONMember finds key among the members of the object starting at
// data[obj] (a '{') and returns the offset where its value starts. Like
// the parser, a repeated key counts with its last value.
func JSONMember(data []byte, obj int, key string) (int, MemberStatus) {
	i := SkipJSONSpace(data, obj+1)
	found := -1
	for i < len(data) && data[i] != '}' {
		if data[i] == ',' {
			i = SkipJSONSpace(data, i+1)
			continue
		}
		if data[i] != '"' {
			return 0, MemberUnsure
		}
		keyEnd, escaped := ScanJSONString(data, i)
		if escaped || keyEnd < 0 {
			return 0, MemberUnsure
		}
		k := data[i+1 : keyEnd-1]
		colon := SkipJSONSpace(data, keyEnd)
		if colon >= len(data) || data[colon] != ':' {
			return 0, MemberUnsure
		}
		val := SkipJSONSpace(data, colon+1)
		end := SkipJSONValue(data, val)
		if end < 0 {
			return 0, MemberUnsure
		}
		if string(k) == key {
			found = val
		}
		i = SkipJSONSpace(data, end)
	}
	if found < 0 {
		return 0, MemberMissing
	}
	return found, MemberFound
}

// maxIndexed is how many members of a top-level object an event's index
// holds; a larger object is searched with JSONMember.
const maxIndexed = 10

// MemberIndex holds where the members of a top-level JSON object are, so
// that the expressions and the map processor working on one event find its
// fields without scanning the object again. It holds no pointers, so the
// collector never scans it, and 16-bit offsets, so it fits in 64 bytes:
// payloads of 64 KiB or more are not indexed.
type MemberIndex struct {
	n    uint8
	keys [maxIndexed]uint16 // the key's opening quote
	vals [maxIndexed]uint16 // the value
	ends [maxIndexed]uint16 // just after the value
}

// Len returns the number of members, repeated keys included.
func (m *MemberIndex) Len() int { return int(m.n) }

// Member returns member k of the object in data (the data the index was
// built from): its key (unquoted; keys of indexed objects have no
// escapes), where the member starts (the key's quote), where its value
// starts and where the value ends.
func (m *MemberIndex) Member(data []byte, k int) (key []byte, start, value, end int) {
	start, value = int(m.keys[k]), int(m.vals[k])
	// The key's closing quote is the last one before the colon that
	// precedes the value (only white space between them); the key has no
	// escapes, so no quote inside it.
	q := value - 1
	for data[q] != ':' {
		q--
	}
	for q--; data[q] != '"'; q-- {
	}
	return data[start+1 : q], start, value, int(m.ends[k])
}

// Find returns where the value of key starts, the last one if the key is
// repeated (as the parser keeps it).
func (m *MemberIndex) Find(data []byte, key string) (int, bool) {
	for k := int(m.n) - 1; k >= 0; k-- {
		ks := int(m.keys[k]) + 1
		if ke := ks + len(key); ke < len(data) && data[ke] == '"' && string(data[ks:ke]) == key {
			// A key holding a quote or a backslash could match bytes
			// running past an indexed key's end; it is written with
			// escapes, so it is in no indexed object. Checked only on a
			// match, by hand: strings.ContainsAny costs a call per byte.
			for j := 0; j < len(key); j++ {
				if key[j] == '"' || key[j] == '\\' {
					return 0, false
				}
			}
			return int(m.vals[k]), true
		}
	}
	return 0, false
}

// validateIndexed is ValidateJSON(data) == nil, and the index of the
// members when data is an object it can index, in one pass.
func validateIndexed(data []byte) (*MemberIndex, bool) {
	idx := &MemberIndex{}
	indexed, ok := validateInto(data, idx)
	if !indexed {
		idx = nil
	}
	return idx, ok
}

// validateInto is validateIndexed writing the index into *idx (which it
// leaves in an unspecified state when indexed is false), so that a caller
// checking many events can allocate their indices together.
func validateInto(data []byte, idx *MemberIndex) (indexed, ok bool) {
	p := jsonParser{data: data}
	p.skipSpace()
	if p.pos >= len(data) || data[p.pos] != '{' || len(data) > math.MaxUint16 {
		return false, ValidateJSON(data) == nil
	}
	// check's object case, recording the members.
	idx.n = 0
	indexed = true
	p.pos++
	p.skipSpace()
	if p.pos < len(data) && data[p.pos] == '}' {
		p.pos++
	} else {
		for {
			if p.pos >= len(data) || data[p.pos] != '"' {
				return false, false
			}
			key := p.pos
			p.escaped = false
			if p.checkString() != nil {
				return false, false
			}
			if indexed && (int(idx.n) == maxIndexed || p.escaped) {
				indexed = false
			}
			p.skipSpace()
			if p.pos >= len(data) || data[p.pos] != ':' {
				return false, false
			}
			p.pos++
			p.skipSpace()
			val := p.pos
			// check(1), with the common scalars called directly.
			var err error
			switch {
			case val < len(data) && data[val] == '"':
				err = p.checkString()
			case val < len(data) && (data[val] >= '0' && data[val] <= '9' || data[val] == '-'):
				err = p.checkNumber()
			default:
				err = p.check(1)
			}
			if err != nil {
				return false, false
			}
			if indexed {
				idx.keys[idx.n], idx.vals[idx.n], idx.ends[idx.n] = uint16(key), uint16(val), uint16(p.pos)
				idx.n++
			}
			p.skipSpace()
			if p.pos >= len(data) {
				return false, false
			}
			if data[p.pos] == '}' {
				p.pos++
				break
			}
			if data[p.pos] != ',' {
				return false, false
			}
			p.pos++
			p.skipSpace()
		}
	}
	p.skipSpace()
	if p.pos != len(data) {
		return false, false
	}
	return indexed, true
}

// SkipJSONSpace returns the index of the first byte at or after i that is
// not JSON white space.
func SkipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// ScanJSONString returns the index after the string starting at b[i] (a
// quote) and whether it holds escapes; -1 if it does not end. It only
// finds the boundary: b is a payload already validated.
func ScanJSONString(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); {
		if j+8 <= len(b) {
			// Eight bytes at a time up to the next quote or backslash.
			m := quoteOrBackslash(binary.LittleEndian.Uint64(b[j:]))
			if m == 0 {
				j += 8
				continue
			}
			j += bits.TrailingZeros64(m) >> 3
		}
		switch b[j] {
		case '\\':
			escaped = true
			j += 2
		case '"':
			return j + 1, escaped
		default:
			j++
		}
	}
	return -1, escaped
}

// quoteOrBackslash returns, for eight bytes loaded little-endian, a mask
// whose lowest set bit is the top bit of the first quote or backslash
// among them, or 0 (the exact "has a zero byte" test of Hacker's Delight
// 6-1 on x XOR the byte: a borrow only marks bytes above a true mark).
func quoteOrBackslash(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	b := x ^ (ones * '\\')
	return ((q-ones)&^q | (b-ones)&^b) & highs
}

// SkipJSONValue returns the index after the value starting at b[i], or -1.
func SkipJSONValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := ScanJSONString(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := ScanJSONString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// JSONString returns the string value starting at data[i] (a quote)
// without copying: the result shares data's memory, as the parsed view
// does. ok is false for a string with escapes, which the caller reads
// from the parsed view (data that passed ValidateJSON has valid UTF-8, so
// the bytes are the value).
func JSONString(data []byte, i int) (string, bool) {
	end, escaped := ScanJSONString(data, i)
	if escaped || end < 0 {
		return "", false
	}
	raw := data[i+1 : end-1]
	return unsafe.String(unsafe.SliceData(raw), len(raw)), true
}

// JSONNumber reads the number starting at data[i] the way the parser
// does: an int64 when it is an integer literal that fits, else a float64.
// ok is false when data[i:] does not start with a number.
func JSONNumber(data []byte, i int) (n int64, f float64, isInt, ok bool) {
	start := i
	if i < len(data) && data[i] == '-' {
		i++
	}
	digits := i
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	if i == digits {
		return 0, 0, false, false
	}
	integer := true
	if i < len(data) && data[i] == '.' {
		integer = false
		i++
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		integer = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	lit := data[start:i]
	s := unsafe.String(unsafe.SliceData(lit), len(lit))
	if integer {
		if i-digits <= 18 {
			var u int64
			for _, c := range data[digits:i] {
				u = u*10 + int64(c-'0')
			}
			if digits > start {
				u = -u
			}
			return u, 0, true, true
		}
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return v, 0, true, true
		}
	}
	f, _ = strconv.ParseFloat(s, 64)
	return 0, f, false, true
}
