package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxDepth bounds how deep a value may nest, so that a hostile file (or
// aliases expanding into each other) cannot exhaust the stack.
const maxDepth = 64

// parser holds what is known while one file is walked.
type parser struct {
	file string
	opts Options
	// cmaps map columns of the parsed text back to the file, innermost
	// (last applied) rewrite last.
	cmaps []colMap
	diags Diagnostics
	// envelope is true for the flowctl/v1 form: there `type` next to
	// image/command is a free label.
	envelope bool
	// legacy is true for the earlier flowctl's legacy shape (source,
	// processors with plugin, sink).
	legacy bool
	// mixed is true for a flat file that also has the legacy shape's keys.
	mixed bool
	// budget limits the nodes walked when aliases fan out.
	budget int
	// comps keeps, per component, what validation needs from the file.
	comps map[*Component]*parsed
	// suggested maps a mapping node to the known fields its unknown keys
	// were taken for, so a misspelt `inputs` does not also cause "has no
	// inputs".
	suggested map[*yaml.Node][]string
	// moved is the ComponentSpec.Moved of the config being checked.
	moved map[string]string
	// ctx names the component being read ("source \"ledger\": "), so a
	// message about one of its fields says whose field it is.
	ctx string
	// nearIgnored maps a mapping node to the known fields its ignored
	// (warned) keys were near, in the envelope and the legacy shape; unlike
	// suggested it silences nothing, it only keeps a misspelt `inputs`
	// from being chained over (see chainInFileOrder).
	nearIgnored map[*yaml.Node][]string
	// inputsBroken is set when some inputs could not be read or resolved;
	// dead-end warnings are then left out, as they would only echo it.
	inputsBroken bool
}

// pos is the position of n in the original file (columns corrected for
// variable substitution).
func (p *parser) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{Line: 1, Col: 1}
	}
	return p.origPos(n.Line, n.Column)
}

// origPos maps a position in the parsed text back to the file.
func (p *parser) origPos(line, col int) Pos {
	for i := len(p.cmaps) - 1; i >= 0; i-- {
		col = p.cmaps[i].orig(line, col)
	}
	return Pos{Line: line, Col: col}
}

// errorf records an error at pos.
func (p *parser) errorf(at Pos, hint, format string, args ...any) {
	p.diags = append(p.diags, Diagnostic{File: p.file, Line: at.Line, Col: at.Col, Severity: SevError,
		Message: fmt.Sprintf(format, args...), Hint: hint})
}

// warnf records a warning at pos.
func (p *parser) warnf(at Pos, hint, format string, args ...any) {
	p.diags = append(p.diags, Diagnostic{File: p.file, Line: at.Line, Col: at.Col, Severity: SevWarning,
		Message: fmt.Sprintf(format, args...), Hint: hint})
}

