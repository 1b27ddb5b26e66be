package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/flow"
)

// checkConfig validates a built-in's config against its field spec, applies
// the defaults, and runs the spec's Validate hook when the generic checks
// pass. It reports whether the config is valid.
func (p *parser) checkConfig(c *Component, pc *parsed, spec *flow.ComponentSpec) bool {
	what := fmt.Sprintf("%s %q", c.Role, c.Name)
	anchor := pc.namePos
	if pc.configKey != nil {
		anchor = p.pos(pc.configKey)
	}
	node := resolve(pc.config)
	if node == nil && contains(pc.suggested, "config") {
		return false // a misspelt `config:` was reported already
	}
	if isNull(node) {
		node = nil
	} else if node.Kind != yaml.MappingNode {
		return false // reported while reading the component
	}
	before := len(p.diags)
	word := "config"
	if pc.configWord != "" {
		word = pc.configWord
	}
	p.moved = spec.Moved
	cfg := p.checkFields(spec.Fields, node, word, what, anchor, 0)
	p.moved = nil
	c.Config = cfg
	if len(p.diags) > before {
		return false
	}
	if spec.Validate == nil {
		return true
	}
	err := safeValidate(spec.Validate, cfg)
	for _, e := range flattenErrors(err) {
		var fe *flow.FieldError
		if errors.As(e, &fe) {
			path, shown := "config", word
			if fe.Path != "" {
				path += "." + fe.Path
				shown += "." + fe.Path
			}
			at, ok := lookupPos(c.Positions, path)
			if !ok {
				at = anchor
			}
			p.errorf(at, fe.Hint, "%s: %s: %s", what, shown, fe.Message)
			continue
		}
		var nb *flow.NotBuiltError
		if errors.As(e, &nb) {
			p.errorf(anchor, "", "%s: %s", what, nb.Reason)
			continue
		}
		p.errorf(anchor, fmt.Sprintf("`flowctl components` lists the fields of the built-in %s %q", c.Role, c.Type), "%s: invalid config: %v", what, e)
	}
	return err == nil
}

// safeValidate runs a Validate hook, turning a panic into an error so one
// faulty spec cannot take validation down.
func safeValidate(validate func(flow.Config) error, cfg flow.Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the component's validation failed unexpectedly (%v); please report this", r)
		}
	}()
	return validate(cfg)
}

