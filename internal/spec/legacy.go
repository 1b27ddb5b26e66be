package spec

import (
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/flow"
)

// The legacy shape of the earlier flowctl: one source, processors chained
// in file order, one sink.
//
//	version: 0.1
//	source: {type: generate, params: {count: 5}}
//	processors:
//	  - {name: large, plugin: filter, params: {expr: "data.amount > 10"}}
//	sink: {type: stdout}
//
// It reads into the same Pipeline as the other forms: a source named
// "source", each processor reading from the one above it (the first from
// the source), and a sink named "sink" reading from the last processor (or
// the source). `plugin` and `type` name a built-in, `params` is its config.
// The shape has no pipeline name: the file's base name without extension
// is used ("pipeline" when read from standard input), unless the file sets
// `name:`. `version` is read (any single value) and not kept: the Pipeline
// has no field for it and nothing depends on it.
var (
	legacyFields          = []string{"version", "name", "source", "processors", "sink", "log_level", "tls"}
	legacyEndFields       = []string{"type", "params"}
	legacyProcessorFields = []string{"name", "plugin", "params"}
)

// Legacy source and sink names: the shape names neither.
const (
	legacySourceName = "source"
	legacySinkName   = "sink"
)

// legacyForm tells whether the top-level mapping root is the legacy shape
// (a `source` or `sink` mapping without the flat form's lists) or mixes
// legacy keys with the flat form's `sources`/`sinks`. A `source:` or
// `sink:` holding a list is a misspelt `sources:`/`sinks:` of the flat
// form, not the legacy shape.
func (p *parser) legacyForm(root *yaml.Node) (legacy, mixed bool) {
	old := isMappingValue(root, "source") || isMappingValue(root, "sink")
	flat := p.hasKey(root, "sources") || p.hasKey(root, "sinks")
	return old && !flat, old && flat
}

