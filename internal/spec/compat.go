package spec

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/flow"
)

// What the earlier flowctl's loader let through, and how we read it. These
// rules hold in the flowctl/v1 envelope and the legacy shape only: files
// written for the earlier tool load with warnings that say what to change,
// while the flat form (our own) stays strict.
//
//   - An unknown field is a warning and is skipped (earlierMapping).
//   - camelCase spellings of component fields are aliases (compatAliases);
//     both spellings in one mapping is an error naming both places.
//   - `apiVersion: v1` is read as flowctl/v1, with a warning.
//   - Every `driver` the earlier tool took is accepted and ignored, with a
//     warning: what runs a component is its type, command or image.
//   - A pipeline without sinks is a warning.
//   - A file with no `inputs` anywhere is chained in file order, with a
//     warning per component giving the line to add (chainInFileOrder).
//   - A `spec.pipelines[]` entry may carry component fields; it is then
//     read as a component of its own (PipelineRef.Component).

// rolePipeline is the role shown for a spec.pipelines[] entry read as a
// component. No built-in has it, and it never enters the event graph.
const rolePipeline flow.Role = "pipeline"

// compatDrivers are the `driver` values the earlier flowctl took.
var compatDrivers = []string{"process", "container", "docker", "kubernetes", "k8s", "nomad", "local", "dag"}

// compatAliases are the camelCase spellings of component fields seen in
// files of the earlier format, by the field they stand for.
var compatAliases = map[string]string{
	"inputEventTypes":  "input_event_types",
	"outputEventTypes": "output_event_types",
	"healthCheck":      "health_check",
	"healthPort":       "health_port",
	"restartPolicy":    "restart_policy",
	"dependsOn":        "depends_on",
}

// compatPathAliases are those of volumes and secrets.
var compatPathAliases = map[string]string{
	"hostPath":      "host_path",
	"containerPath": "container_path",
	"readOnly":      "readonly",
}

// sameField are spellings every form accepts for one field; a mapping may
// hold only one of each pair.
var sameField = map[string]string{
	"container_port": "containerPort",
	"host_port":      "hostPort",
	"mount_path":     "mountPath",
	"read_only":      "readonly",
}

// compatHints are better hints than did-you-mean for fields real files of
// the earlier format hold.
var compatHints = map[string]string{
	"health_endpoint": "flowctl reads a health check from `health_check` (a path or URL) and `health_port`; move the value there, or delete the line",
}

// compat reports whether the file is in one of the earlier tool's forms.
func (p *parser) compat() bool { return p.envelope || p.legacy }

// ignoredField warns about an unknown key k of mapping n that the earlier
// flowctl's loader ignored; so do we.
func (p *parser) ignoredField(n, k *yaml.Node, what string, known []string) {
	key := k.Value
	hint := compatHints[key]
	if hint == "" {
		hint = didYouMean(key, known, "known fields")
	}
	if near, ok := nearest(key, known); ok {
		if p.nearIgnored == nil {
			p.nearIgnored = map[*yaml.Node][]string{}
		}
		p.nearIgnored[n] = append(p.nearIgnored[n], near)
	}
	p.warnf(p.pos(k), hint, "%sunknown field %q in %s is ignored", p.ctx, key, what)
}

// spellings rewrites, in the envelope and the legacy shape, each alias of
// mapping n to the field it stands for, and reports (in every form) a
// mapping that gives one field in two spellings; the second spelling is
// then dropped so that nothing else echoes it. what names the mapping.
func (p *parser) spellings(n *yaml.Node, what string, aliases map[string]string) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	canonical := func(key string) string {
		if p.compat() {
			if c, ok := aliases[key]; ok {
				return c
			}
		}
		if c, ok := sameField[key]; ok {
			return c
		}
		return key
	}
	type spelling struct {
		key string
		at  Pos
	}
	first := map[string]spelling{}
	content := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		c := canonical(k.Value)
		if f, dup := first[c]; dup && f.key != k.Value {
			kp := p.pos(k)
			p.errorf(kp, fmt.Sprintf("they are the same field; keep one (flowctl writes `%s`)", c),
				"%s%s gives %q at line %d:%d and %q at line %d:%d", p.ctx, what, f.key, f.at.Line, f.at.Col, k.Value, kp.Line, kp.Col)
			continue
		}
		if _, dup := first[c]; !dup {
			first[c] = spelling{k.Value, p.pos(k)}
		}
		if p.compat() {
			if a, ok := aliases[k.Value]; ok {
				// The position stays the alias's own; messages use
				// flowctl's name of the field.
				k.Value = a
			}
		}
		content = append(content, k, n.Content[i+1])
	}
	n.Content = content
}

// apiVersion checks the envelope's apiVersion s (written at n) and returns
// what it is read as.
func (p *parser) apiVersion(s string, n *yaml.Node) string {
	switch s {
	case "flowctl/v1":
	case "v1":
		p.warnf(p.pos(n), "write `apiVersion: flowctl/v1`", "apiVersion %q is read as flowctl/v1, as the earlier flowctl did", s)
		return "flowctl/v1"
	default:
		p.errorf(p.pos(n), "write `apiVersion: flowctl/v1`", "unsupported apiVersion %q", s)
	}
	return s
}

