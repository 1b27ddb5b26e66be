package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/flow"
)

// Options are what Parse needs from outside the file.
type Options struct {
	// Registry holds the built-in component specs; nil means no built-in
	// is known (every `type:` alone is then an unknown built-in).
	Registry *flow.Registry
	// LookupEnv resolves `${VAR}`; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Stdin is read when Load is given "-"; nil means os.Stdin.
	Stdin io.Reader
}

// StdinName is how diagnostics name a pipeline read from standard input.
const StdinName = "<stdin>"

// Load reads the pipeline file at path ("-" reads standard input) and
// parses it. The error is only for I/O: a file that does not validate
// comes back as Diagnostics with errors.
func Load(path string, opts Options) (*Pipeline, Diagnostics, error) {
	var (
		data []byte
		err  error
		name = path
	)
	if path == "-" {
		in := opts.Stdin
		if in == nil {
			in = os.Stdin
		}
		name = StdinName
		data, err = io.ReadAll(in)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read pipeline file: %w", err)
	}
	p, diags := Parse(name, data, opts)
	if p != nil && path == "-" {
		p.File = ""
	}
	return p, diags, nil
}

// Parse reads a pipeline file's content; file names it in diagnostics (and
// a name ending in .json, or content starting with `{`, is read as JSON).
// When the diagnostics hold no error the Pipeline is complete: defaults
// applied, Runner derived, Positions filled. With errors it is whatever
// could be read (nil when the file is not even well-formed), fit for
// showing but not for running. Diagnostics are sorted by line and column.
func Parse(file string, data []byte, opts Options) (*Pipeline, Diagnostics) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	p := &parser{file: file, opts: opts, budget: 1 << 18}
	text, cmap, diags := substitute(file, data, lookup)
	p.cmaps = append(p.cmaps, cmap)
	p.diags = append(p.diags, diags...)

	var pl *Pipeline
	if root := p.syntax(text); root != nil {
		pl = p.pipeline(root)
		if pl != nil {
			pl.File = file
			p.validate(pl)
		}
	}
	sortDiags(p.diags)
	return pl, p.diags
}

// sortDiags orders diagnostics by line then column, keeping the order of
// findings at the same place.
func sortDiags(ds Diagnostics) {
	sort.SliceStable(ds, func(i, j int) bool {
		if ds[i].Line != ds[j].Line {
			return ds[i].Line < ds[j].Line
		}
		return ds[i].Col < ds[j].Col
	})
}

// isJSON tells whether the file is to be read as JSON.
func isJSON(file string, data []byte) bool {
	if filepath.Ext(file) == ".json" {
		return true
	}
	t := bytes.TrimLeft(data, " \t\r\n\ufeff")
	return len(t) > 0 && t[0] == '{'
}

var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })

// syntax parses text into the document's root node, reporting a syntax
// error at the parser's position.
func (p *parser) syntax(text []byte) *yaml.Node {
	if isJSON(p.file, text) && (filepath.Ext(p.file) == ".json" || yaml.Unmarshal(text, new(yaml.Node)) != nil) {
		// A .json file, or content that looks like JSON and is not YAML
		// either (a YAML flow mapping such as `{name: x}` is read as YAML):
		// JSON's own parser gives the exact place of a syntax error.
		var v any
		dec := json.NewDecoder(bytes.NewReader(text))
		err := dec.Decode(&v)
		if err == nil && dec.More() {
			off := dec.InputOffset()
			p.syntaxError(offsetPos(text, int(off)), "unexpected content after the top-level object")
			return nil
		}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			p.syntaxError(offsetPos(text, int(se.Offset)), se.Error())
			return nil
		case errors.As(err, &te):
			p.syntaxError(offsetPos(text, int(te.Offset)), te.Error())
			return nil
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			p.syntaxError(offsetPos(text, len(text)), "unexpected end of JSON input")
			return nil
		case err != nil:
			p.syntaxError(Pos{Line: 1, Col: 1}, err.Error())
			return nil
		}
		var cm colMap
		text, cm = unescapeSlashes(text)
		p.cmaps = append(p.cmaps, cm)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(text))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(Pos{Line: 1, Col: 1}, "write the pipeline: name, sources, processors and sinks", "the pipeline file is empty")
			return nil
		}
		at, msg := Pos{Line: 1, Col: 1}, err.Error()
		if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			msg = m[2]
			at = Pos{Line: problemLine(text, msg, line)}
			at.Col = firstCol(text, at.Line)
			if c := mismatchedBracket(text, at.Line); c > 0 {
				at.Col = c
			}
		}
		if lines := bytes.Split(text, []byte("\n")); at.Line >= 1 && at.Line <= len(lines) &&
			bytes.HasPrefix(bytes.TrimLeft(lines[at.Line-1], " "), []byte("\t")) {
			p.errorf(p.origPos(at.Line, at.Col), "indent with spaces; YAML does not allow tabs for indentation", "syntax error: %s", msg)
			return nil
		}
		p.syntaxError(at, msg)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(p.pos(&extra), "put one pipeline in a file; remove the `---` and what follows", "the file holds more than one YAML document")
		return nil
	}
	if len(doc.Content) == 0 {
		p.errorf(Pos{Line: 1, Col: 1}, "write the pipeline: name, sources, processors and sinks", "the pipeline file is empty")
		return nil
	}
	return doc.Content[0]
}

