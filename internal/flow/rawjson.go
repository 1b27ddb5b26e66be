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
	at, ok := m.FindPlain(data, key)
	if ok {
		// A key holding a quote or a backslash could match bytes
		// running past an indexed key's end; it is written with
		// escapes, so it is in no indexed object. Checked only on a
		// match, by hand: strings.ContainsAny costs a call per byte.
		for j := 0; j < len(key); j++ {
			if key[j] == '"' || key[j] == '\\' {
				return 0, false
			}
		}
	}
	return at, ok
}

// FindPlain is Find for a key that holds no quote and no backslash, which
// the caller checked once (an expression's field names, when compiled):
// it skips that check on every match.
func (m *MemberIndex) FindPlain(data []byte, key string) (int, bool) {
	for k := int(m.n) - 1; k >= 0; k-- {
		ks := int(m.keys[k]) + 1
		if ke := ks + len(key); ke < len(data) && data[ke] == '"' && string(data[ks:ke]) == key {
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
//
// It is check's object case in one loop that validates and records each
// member as it goes: the common members (a key and a string value of
// printable ASCII without escapes, an integer of up to 18 digits) are
// checked here a word at a time, and anything else (escapes, non-ASCII
// bytes, fractions and exponents, nested values, literals) by the general
// checkString, checkNumber and check from where it starts, so the verdict
// is ValidateJSON's by construction. White space is looked for only where
// a byte is at most ' '.
func validateInto(data []byte, idx *MemberIndex) (indexed, ok bool) {
	n := len(data)
	i := 0
	if n > 0 && data[0] <= ' ' {
		i = SkipJSONSpace(data, 0)
	}
	if i >= n || data[i] != '{' || n > math.MaxUint16 {
		return false, ValidateJSON(data) == nil
	}
	idx.n = 0
	indexed = true
	i++
	if i < n && data[i] <= ' ' {
		i = SkipJSONSpace(data, i)
	}
	if i < n && data[i] == '}' {
		i++
	} else {
		for {
			if i >= n || data[i] != '"' {
				return false, false
			}
			key := i
			if i = plainStringEnd(data, i); i < 0 {
				p := jsonParser{data: data, pos: key}
				if p.checkString() != nil {
					return false, false
				}
				if p.escaped {
					indexed = false
				}
				i = p.pos
			}
			if i < n && data[i] <= ' ' {
				i = SkipJSONSpace(data, i)
			}
			if i >= n || data[i] != ':' {
				return false, false
			}
			i++
			if i < n && data[i] <= ' ' {
				i = SkipJSONSpace(data, i)
			}
			if i >= n {
				return false, false
			}
			val := i
			switch c := data[i]; {
			case c == '"':
				i = plainStringEnd(data, val)
			case c >= '0' && c <= '9' || c == '-':
				i = plainIntEnd(data, val)
			default:
				i = -1
			}
			if i < 0 {
				p := jsonParser{data: data, pos: val}
				if p.check(1) != nil {
					return false, false
				}
				i = p.pos
			}
			if indexed {
				if k := idx.n; k < maxIndexed {
					idx.keys[k], idx.vals[k], idx.ends[k] = uint16(key), uint16(val), uint16(i)
					idx.n = k + 1
				} else {
					indexed = false
				}
			}
			if i < n && data[i] <= ' ' {
				i = SkipJSONSpace(data, i)
			}
			if i >= n {
				return false, false
			}
			if c := data[i]; c == ',' {
				i++
				if i < n && data[i] <= ' ' {
					i = SkipJSONSpace(data, i)
				}
				continue
			} else if c != '}' {
				return false, false
			}
			i++
			break
		}
	}
	if i < n && data[i] <= ' ' {
		i = SkipJSONSpace(data, i)
	}
	if i != n {
		return false, false
	}
	return indexed, true
}

// plainStringEnd returns the index after the string starting at data[i]
// (a quote) when every byte in it is plainByte (so checkString accepts it
// and it has no escapes), else -1: the string needs checkString, or does
// not end.
func plainStringEnd(data []byte, i int) int {
	i++
	if i > len(data) {
		return -1
	}
	// rest shrinks by whole words, which lets the compiler drop the
	// bounds checks of the loads.
	for rest := data[i:]; len(rest) >= 8; rest = rest[8:] {
		if m := nonPlain(binary.LittleEndian.Uint64(rest)); m != 0 {
			k := bits.TrailingZeros64(m) >> 3
			if rest[k] == '"' {
				return i + k + 1
			}
			return -1
		}
		i += 8
	}
	for ; i < len(data); i++ {
		if c := data[i]; !plainByte[c] {
			if c == '"' {
				return i + 1
			}
			return -1
		}
	}
	return -1
}

// plainIntEnd returns the index after the number starting at data[i] (a
// digit or '-') when it is an integer that checkNumber accepts without
// more ado (no fraction, no exponent, at most 18 digits, no leading
// zero), else -1: the number needs checkNumber.
func plainIntEnd(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	d := i
	for i+8 <= len(data) {
		if m := nonDigit(binary.LittleEndian.Uint64(data[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			goto done
		}
		i += 8
	}
	for i < len(data) && data[i]-'0' <= 9 {
		i++
	}
done:
	if digits := i - d; digits == 0 || digits > 18 || digits > 1 && data[d] == '0' {
		return -1
	}
	if i < len(data) && (data[i] == '.' || data[i] == 'e' || data[i] == 'E') {
		return -1
	}
	return i
}

// nonDigit returns, for eight bytes loaded little-endian, a mask whose
// lowest set bit lies in the first byte that is not an ASCII digit, or 0
// when all eight are digits. Each byte is tested on its own (high nibble
// 3, low nibble plus 6 without a carry into bit 4), so no borrow or carry
// crosses bytes and every mark is exact.
func nonDigit(x uint64) uint64 {
	const highs, lows = 0xF0F0F0F0F0F0F0F0, 0x0F0F0F0F0F0F0F0F
	return (x&highs ^ 0x3030303030303030) | ((x&lows + 0x0606060606060606) & 0x1010101010101010)
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
	// The usual number, a short integer, in one loop.
	if j := i; j < len(data) {
		neg := data[j] == '-'
		if neg {
			j++
		}
		var u int64
		d := j
		for ; j < len(data) && j-d < 18; j++ {
			c := data[j] - '0'
			if c > 9 {
				break
			}
			u = u*10 + int64(c)
		}
		if j > d && (j == len(data) || data[j] != '.' && data[j] != 'e' && data[j] != 'E' && data[j]-'0' > 9) {
			if neg {
				u = -u
			}
			return u, 0, true, true
		}
	}
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
