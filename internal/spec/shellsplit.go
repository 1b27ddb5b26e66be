package spec

import (
	"strings"
)

// splitShell splits s into words the way a POSIX shell would without
// expansions: whitespace separates words, single quotes keep everything,
// double quotes keep everything but let a backslash escape `"`, `\`, `$`
// and a backquote, and a backslash outside quotes escapes the next byte.
// On an unterminated quote it returns the byte offset of that quote.
func splitShell(s string) (words []string, badQuote int, ok bool) {
	var (
		cur     strings.Builder
		inWord  bool
		quote   byte
		quoteAt int
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, quoteAt, inWord = c, i, true
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if quote != 0 {
		return nil, quoteAt, false
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, 0, true
}