// driver reads `driver`: strict in the flat form (kept for the
// translators), accepted with a warning in the envelope, where it means
// nothing to flowctl.
func (p *parser) driver(n *yaml.Node) string {
	if !p.compat() {
		s, _ := p.enum(n, "driver", drivers)
		return s
	}
	s, ok := p.enum(n, "driver", compatDrivers)
	if ok {
		p.warnf(p.pos(n), "delete the line; to run a component as a process give it `command:`, as a container `image:`",
			"driver %q is accepted for compatibility and ignored: flowctl runs each component by its `type`, `command` or `image`", s)
	}
	return s
}

// noSinks reports a pipeline without sinks at pos: an error in the flat
// form, a warning in the earlier tool's forms, which ran such files.
func (p *parser) noSinks(at Pos, hint, what string) {
	if p.compat() {
		p.warnf(at, hint, "%s: its events are not written anywhere", what)
		p.inputsBroken = true // "nothing reads the output of ..." would only echo it
		return
	}
	p.errorf(at, hint, "%s", what)
}

// chainInFileOrder wires a flowctl/v1 file that has no `inputs` anywhere
// the way the earlier flowctl ran it: the first processor reads from every
// source, each other processor from the one above it, and every sink from
// the last processor (from every source when there is none). Each
// component so wired gets a warning with the exact line to add, because
// the earlier tool's chaining is not a rule of ours. Nothing is chained
// when a field near `inputs` was ignored: the author meant some wiring.
func (p *parser) chainInFileOrder(pl *Pipeline) {
	comps := pl.Components()
	if !p.envelope || len(comps) < 2 || len(pl.Processors)+len(pl.Sinks) == 0 {
		return
	}
	for _, c := range comps {
		pc := p.comps[c]
		if pc == nil || pc.hasInputs || contains(p.nearIgnored[pc.node], "inputs") || contains(pc.suggested, "inputs") {
			return
		}
	}
	var up []string
	for _, s := range pl.Sources {
		if s.Name == "" {
			return // reported; chaining over it would only confuse
		}
		up = append(up, s.Name)
	}
	wire := func(c *Component) {
		if len(up) == 0 || c.Name == "" {
			return
		}
		for _, u := range up {
			c.Inputs = append(c.Inputs, Input{From: u, Pos: c.Pos})
		}
		line := fmt.Sprintf("inputs: [%s]", strings.Join(up, ", "))
		p.warnf(c.Pos, fmt.Sprintf("add %q to %s %q at %s:%d:%d", line, c.Role, c.Name, p.file, c.Pos.Line, c.Pos.Col),
			"%s %q has no inputs: it reads from %s, chained in file order as the earlier flowctl did", c.Role, c.Name, quoteList(up))
	}
	for _, c := range pl.Processors {
		wire(c)
		up = []string{c.Name}
	}
	for _, c := range pl.Sinks {
		wire(c)
	}
}

// quoteList writes names as "a", "b" and "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// pipelineEntry reads an entry of spec.pipelines. With only name (or id)
// and depends_on it names a sub-pipeline, as before. In the envelope an
// entry may also carry the component fields (image, command, env, ports,
// inputs, ...): the earlier flowctl ran such an entry as a service of its
// own, so it is read as a component (PipelineRef.Component) that moves its
// data itself: it is not part of the event graph, and its inputs only name
// what it follows.
func (p *parser) pipelineEntry(item *yaml.Node, what string) (*PipelineRef, bool) {
	n := resolve(item)
	if !p.envelope || n == nil || n.Kind != yaml.MappingNode {
		return nil, false
	}
	component := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if a, ok := compatAliases[k]; ok {
			k = a
		}
		if !contains(pipelineFields, k) && contains(componentFields, k) {
			component = true
		}
	}
	if !component {
		return nil, false
	}
	c := p.component(item, rolePipeline, what)
	if c == nil {
		return nil, true
	}
	return &PipelineRef{Name: c.Name, DependsOn: c.DependsOn, Pos: c.Pos, Component: c}, true
}

// pipelineEntries checks the spec.pipelines[] entries read as components:
// their inputs must name components or other entries. Each gets a warning
// that flowctl run does not start it, which is the truth until entries
// are run as components that move their data themselves.
func (p *parser) pipelineEntries(pl *Pipeline) {
	var names []string
	for _, c := range pl.Components() {
		names = append(names, c.Name)
	}
	for _, r := range pl.Pipelines {
		names = append(names, r.Name)
	}
	for _, r := range pl.Pipelines {
		c := r.Component
		if c == nil {
			continue
		}
		for _, in := range c.Inputs {
			if !contains(names, in.From) || in.From == c.Name {
				p.errorf(in.Pos, didYouMean(in.From, names, "components and pipelines it can follow"), "pipeline %q follows unknown component %q", c.Name, in.From)
			}
		}
		if c.Runner == RunProcess || c.Runner == RunContainer {
			p.warnf(p.comps[c].namePos, "start it yourself next to `flowctl run`; flowctl checks its fields but runs only sources, processors and sinks",
				"pipeline %q is a service that moves its data itself; `flowctl run` does not start spec.pipelines entries", c.Name)
		}
	}
}

// pipelineComponents are the spec.pipelines[] entries read as components.
func pipelineComponents(pl *Pipeline) []*Component {
	var out []*Component
	for _, r := range pl.Pipelines {
		if r.Component != nil {
			out = append(out, r.Component)
		}
	}
	return out
}
