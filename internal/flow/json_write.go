package flow

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
	"unsafe"
)

const jsonHex = "0123456789abcdef"

// AppendJSONString appends s to dst as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// in encoding/json; U+2028 and U+2029 are escaped so the output is also
// valid JavaScript.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			// Eight bytes at a time up to the first that is not plain
			// (nonPlain: the bytes written as they are).
			m := nonPlain(binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8)))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', jsonHex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendJSONBytes is AppendJSONString for bytes; b is read, not kept.
func AppendJSONBytes(dst []byte, b []byte) []byte {
	return AppendJSONString(dst, unsafe.String(unsafe.SliceData(b), len(b)))
}

// JSONKind names the JSON kind of a parsed value ("an object", "a string",
// ...), for error messages.
func JSONKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, float64, int:
		return "a number"
	case map[string]any:
		return "an object"
	}
	return "a value"
}