func (p *parser) syntaxError(at Pos, msg string) {
	p.errorf(p.origPos(at.Line, at.Col), "fix the syntax at this place", "syntax error: %s", msg)
}

// unescapeSlashes rewrites JSON's `\/` escape, which YAML does not know,
// to a plain `/` inside strings of valid JSON, noting the column moves.
func unescapeSlashes(text []byte) ([]byte, colMap) {
	if !bytes.Contains(text, []byte(`\/`)) {
		return text, nil
	}
	out := make([]byte, 0, len(text))
	cm := colMap{}
	line, lineStart, outLineStart := 1, 0, 0 // columns count characters, as yaml does
	inString := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\n':
			line, lineStart, outLineStart = line+1, i+1, len(out)+1 // out gets this '\n' below
		case inString && c == '\\' && i+1 < len(text) && text[i+1] == '/':
			cm[line] = append(cm[line], colShift{newCol: utf8.RuneCount(out[outLineStart:]) + 1, newLen: 1, oldCol: utf8.RuneCount(text[lineStart:i]) + 1, oldLen: 2})
			out = append(out, '/')
			i++
			continue
		case inString && c == '\\' && i+1 < len(text):
			out = append(out, c, text[i+1])
			i++
			continue
		case c == '"':
			inString = !inString
		}
		out = append(out, c)
	}
	return out, cm
}

// offsetPos turns a byte offset from encoding/json, which points just
// after the offending byte, into a 1-based line and column (in
// characters, as the YAML parser counts them).
func offsetPos(text []byte, off int) Pos {
	off = min(max(off, 0), len(text))
	if off > 0 {
		off--
	}
	line := 1 + bytes.Count(text[:off], []byte("\n"))
	start := bytes.LastIndexByte(text[:off], '\n') + 1
	return Pos{Line: line, Col: utf8.RuneCount(text[start:off]) + 1}
}

// problemLine finds the line a YAML syntax error is really on. The parser
// names the line where the enclosing block began, which can be far above
// the mistake; the first prefix of the file that fails the same way ends
// at the line that broke it. Large files keep the parser's line.
func problemLine(text []byte, msg string, reported int) int {
	lines := bytes.SplitAfter(text, []byte("\n"))
	if len(lines) > 400 || len(text) > 64<<10 {
		return reported
	}
	var prefix []byte
	for k, l := range lines {
		prefix = append(prefix, l...)
		if k+1 < reported {
			continue
		}
		var n yaml.Node
		err := yaml.Unmarshal(prefix, &n)
		if err == nil {
			continue
		}
		if m := yamlLineRE().FindStringSubmatch(err.Error()); m != nil && m[2] == msg {
			return k + 1
		}
	}
	return reported
}

// mismatchedBracket returns the column (in characters) of the first
// closing bracket on line that does not close the innermost open one
// ('}' where a '[' is open, say), outside quotes and comments; 0 if none.
// YAML's parser names only the line of such a flow-collection mistake.
func mismatchedBracket(text []byte, line int) int {
	lines := bytes.Split(text, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 0
	}
	var open []rune
	var quote rune
	col := 0
	for _, r := range string(lines[line-1]) {
		col++
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#':
			return 0
		case r == '[' || r == '{':
			open = append(open, r)
		case r == ']' || r == '}':
			want := '['
			if r == '}' {
				want = '{'
			}
			if len(open) == 0 || open[len(open)-1] != want {
				return col
			}
			open = open[:len(open)-1]
		}
	}
	return 0
}

// firstCol is the column of the first non-blank byte of line (1 if none).
func firstCol(text []byte, line int) int {
	lines := bytes.Split(text, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	l := lines[line-1]
	return len(l) - len(bytes.TrimLeft(l, " ")) + 1
}
