package flow

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// appendJSONStringBytewise is AppendJSONString as it was before it skipped
// plain bytes a word at a time: the reference.
func appendJSONStringBytewise(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
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

// TestAppendJSONStringWords puts every special byte or rune at every
// offset of strings around the eight-byte words AppendJSONString skips.
func TestAppendJSONStringWords(t *testing.T) {
	specials := []string{"\"", "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\xff", "\xc3", "é", "\u2028", "\u2029", "€", "<", "&"}
	for n := range 20 {
		base := strings.Repeat("abcdefgh", 3)[:n]
		for pos := 0; pos <= n; pos++ {
			for _, sp := range specials {
				s := base[:pos] + sp + base[pos:]
				if got, want := AppendJSONString([]byte("x"), s), appendJSONStringBytewise([]byte("x"), s); string(got) != string(want) {
					t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got, want)
				}
			}
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("plain ascii text, longer than a word")
	f.Add("tab\tquote\"back\\slash\u2028é\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := AppendJSONString(nil, s), appendJSONStringBytewise(nil, s); string(got) != string(want) {
			t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}