// mixedKeys are the keys of root reported as a mix of forms: `version`,
// and `source`/`sink` when they hold a mapping.
func mixedKeys(root *yaml.Node) []string {
	keys := []string{"version"}
	for _, k := range []string{"source", "sink"} {
		if isMappingValue(root, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// isMappingValue reports whether mapping n holds key with a mapping value.
func isMappingValue(n *yaml.Node, key string) bool {
	n = resolve(n)
	for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := resolve(n.Content[i+1])
			return v != nil && v.Kind == yaml.MappingNode
		}
	}
	return false
}

// legacyName is the pipeline name of a legacy file without `name:`.
func legacyName(file string) string {
	if file == "" || file == StdinName {
		return "pipeline"
	}
	base := filepath.Base(file)
	name := strings.TrimSuffix(base, filepath.Ext(base))
	if name == "" || name == "." || name == string(filepath.Separator) {
		return "pipeline"
	}
	return name
}

// pickOneForm is the hint of every mistake that mixes the two forms.
const pickOneForm = "pick one form: the flat form lists `sources:`, `processors:` (each with `inputs`) and `sinks:`; " +
	"the legacy shape has one `source:`, `processors:` chained in order and one `sink:`"

// mixedKey reports a legacy-only key found next to the flat form's lists.
func (p *parser) mixedKey(root *yaml.Node, key *yaml.Node) {
	flat := "sources"
	if !p.hasKey(root, "sources") {
		flat = "sinks"
	}
	p.errorf(p.pos(key), pickOneForm, "the file mixes the legacy shape's `%s:` with the flat form's `%s:`", key.Value, flat)
}

// legacyPipeline reads a file of the legacy shape.
func (p *parser) legacyPipeline(root *yaml.Node) *Pipeline {
	p.legacy = true
	pl := &Pipeline{Legacy: true}
	moved := map[string]string{}
	for _, f := range flatFields {
		if !contains(legacyFields, f) {
			moved[f] = fmt.Sprintf("`%s` belongs to the flat form; the legacy shape has only %s — %s", f, strings.Join(legacyFields, ", "), pickOneForm)
		}
	}
	entries, _ := p.earlierMapping(root, "the pipeline", legacyFields, moved)
	var src, sink *Component
	var procs []*Component
	keys := map[string]*yaml.Node{}
	for _, e := range entries {
		keys[e.key.Value] = e.key
		switch e.key.Value {
		case "version":
			// Any single value; the earlier flowctl only required one.
			if v := resolve(e.val); v != nil && v.Kind != yaml.ScalarNode {
				p.errorf(p.pos(v), "write a single value, e.g. version: 0.1", "version must be a single value, got %s", kindName(v))
			}
		case "name":
			pl.Name, _ = p.str(e.val, "name")
		case "log_level":
			// The earlier flowctl's own logging: ours is a flag.
			p.warnf(p.pos(e.key), "give flowctl --log-level instead, or delete the line", "log_level is ignored: flowctl's log level is set on its command line")
		case "tls":
			// The earlier flowctl's control-plane TLS: ours comes from the
			// flags, the environment or the client config, never the file.
			p.warnf(p.pos(e.key), "use flowctl's --tls-* flags or a context of the client config, or delete the block", "tls is ignored: flowctl takes its TLS settings from its flags and client config, not from the pipeline file")
		case "source":
			if !isNull(e.val) {
				src = p.legacyComponent(e.val, flow.RoleSource, legacySourceName, -1)
			}
		case "processors":
			procs = p.legacyProcessors(e.val)
		case "sink":
			if !isNull(e.val) {
				sink = p.legacyComponent(e.val, flow.RoleSink, legacySinkName, -1)
			}
		}
	}
	if !p.hasKey(root, "name") {
		pl.Name = legacyName(p.file)
	}
	missing := func(key string, role flow.Role) {
		at := p.pos(root)
		if k := keys[key]; k != nil {
			at = p.pos(k)
		}
		hint := fmt.Sprintf("add `%s: {type: NAME, params: {...}}`", key)
		if p.opts.Registry != nil {
			if names := p.opts.Registry.Names(role); len(names) > 0 {
				hint += fmt.Sprintf(" naming a built-in %s (%s)", role, strings.Join(names, ", "))
			}
		}
		if role == flow.RoleSink {
			p.noSinks(at, hint, "the pipeline has no sink")
			return
		}
		p.errorf(at, hint, "the pipeline has no %s", key)
	}

	// Chain in file order. up is the name the next component reads from;
	// upKnown is false when there is nothing above it that could be read
	// (reported already, where it is written).
	up, upKnown := "", false
	if src != nil {
		pl.Sources = []*Component{src}
		up, upKnown = src.Name, true
	} else if !p.hasKey(root, "source") || isNullValue(root, "source") {
		missing("source", flow.RoleSource)
	}
	for _, c := range procs {
		p.chain(c, up, upKnown)
		up, upKnown = c.Name, c.Name != ""
	}
	pl.Processors = procs
	if sink != nil {
		p.chain(sink, up, upKnown)
		pl.Sinks = []*Component{sink}
	} else if !p.hasKey(root, "sink") || isNullValue(root, "sink") {
		missing("sink", flow.RoleSink)
		p.inputsBroken = true // "nothing reads the output" would only echo it
	}
	return pl
}

// isNullValue reports whether mapping n holds key with a null value.
func isNullValue(n *yaml.Node, key string) bool {
	n = resolve(n)
	for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return isNull(n.Content[i+1])
		}
	}
	return false
}

// chain makes c read from up. When there is nothing above to read from
// (no source, or a component whose name could not be read) c is left
// without inputs, quietly: the cause was reported where it is.
func (p *parser) chain(c *Component, up string, known bool) {
	if !known {
		p.comps[c].inputsBad = true
		p.inputsBroken = true
		return
	}
	c.Inputs = []Input{{From: up, Pos: c.Pos}}
}