// flattenErrors unwraps errors.Join'ed errors into a flat list.
func flattenErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// lookupPos finds the position of path, or of the nearest enclosing path
// that was written ("config.cases[1].when" → "config.cases[1]" → ...).
func lookupPos(positions map[string]Pos, path string) (Pos, bool) {
	for path != "" {
		if at, ok := positions[path]; ok {
			return at, true
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return Pos{}, false
}

// checkFields checks a mapping (nil when absent) against fields and
// returns its values with defaults applied. anchor is where to report a
// missing field.
func (p *parser) checkFields(fields []flow.Field, node *yaml.Node, path, what string, anchor Pos, depth int) map[string]any {
	out := map[string]any{}
	if depth > maxDepth {
		return out
	}
	names := []string{} // not nil: a spec without fields accepts no key
	for _, f := range fields {
		names = append(names, f.Name)
	}
	values := map[string]*yaml.Node{}
	if node != nil {
		var moved map[string]string
		if depth == 0 {
			moved = p.moved
		}
		entries, _ := p.mapping(node, fmt.Sprintf("%s of %s", path, what), names, moved)
		for _, e := range entries {
			values[e.key.Value] = e.val
		}
	}
	for _, f := range fields {
		v, set := values[f.Name]
		if !set || isNull(v) && f.Type != flow.TypeAny {
			switch {
			case f.Required:
				hint := fmt.Sprintf("add `%s: ...` under %s", f.Name, path)
				if f.Example != nil {
					hint = fmt.Sprintf("add `%s: %s` under %s", f.Name, exampleText(f.Example), path)
				}
				at := anchor
				if set {
					at = p.pos(v)
				}
				p.errorf(at, hint, "%s: %s.%s is required", what, path, f.Name)
			case f.Default != nil:
				out[f.Name] = normalizeDefault(f, f.Default)
			}
			continue
		}
		if val, ok := p.checkValue(f, v, path+"."+f.Name, what, depth); ok {
			out[f.Name] = val
		}
	}
	return out
}

// exampleText writes a field's example as it would appear in YAML: plain
// when that is safe, else quoted, and lists and maps in JSON (flow) form.
func exampleText(v any) string {
	switch x := v.(type) {
	case string:
		if x == "" || strings.ContainsAny(x, ":#{}[],&*!|>'\"%@`") || strings.TrimSpace(x) != x {
			return strconv.Quote(x)
		}
		return x
	case int, int64, float64, bool:
		return fmt.Sprint(x)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(b.String())
}

// normalizeDefault copies a default into the shapes the file would give:
// numbers of a number field are float64, lists []any, maps map[string]any.
func normalizeDefault(f flow.Field, v any) any {
	switch x := v.(type) {
	case int:
		if f.Type == flow.TypeNumber {
			return float64(x)
		}
	case time.Duration:
		return x.String()
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			if f.Items != nil {
				out[i] = normalizeDefault(*f.Items, e)
			} else {
				out[i] = e
			}
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out
	case flow.Config:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out
	}
	return v
}

// checkValue checks one value against its field and returns it in the
// shape components read: strings, int, float64 (number fields), bool,
// duration and CEL as their text, lists []any, maps map[string]any.
func (p *parser) checkValue(f flow.Field, n *yaml.Node, path, what string, depth int) (any, bool) {
	n = resolve(n)
	if n == nil || depth > maxDepth || !p.spend(n) {
		return nil, false
	}
	bad := func(want, hint string) (any, bool) {
		p.errorf(p.pos(n), hint, "%s: %s must be %s, got %s", what, path, want, kindName(n))
		return nil, false
	}
	scalar := n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null"
	tag := n.ShortTag()
	var val any
	switch f.Type {
	case flow.TypeString, "":
		if !scalar {
			return bad("a string", "write a single value")
		}
		val = n.Value
	case flow.TypeCEL:
		if !scalar || tag != "!!str" {
			return bad("a CEL expression (a string)", `quote it, e.g. "data.amount > 10"`)
		}
		val = n.Value
	case flow.TypeInt:
		if !scalar || tag != "!!int" {
			return bad("an integer", "write a whole number, e.g. 10")
		}
		v := scalarValue(n)
		if _, ok := v.(int); !ok {
			return bad("an integer that fits", "write a smaller whole number")
		}
		val = v
	case flow.TypeNumber:
		if !scalar || tag != "!!int" && tag != "!!float" {
			return bad("a number", "write a number, e.g. 2.5")
		}
		switch x := scalarValue(n).(type) {
		case int:
			val = float64(x)
		case float64:
			val = x
		default:
			return bad("a number", "write a number, e.g. 2.5")
		}
	case flow.TypeBool:
		if !scalar || tag != "!!bool" {
			return bad("true or false", "write true or false")
		}
		val = scalarValue(n)
	case flow.TypeDuration:
		if !scalar || tag != "!!str" {
			return bad("a duration", "write a duration with a unit, e.g. 250ms or 10s")
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			p.errorf(p.pos(n), "write a duration with a unit, e.g. 250ms, 10s or 1m30s", "%s: %s is not a duration: %q", what, path, n.Value)
			return nil, false
		}
		val = n.Value
	case flow.TypeStrings:
		if n.Kind != yaml.SequenceNode {
			return bad("a list of strings", "write a list, e.g. [a, b]")
		}
		l := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			item = resolve(item)
			if item == nil || item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
				p.errorf(p.pos(item), "write a single value", "%s: %s[%d] must be a string, got %s", what, path, i, kindName(item))
				ok = false
				continue
			}
			l = append(l, item.Value)
		}
		if !ok {
			return nil, false
		}
		val = l
	case flow.TypeObject:
		if n.Kind != yaml.MappingNode {
			return bad("a mapping", "write it as `key: value` lines")
		}
		if len(f.Fields) == 0 {
			val = p.value(n, depth)
		} else {
			val = p.checkFields(f.Fields, n, path, what, p.pos(n), depth+1)
		}
	case flow.TypeArray:
		if n.Kind != yaml.SequenceNode {
			return bad("a list", "write a list: one `- ...` line per item")
		}
		l := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			if f.Items == nil {
				l = append(l, p.value(item, depth+1))
				continue
			}
			v, good := p.checkValue(*f.Items, item, fmt.Sprintf("%s[%d]", path, i), what, depth+1)
			ok = ok && good
			l = append(l, v)
		}
		if !ok {
			return nil, false
		}
		val = l
	case flow.TypeMap:
		if n.Kind != yaml.MappingNode {
			return bad("a mapping", "write it as `key: value` lines")
		}
		entries, _ := p.mapping(n, path, nil, nil)
		m := make(map[string]any, len(entries))
		ok := true
		for _, e := range entries {
			if f.Items == nil {
				m[e.key.Value] = p.value(e.val, depth+1)
				continue
			}
			v, good := p.checkValue(*f.Items, e.val, path+"."+e.key.Value, what, depth+1)
			ok = ok && good
			m[e.key.Value] = v
		}
		if !ok {
			return nil, false
		}
		val = m
	default: // TypeAny and types this version does not know
		val = p.value(n, depth)
	}
	if len(f.Enum) > 0 {
		s := fmt.Sprint(val)
		if !contains(f.Enum, s) {
			hint := "use one of: " + strings.Join(f.Enum, ", ")
			if near, ok := nearest(s, f.Enum); ok {
				hint = fmt.Sprintf("did you mean %q? (one of: %s)", near, strings.Join(f.Enum, ", "))
			}
			p.errorf(p.pos(n), hint, "%s: invalid %s %q", what, path, s)
			return nil, false
		}
	}
	return val, true
}