// spend takes one node from the walking budget; when it runs out (aliases
// that expand into each other) it reports that once and returns false.
func (p *parser) spend(n *yaml.Node) bool {
	p.budget--
	if p.budget == -1 {
		p.errorf(p.pos(n), "expand fewer aliases (*name), or write the values out", "the file expands to too many values")
	}
	return p.budget >= 0
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// kindName names what a node holds, for "got ..." in messages.
func kindName(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "something else"
}

// isNull reports whether n is an explicit null (or absent).
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isEmptyValue reports whether n is null or an empty list.
func isEmptyValue(n *yaml.Node) bool {
	n = resolve(n)
	return isNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0
}

// entry is one key/value pair of a mapping.
type entry struct {
	key, val *yaml.Node
}

// mapping checks that n is a mapping and returns its pairs in file order.
// It reports duplicate keys (at the second) and keys not in known (with a
// did-you-mean hint); those pairs are left out. what names the mapping in
// messages, e.g. `processor "enrich"`. moved maps a key that belongs
// elsewhere to a hint saying where.
func (p *parser) mapping(n *yaml.Node, what string, known []string, moved map[string]string) ([]entry, bool) {
	return p.mapKeys(n, what, known, moved, false)
}

// earlierMapping is mapping for the structures of the earlier flowctl's
// format (the pipeline, metadata, spec, a component, its ports, volumes,
// secrets and resources). In the flowctl/v1 envelope and the legacy shape
// that format's loader ignored fields it did not know, and real files hold
// some, so there an unknown field is a warning (with the same hint) and is
// skipped. A field of ours written in the wrong place (moved) stays an
// error: ignoring it would change what the pipeline does. The flat form
// stays strict.
func (p *parser) earlierMapping(n *yaml.Node, what string, known []string, moved map[string]string) ([]entry, bool) {
	return p.mapKeys(n, what, known, moved, p.compat())
}

// mapKeys is mapping; lax makes an unknown field without a moved hint a
// warning.
func (p *parser) mapKeys(n *yaml.Node, what string, known []string, moved map[string]string, lax bool) ([]entry, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		p.errorf(p.pos(n), "write it as `key: value` lines", "%s%s must be a mapping, got %s", p.ctx, what, kindName(n))
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	var out []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			p.errorf(p.pos(k), "use a plain name as the key", "%s%s has a key that is not a name", p.ctx, what)
			continue
		}
		if first, dup := seen[key]; dup {
			p.errorf(p.pos(k), fmt.Sprintf("it was first set at line %d; keep one", first.Line),
				"%sduplicate field %q in %s", p.ctx, key, what)
			continue
		}
		seen[key] = k
		if known != nil && !contains(known, key) && lax && len(known) > 0 && moved[key] == "" {
			p.ignoredField(n, k, what, known)
			continue
		}
		if known != nil && !contains(known, key) {
			hint := moved[key]
			if hint == "" {
				hint = didYouMean(key, known, "known fields")
			}
			if len(known) == 0 {
				hint = "remove it; " + what + " takes no fields"
			}
			if near, ok := nearest(key, known); ok {
				if p.suggested == nil {
					p.suggested = map[*yaml.Node][]string{}
				}
				p.suggested[n] = append(p.suggested[n], near)
			}
			p.errorf(p.pos(k), hint, "%sunknown field %q in %s", p.ctx, key, what)
			continue
		}
		out = append(out, entry{k, v})
	}
	return out, true
}

// lastSegment is the last name of a dotted path ("ports[0].hostPort" →
// "hostPort"), for examples in hints.
func lastSegment(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// str reads a scalar as text. Numbers and booleans are taken as written,
// so `tag: 1.0` keeps "1.0".
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		p.errorf(p.pos(n), fmt.Sprintf("write a single value, e.g. %s: text", field), "%s%s must be a string, got %s", p.ctx, field, kindName(n))
		return "", false
	}
	return n.Value, true
}

// integer reads an integer scalar.
func (p *parser) integer(n *yaml.Node, field string) (int, bool) {
	n = resolve(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		var v int64
		if err := n.Decode(&v); err == nil && v >= math.MinInt32 && v <= math.MaxInt32 {
			return int(v), true
		}
		p.errorf(p.pos(n), "use a smaller whole number", "%s%s is out of range: %s", p.ctx, field, n.Value)
		return 0, false
	}
	p.errorf(p.pos(n), fmt.Sprintf("write a whole number, e.g. %s: 4", lastSegment(field)), "%s%s must be an integer, got %s", p.ctx, field, kindName(n))
	return 0, false
}