// legacyProcessors reads the legacy `processors:` list.
func (p *parser) legacyProcessors(n *yaml.Node) []*Component {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(p.pos(n), "write a list: `processors:` then `- name: ...` lines with `plugin:` and `params:`", "processors must be a list, got %s", kindName(n))
		return nil
	}
	var out []*Component
	for i, item := range n.Content {
		if c := p.legacyComponent(item, flow.RoleProcessor, "", i); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// legacyComponent reads the legacy source or sink (`{type, params}`, named
// name) or the processor entry at index i (`{name, plugin, params}`).
func (p *parser) legacyComponent(n *yaml.Node, role flow.Role, name string, i int) *Component {
	n = resolve(n)
	c := &Component{Role: role, Name: name, Positions: map[string]Pos{}}
	pc := &parsed{node: n, configWord: "params"}
	c.Pos = p.pos(n)
	pc.namePos = c.Pos
	known, typeKey, what := legacyEndFields, "type", string(role)
	if role == flow.RoleProcessor {
		known, typeKey, what = legacyProcessorFields, "plugin", fmt.Sprintf("processors[%d]", i)
		p.legacyProcessorName(c, pc, n, what)
		if c.Name != "" {
			what = fmt.Sprintf("%s %q", role, c.Name)
		}
	}
	entries, ok := p.earlierMapping(n, what, known, legacyMoved(role))
	if !ok {
		return nil
	}
	p.ctx = what + ": "
	defer func() { p.ctx = "" }()
	p.comps[c] = pc
	// What runs it, or its settings, written misspelt or in another
	// form's words was reported as such; validation must not echo it as
	// "does not say what runs it" or "params.x is required". Validation
	// knows these fields by the other forms' names.
	pc.suggested = append(pc.suggested, p.suggested[n]...)
	for j := 0; j+1 < len(n.Content); j += 2 {
		k := n.Content[j].Value
		if contains(known, k) {
			continue
		}
		switch {
		case contains([]string{"type", "plugin", "image", "command", "url"}, k):
			pc.suggested = append(pc.suggested, "type")
		case k == "config":
			pc.suggested = append(pc.suggested, "config")
		}
	}
	if contains(pc.suggested, typeKey) {
		pc.suggested = append(pc.suggested, "type")
	}
	if contains(pc.suggested, "params") {
		pc.suggested = append(pc.suggested, "config")
	}
	for _, e := range entries {
		switch e.key.Value {
		case typeKey:
			pc.typeNode = e.val
			c.Type, _ = p.str(e.val, typeKey)
			c.Positions["type"] = p.pos(resolve(e.val))
		case "params":
			pc.configKey, pc.config = e.key, e.val
			if !isNull(e.val) && resolve(e.val).Kind != yaml.MappingNode {
				p.errorf(p.pos(e.val), "write it as `key: value` lines", "params of %s must be a mapping, got %s", what, kindName(e.val))
			}
			// Keyed "config.…" as in the other forms, so config errors
			// found later point at the params' own lines.
			p.recordPositions(c.Positions, "config", resolve(e.val), 0)
		}
	}
	return c
}

// legacyProcessorName reads a legacy processor's `name` first, so every
// message can use it.
func (p *parser) legacyProcessorName(c *Component, pc *parsed, n *yaml.Node, what string) {
	if n == nil || n.Kind != yaml.MappingNode {
		return // reported as "must be a mapping"
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], resolve(n.Content[j+1])
		if k.Value != "name" {
			continue
		}
		if s, ok := p.str(v, "name"); ok {
			c.Name = s
			pc.namePos = p.pos(v)
			c.Positions["name"] = pc.namePos
			switch s {
			case "":
				p.errorf(p.pos(v), "give it a name such as `name: parse`", "%s has an empty name", what)
			case legacySourceName, legacySinkName:
				// Reported here, where it can be fixed, not as a duplicate
				// of a name the file never writes; the processor is left
				// nameless so nothing else echoes it.
				p.errorf(p.pos(v), "give the processor another name", "%s is named %q, the name the legacy shape gives its %s", what, s, s)
				c.Name = ""
			}
		}
		return
	}
	p.errorf(p.pos(n), "add `name: ...`; each processor needs its own name", "%s has no name", what)
}

// legacyMoved are hints for the fields of other forms found in a legacy
// component.
func legacyMoved(role flow.Role) map[string]string {
	moved := map[string]string{}
	for _, f := range componentFields {
		moved[f] = fmt.Sprintf("`%s` belongs to the flat form — %s", f, pickOneForm)
	}
	if role == flow.RoleProcessor {
		moved["type"] = "a legacy processor names its built-in with `plugin:`; `type` is the flat form's — " + pickOneForm
		moved["id"] = "a legacy processor is named with `name:`"
		moved["inputs"] = "the legacy shape chains processors in file order and takes no `inputs`; to wire them yourself, " + pickOneForm
		delete(moved, "name")
	} else {
		moved["plugin"] = fmt.Sprintf("the legacy %s names its built-in with `type:`", role)
		moved["name"] = fmt.Sprintf("remove it; the legacy %s is always named %q", role, map[flow.Role]string{flow.RoleSource: legacySourceName, flow.RoleSink: legacySinkName}[role])
		moved["id"] = moved["name"]
		if role == flow.RoleSink {
			moved["inputs"] = "remove it; the legacy sink reads from the last processor (or the source). To wire inputs yourself, " + pickOneForm
		} else {
			moved["inputs"] = "remove it; a source reads from outside the pipeline"
		}
		delete(moved, "type")
	}
	moved["config"] = "in the legacy shape settings go under `params:`"
	return moved
}
