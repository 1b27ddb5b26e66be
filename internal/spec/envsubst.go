package spec

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// colShift records one substitution on a line so that a column in the
// substituted text can be mapped back to the column the user wrote.
type colShift struct {
	newCol, newLen int // where the replacement sits in the substituted line
	oldCol, oldLen int // where `${...}` sat in the original line
}

// colMap maps columns of the substituted text back to the original file.
// Substitution never adds or removes a line, so only columns move.
type colMap map[int][]colShift

// orig maps a (line, col) of the substituted text to the original column.
// A column inside a replacement maps to the `$` that started it.
func (m colMap) orig(line, col int) int {
	offset := 0
	for _, s := range m[line] {
		if col < s.newCol {
			break
		}
		if col < s.newCol+s.newLen {
			return s.oldCol
		}
		offset += s.oldLen - s.newLen
	}
	return col + offset
}

// substitute replaces `${VAR}` and `${VAR:-default}` in data with values
// from lookup, and `$${` with a literal `${`. Lines that are whole YAML
// comments are left alone, so a commented-out line never needs its
// variables set. It reports unset variables, malformed references and
// values holding a line break (which would shift line numbers) as
// diagnostics at the reference.
func substitute(file string, data []byte, lookup func(string) (string, bool)) ([]byte, colMap, Diagnostics) {
	if !bytes.Contains(data, []byte("${")) {
		return data, nil, nil
	}
	var (
		out   bytes.Buffer
		cmap  = colMap{}
		diags Diagnostics
	)
	out.Grow(len(data))
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		lineNo := i + 1
		trimmed := bytes.TrimLeft(line, " \t")
		if len(trimmed) > 0 && trimmed[0] == '#' || !bytes.Contains(line, []byte("${")) {
			out.Write(line)
			continue
		}
		var nl bytes.Buffer
		for j := 0; j < len(line); {
			if line[j] == '$' && j+2 < len(line) && line[j+1] == '$' && line[j+2] == '{' {
				// `$${` is an escaped `${`: drop one `$`.
				cmap[lineNo] = append(cmap[lineNo], colShift{newCol: utf8.RuneCount(nl.Bytes()) + 1, newLen: 2, oldCol: utf8.RuneCount(line[:j]) + 1, oldLen: 3})
				nl.WriteString("${")
				j += 3
				continue
			}
			if line[j] != '$' || j+1 >= len(line) || line[j+1] != '{' {
				nl.WriteByte(line[j])
				j++
				continue
			}
			col := utf8.RuneCount(line[:j]) + 1 // yaml counts columns in characters
			end := bytes.IndexByte(line[j:], '}')
			if end < 0 {
				diags = append(diags, Diagnostic{File: file, Line: lineNo, Col: col, Severity: SevError,
					Message: "unterminated variable reference `${`",
					Hint:    "close it with `}`, or write `$${` for a literal `${`"})
				nl.Write(line[j:])
				break
			}
			ref := string(line[j+2 : j+end])
			name, def, hasDef := strings.Cut(ref, ":-")
			var val string
			switch {
			case !validVarName(name):
				// Left as written, so that the rest of the file still
				// parses and its other mistakes are reported too.
				val = string(line[j : j+end+1])
				diags = append(diags, Diagnostic{File: file, Line: lineNo, Col: col, Severity: SevError,
					Message: fmt.Sprintf("invalid variable reference `${%s}`", ref),
					Hint:    "a variable name is letters, digits and _ (not starting with a digit): ${NAME} or ${NAME:-default}; write `$${` for a literal `${`"})
			default:
				v, ok := lookup(name)
				switch {
				case ok:
					val = v
				case hasDef:
					val = def
				default:
					diags = append(diags, Diagnostic{File: file, Line: lineNo, Col: col, Severity: SevError,
						Message: fmt.Sprintf("environment variable %s is not set", name),
						Hint:    fmt.Sprintf("set it, or give a default: ${%s:-value}", name)})
				}
				if strings.ContainsAny(val, "\r\n") {
					diags = append(diags, Diagnostic{File: file, Line: lineNo, Col: col, Severity: SevError,
						Message: fmt.Sprintf("environment variable %s holds a line break", name),
						Hint:    "substitution never adds lines; set it to a single line"})
					val = strings.NewReplacer("\r", " ", "\n", " ").Replace(val)
				}
			}
			cmap[lineNo] = append(cmap[lineNo], colShift{newCol: utf8.RuneCount(nl.Bytes()) + 1, newLen: utf8.RuneCountInString(val), oldCol: col, oldLen: utf8.RuneCount(line[j : j+end+1])})
			nl.WriteString(val)
			j += end + 1
		}
		out.Write(nl.Bytes())
	}
	return out.Bytes(), cmap, diags
}

// validVarName reports whether s is a shell-style variable name.
func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