// boolean reads a true/false scalar.
func (p *parser) boolean(n *yaml.Node, field string) (bool, bool) {
	n = resolve(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var v bool
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	p.errorf(p.pos(n), fmt.Sprintf("write %s: true or %s: false", lastSegment(field), lastSegment(field)), "%s%s must be true or false, got %s", p.ctx, field, kindName(n))
	return false, false
}

// duration reads a Go duration string such as "250ms".
func (p *parser) duration(n *yaml.Node, field string) (time.Duration, bool) {
	n = resolve(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		d, err := time.ParseDuration(n.Value)
		if err == nil && d >= 0 {
			return d, true
		}
		if err == nil { // a duration, but before zero
			p.errorf(p.pos(n), fmt.Sprintf("write a positive duration, e.g. %s: 10s or 250ms", lastSegment(field)), "%s%s must not be negative, got %q", p.ctx, field, n.Value)
			return 0, false
		}
	}
	p.errorf(p.pos(n), fmt.Sprintf("write a duration with a unit, e.g. %s: 10s or 250ms", lastSegment(field)), "%s%s must be a duration, got %s", p.ctx, field, kindName(n))
	return 0, false
}

// enum reads a string that must be one of allowed.
func (p *parser) enum(n *yaml.Node, field string, allowed []string) (string, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return "", false
	}
	if contains(allowed, s) {
		return s, true
	}
	hint := "use one of: " + strings.Join(allowed, ", ")
	if near, ok := nearest(s, allowed); ok {
		hint = fmt.Sprintf("did you mean %q? (one of: %s)", near, strings.Join(allowed, ", "))
	}
	p.errorf(p.pos(n), hint, "%sinvalid %s %q", p.ctx, field, s)
	return "", false
}

// strings reads a list of strings; a single scalar is taken as a list of
// one when single is true.
func (p *parser) strList(n *yaml.Node, field string, single bool) ([]string, bool) {
	n = resolve(n)
	if n != nil && n.Kind == yaml.ScalarNode && single && !isNull(n) {
		return []string{n.Value}, true
	}
	if n == nil || n.Kind != yaml.SequenceNode {
		p.errorf(p.pos(n), fmt.Sprintf("write a list, e.g. %s: [a, b]", field), "%s%s must be a list of strings, got %s", p.ctx, field, kindName(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		s, good := p.str(item, fmt.Sprintf("%s[%d]", field, i))
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

// strMap reads a mapping of string to string (values taken as written).
// In the earlier tool's forms a key without a value is the empty string,
// as that tool read it, with a warning.
func (p *parser) strMap(n *yaml.Node, field string) (map[string]string, bool) {
	entries, ok := p.mapping(n, field, nil, nil)
	if !ok {
		return nil, false
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		if p.compat() && isNull(e.val) {
			p.warnf(p.pos(e.val), fmt.Sprintf("write `%s: \"\"` for an empty value", e.key.Value),
				"%s%s.%s has no value: it is read as the empty string, as the earlier flowctl did", p.ctx, field, e.key.Value)
			out[e.key.Value] = ""
			continue
		}
		s, good := p.str(e.val, field+"."+e.key.Value)
		ok = ok && good
		out[e.key.Value] = s
	}
	return out, ok
}

// value converts a node to plain Go values: maps map[string]any, lists
// []any, integers int, other numbers float64, strings, booleans, nil.
func (p *parser) value(n *yaml.Node, depth int) any {
	n = resolve(n)
	if n == nil || depth > maxDepth || !p.spend(n) {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if k == nil {
				continue
			}
			if _, dup := m[k.Value]; dup {
				p.errorf(p.pos(k), "keep one of them", "duplicate key %q", k.Value)
			}
			m[k.Value] = p.value(n.Content[i+1], depth+1)
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			l = append(l, p.value(c, depth+1))
		}
		return l
	case yaml.ScalarNode:
		return scalarValue(n)
	}
	return nil
}

// scalarValue decodes a scalar by its resolved tag.
func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int
		if n.Decode(&i) == nil {
			return i
		}
		var f float64
		if n.Decode(&f) == nil {
			return f
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil {
			return f
		}
	}
	return n.Value
}

// recordPositions fills positions with the position of every value under
// n, keyed by its path ("config.cases[1].when"). An alias is recorded where
// it is written and not followed: positions are about what the file says.
func (p *parser) recordPositions(positions map[string]Pos, prefix string, n *yaml.Node, depth int) {
	if n == nil || depth > maxDepth || !p.spend(n) {
		return
	}
	if prefix != "" {
		if _, set := positions[prefix]; !set {
			positions[prefix] = p.pos(n)
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if prefix != "" {
				k = prefix + "." + k
			}
			p.recordPositions(positions, k, n.Content[i+1], depth+1)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p.recordPositions(positions, fmt.Sprintf("%s[%d]", prefix, i), c, depth+1)
		}
	}
}
