package spec

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/flow"
)

// Field names of the file, in the order they are documented.
var (
	flatFields     = []string{"name", "description", "driver", "sources", "processors", "sinks", "dead_letter", "pipelines", "config", "tests"}
	envelopeFields = []string{"apiVersion", "kind", "metadata", "spec"}
	metadataFields = []string{"name", "namespace", "labels", "annotations", "description"}
	specFields     = []string{"description", "driver", "sources", "processors", "sinks", "dead_letter", "pipelines", "config"}
	pipelineFields = []string{"name", "id", "depends_on"}

	componentFields = []string{
		"name", "id", "type", "image", "command", "args", "inputs", "input_event_types", "output_event_types",
		"config", "env", "working_dir", "buffer", "parallelism", "ordered", "on_error", "protocol", "url",
		"startup_timeout", "stop_grace", "restart_policy", "ports", "volumes", "secrets", "resources",
		"replicas", "health_check", "health_port", "depends_on", "build", "watch",
	}
	inputFields    = []string{"from", "types"}
	onErrorFields  = []string{"policy", "max_attempts", "backoff", "max_backoff", "then"}
	portFields     = []string{"name", "containerPort", "hostPort", "protocol", "container_port", "host_port"}
	volumeFields   = []string{"name", "mountPath", "host_path", "container_path", "readonly", "mount_path", "read_only"}
	secretFields   = []string{"name", "host_path", "container_path", "env", "mode", "type", "required", "labels"}
	resourceFields = []string{"requests", "limits"}
	quantityFields = []string{"cpu", "memory"}

	drivers        = []string{"process", "container", "docker", "kubernetes", "k8s", "nomad", "local"}
	protocols      = []string{"auto", "grpc", "flowctl-v1", "stdio", "http", "none"}
	restartPolicys = []string{"no", "on-failure", "always", "unless-stopped"}
	onErrorPolicys = []string{OnErrorRetry, OnErrorDeadLetter, OnErrorDrop, OnErrorStop}
	thenPolicys    = []string{OnErrorDeadLetter, OnErrorDrop, OnErrorStop}
)

// legacyComponentMoved are hints for the legacy shape's component fields
// found in the other forms.
var legacyComponentMoved = map[string]string{
	"plugin": "`plugin` is the legacy shape's spelling; in this form write `type:`",
	"params": "`params` is the legacy shape's spelling; in this form write `config:`",
}

// parsed keeps what validation needs beyond the Pipeline itself.
type parsed struct {
	node *yaml.Node // the component's mapping
	// name is where the name was written (the component start if absent).
	namePos Pos
	// inputsKey is where `inputs:` was written (zero if absent).
	inputsKey *yaml.Node
	typeNode  *yaml.Node
	configKey *yaml.Node
	config    *yaml.Node
	ordered   *bool
	onError   onErrorSet
	deadLet   bool
	// hasInputs is true when `inputs:` was written at all.
	hasInputs bool
	// inputsBad is true when `inputs:` could not be read.
	inputsBad bool
	// suggested are the known fields that unknown keys were taken for.
	suggested []string
	// configWord is what the file calls config ("params" in the legacy
	// shape), for messages.
	configWord string
}

// onErrorSet records which on_error parts the file set.
type onErrorSet struct {
	node                            *yaml.Node
	policy, attempts, backoff, maxB bool
	then                            bool
	thenNode, policyNode            *yaml.Node
}

// pipeline walks the root node into a Pipeline.
func (p *parser) pipeline(root *yaml.Node) *Pipeline {
	root = resolve(root)
	if root == nil || root.Kind != yaml.MappingNode {
		p.errorf(p.pos(root), "start the file with `name:` and the component lists", "the pipeline file must be a mapping, got %s", kindName(root))
		return nil
	}
	pl := &Pipeline{}
	p.comps = map[*Component]*parsed{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if contains(envelopeFields, root.Content[i].Value) {
			p.envelope = true
		}
	}
	if !p.envelope {
		legacy, mixed := p.legacyForm(root)
		if legacy {
			return p.legacyPipeline(root)
		}
		known, legacyKeys := flatFields, []string(nil)
		if mixed {
			// Read as the flat form; the legacy keys are reported as a
			// mix of forms rather than as unknown fields.
			p.mixed = true
			legacyKeys = mixedKeys(root)
			known = append(append([]string(nil), flatFields...), legacyKeys...)
		}
		entries, _ := p.mapping(root, "the pipeline", known, nil)
		if mixed {
			flat := entries[:0:0]
			for _, e := range entries {
				if contains(legacyKeys, e.key.Value) {
					p.mixedKey(root, e.key)
					continue
				}
				flat = append(flat, e)
			}
			entries = flat
		}
		p.body(pl, entries)
		if pl.Name == "" && !p.hasKey(root, "name") {
			p.errorf(p.pos(root), "add `name: my-pipeline` at the top", "the pipeline has no name")
		}
		p.ends(pl, root)
		return pl
	}

	pl.Envelope = true
	moved := map[string]string{}
	for _, f := range flatFields {
		moved[f] = fmt.Sprintf("in the flowctl/v1 form %q goes under `spec:`", f)
	}
	moved["name"] = "in the flowctl/v1 form the name goes under `metadata:`"
	// tests: sits at the top of the file in both forms (flowctl test).
	entries, _ := p.earlierMapping(root, "the pipeline", append(slices.Clone(envelopeFields), "tests"), moved)
	var haveAPI, haveKind, haveMeta, haveSpec bool
	for _, e := range entries {
		switch e.key.Value {
		case "apiVersion":
			haveAPI = true
			if s, ok := p.str(e.val, "apiVersion"); ok {
				pl.APIVersion = p.apiVersion(s, resolve(e.val))
			}
		case "kind":
			haveKind = true
			if s, ok := p.str(e.val, "kind"); ok {
				pl.Kind = s
				if s != "Pipeline" {
					p.errorf(p.pos(e.val), "write `kind: Pipeline`", "unsupported kind %q", s)
				}
			}
		case "metadata":
			haveMeta = true
			p.metadata(pl, e.val)
		case "tests":
			p.tests(e.val)
		case "spec":
			haveSpec = true
			specEntries, ok := p.earlierMapping(e.val, "spec", specFields, map[string]string{
				"name":  "the name goes under `metadata:`",
				"tests": "tests: goes at the top of the file, next to `spec:`",
			})
			if ok {
				p.body(pl, specEntries)
				p.ends(pl, e.val)
				p.chainInFileOrder(pl)
			}
		}
	}
	at := p.pos(root)
	if !haveAPI {
		p.errorf(at, "add `apiVersion: flowctl/v1` at the top", "the pipeline has no apiVersion")
	}
	if !haveKind {
		p.errorf(at, "add `kind: Pipeline` at the top", "the pipeline has no kind")
	}
	if !haveMeta {
		p.errorf(at, "add `metadata: {name: my-pipeline}`", "the pipeline has no metadata")
	}
	if !haveSpec {
		p.errorf(at, "add `spec:` with sources, processors and sinks", "the pipeline has no spec")
	}
	return pl
}

// hasKey reports whether mapping n has key.
func (p *parser) hasKey(n *yaml.Node, key string) bool {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// metadata reads the envelope's metadata.
func (p *parser) metadata(pl *Pipeline, n *yaml.Node) {
	entries, ok := p.earlierMapping(n, "metadata", metadataFields, nil)
	if !ok {
		return
	}
	for _, e := range entries {
		switch e.key.Value {
		case "name":
			pl.Name, _ = p.str(e.val, "metadata.name")
		case "namespace":
			pl.Namespace, _ = p.str(e.val, "metadata.namespace")
		case "description":
			pl.Description, _ = p.str(e.val, "metadata.description")
		case "labels":
			pl.Labels, _ = p.strMap(e.val, "metadata.labels")
		case "annotations":
			pl.Annotations, _ = p.strMap(e.val, "metadata.annotations")
		}
	}
	if pl.Name == "" && !p.hasKey(n, "name") {
		p.errorf(p.pos(n), "add `name: my-pipeline` under metadata", "metadata has no name")
	}
}

// ends reports a pipeline without sources or without sinks: events would
// come from nowhere or go nowhere. n is the mapping that should list them.
func (p *parser) ends(pl *Pipeline, n *yaml.Node) {
	if len(pl.Pipelines) > 0 {
		return // the earlier format's list of sub-pipelines
	}
	at := func(key string) Pos {
		n := resolve(n)
		for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return p.pos(n.Content[i])
			}
		}
		return p.pos(n)
	}
	// In a file that mixes the forms, a legacy `source:` or `sink:` was
	// reported as such; "no sources" would only echo it.
	if (len(pl.Sources) == 0 && !p.hasKey(n, "sources") || p.hasKey(n, "sources") && isEmptyList(n, "sources")) && !(p.mixed && isMappingValue(n, "source")) {
		p.errorf(at("sources"), "add `sources:` with at least one `- name: ...` entry", "the pipeline has no sources")
	}
	if (len(pl.Sinks) == 0 && !p.hasKey(n, "sinks") || p.hasKey(n, "sinks") && isEmptyList(n, "sinks")) && !(p.mixed && isMappingValue(n, "sink")) {
		p.noSinks(at("sinks"), "add `sinks:` with at least one `- name: ...` entry", "the pipeline has no sinks")
	}
}

// isEmptyList reports whether mapping n holds key with an empty list or
// nothing as its value.
func isEmptyList(n *yaml.Node, key string) bool {
	n = resolve(n)
	for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := resolve(n.Content[i+1])
			return isNull(v) || v.Kind == yaml.SequenceNode && len(v.Content) == 0
		}
	}
	return false
}

// body reads the fields shared by the flat form and the envelope's spec.
func (p *parser) body(pl *Pipeline, entries []entry) {
	for _, e := range entries {
		switch e.key.Value {
		case "name":
			pl.Name, _ = p.str(e.val, "name")
		case "description":
			pl.Description, _ = p.str(e.val, "description")
		case "driver":
			pl.Driver = p.driver(e.val)
		case "config":
			if !isNull(e.val) {
				if v, ok := p.value(e.val, 0).(map[string]any); ok {
					pl.Config = v
				} else {
					p.errorf(p.pos(e.val), "write it as `key: value` lines", "config must be a mapping, got %s", kindName(e.val))
				}
			}
		case "sources":
			pl.Sources = p.componentList(e.val, flow.RoleSource, "sources")
		case "processors":
			pl.Processors = p.componentList(e.val, flow.RoleProcessor, "processors")
		case "sinks":
			pl.Sinks = p.componentList(e.val, flow.RoleSink, "sinks")
		case "dead_letter":
			if !isNull(e.val) {
				c := p.component(e.val, flow.RoleSink, "dead_letter")
				if c != nil {
					p.comps[c].deadLet = true
					if c.Name == "" {
						c.Name = "dead_letter"
					}
					pl.DeadLetter = c
				}
			}
		case "pipelines":
			pl.Pipelines = p.pipelineRefs(e.val)
		case "tests":
			p.tests(e.val)
		}
	}
}

// tests checks the shape of the pipeline tests a file may carry under
// `tests:`: a list of mappings. What a case says is `flowctl test`'s to
// check; run, validate and translate ignore the section.
func (p *parser) tests(n *yaml.Node) {
	if isNull(n) {
		return
	}
	v := resolve(n)
	if v.Kind != yaml.SequenceNode {
		p.errorf(p.pos(n), "write the cases as a list: `- name: ...` entries (see flowctl test)", "tests must be a list of test cases, got %s", kindName(n))
		return
	}
	for i, c := range v.Content {
		if resolve(c).Kind != yaml.MappingNode {
			p.errorf(p.pos(c), "write each case as a mapping with name:, inputs: and expect: (see flowctl test)", "tests[%d] must be a test case, got %s", i, kindName(c))
		}
	}
}

// pipelineRefs reads the earlier format's spec.pipelines.
func (p *parser) pipelineRefs(n *yaml.Node) []*PipelineRef {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(p.pos(n), "write a list: `- name: ...`", "pipelines must be a list, got %s", kindName(n))
		return nil
	}
	var out []*PipelineRef
	for i, item := range n.Content {
		what := fmt.Sprintf("pipelines[%d]", i)
		if ref, ok := p.pipelineEntry(item, what); ok {
			if ref != nil {
				out = append(out, ref)
			}
			continue
		}
		p.spellings(item, what, compatAliases)
		entries, ok := p.earlierMapping(item, what, pipelineFields, nil)
		if !ok {
			continue
		}
		ref := &PipelineRef{Pos: p.pos(resolve(item))}
		for _, e := range entries {
			switch e.key.Value {
			case "name", "id":
				ref.Name, _ = p.str(e.val, e.key.Value)
			case "depends_on":
				ref.DependsOn, _ = p.strList(e.val, "depends_on", true)
			}
		}
		out = append(out, ref)
	}
	return out
}

// componentList reads sources, processors or sinks.
func (p *parser) componentList(n *yaml.Node, role flow.Role, field string) []*Component {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(p.pos(n), fmt.Sprintf("write a list: `%s:` then `- name: ...` lines", field), "%s must be a list, got %s", field, kindName(n))
		return nil
	}
	var out []*Component
	for i, item := range n.Content {
		if c := p.component(item, role, fmt.Sprintf("%s[%d]", field, i)); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// component reads one component entry. what names it until its name is
// known.
func (p *parser) component(n *yaml.Node, role flow.Role, what string) *Component {
	n = resolve(n)
	c := &Component{Role: role, Positions: map[string]Pos{}}
	pc := &parsed{node: n}
	c.Pos = p.pos(n)
	pc.namePos = c.Pos
	// Learn the name first so every message can use it.
	if n != nil && n.Kind == yaml.MappingNode {
		var nameKey, second *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], resolve(n.Content[i+1])
			if k.Value != "name" && k.Value != "id" {
				continue
			}
			if nameKey != nil {
				if nameKey.Value != k.Value && second == nil {
					second = k
				}
				continue
			}
			nameKey = k
			if s, ok := p.str(v, k.Value); ok {
				c.Name = s
				pc.namePos = p.pos(v)
				if s == "" {
					p.errorf(p.pos(v), "give it a name such as `name: parse`", "%s has an empty name", what)
				}
			}
		}
		if c.Name != "" {
			what = fmt.Sprintf("%s %q", role, c.Name)
		} else if nameKey == nil && what != "dead_letter" {
			p.errorf(p.pos(n), "add `name: ...` (or `id:`); other components refer to it by name", "%s has no name", what)
		}
		if second != nil {
			p.errorf(p.pos(second), "`name` and `id` are the same field; keep one", "%s sets both `name` and `id`", what)
		}
	}
	p.spellings(n, what, compatAliases)
	entries, ok := p.earlierMapping(n, what, componentFields, legacyComponentMoved)
	if !ok {
		return nil
	}
	p.ctx = what + ": "
	defer func() { p.ctx = "" }()
	p.comps[c] = pc
	pc.suggested = p.suggested[n]
	if contains(pc.suggested, "inputs") {
		p.inputsBroken = true
	}
	if p.hasKey(n, "plugin") || p.hasKey(n, "params") {
		// An entry of the legacy shape in this form, reported as such: its
		// built-in and config were written as plugin and params, and it
		// relied on the legacy chaining rather than on `inputs`.
		pc.suggested = append(pc.suggested, "type", "config")
		if !p.hasKey(n, "inputs") {
			pc.inputsBad = true
		}
	}
	p.recordPositions(c.Positions, "", n, 0)
	if pos, ok := c.Positions["id"]; ok {
		c.Positions["name"] = pos
	}
	for _, e := range entries {
		k, v := e.key.Value, e.val
		switch k {
		case "name", "id":
			// read above
		case "type":
			pc.typeNode = v
			c.Type, _ = p.str(v, "type")
		case "image":
			c.Image, _ = p.str(v, "image")
		case "command":
			c.Command, _ = p.strList(v, "command", true)
		case "args":
			c.Args = p.words(v, "args")
		case "build":
			before := len(p.diags)
			if c.Build = p.words(v, "build"); len(c.Build) == 0 && len(p.diags) == before {
				p.errorf(p.pos(v), "write the command, e.g. build: go build -o bin/x ./cmd/x", "%sbuild is empty", p.ctx)
			}
		case "watch":
			c.Watch, _ = p.strList(v, "watch", true)
		case "inputs":
			if p.compat() && isEmptyValue(v) {
				// The earlier flowctl read `inputs: []` as no inputs:
				// sources carry it, and it does not stop chaining.
				continue
			}
			pc.inputsKey = e.key
			pc.hasInputs = true
			before := len(p.diags)
			c.Inputs = p.inputs(v)
			if len(p.diags) > before {
				pc.inputsBad, p.inputsBroken = true, true
			}
		case "input_event_types":
			c.InputEventTypes, _ = p.strList(v, "input_event_types", false)
		case "output_event_types":
			c.OutputEventTypes, _ = p.strList(v, "output_event_types", false)
		case "config":
			pc.configKey, pc.config = e.key, v
			// Read in validate: a built-in's config is checked against its
			// spec, any other is passed on as written.
			if !isNull(v) && resolve(v).Kind != yaml.MappingNode {
				p.errorf(p.pos(v), "write it as `key: value` lines", "config of %s must be a mapping, got %s", what, kindName(v))
			}
		case "env":
			c.Env, _ = p.strMap(v, "env")
		case "working_dir":
			c.WorkingDir, _ = p.str(v, "working_dir")
		case "buffer":
			if b, ok := p.integer(v, "buffer"); ok {
				if b < 1 {
					p.errorf(p.pos(v), "use 1 or more (default 1024)", "%sbuffer must be at least 1, got %d", p.ctx, b)
				}
				c.Buffer = b
			}
		case "parallelism":
			if b, ok := p.integer(v, "parallelism"); ok {
				if b < 1 {
					p.errorf(p.pos(v), "use 1 or more (default 1)", "%sparallelism must be at least 1, got %d", p.ctx, b)
				}
				c.Parallelism = b
			}
		case "ordered":
			if b, ok := p.boolean(v, "ordered"); ok {
				pc.ordered = &b
			}
		case "on_error":
			p.onError(c, pc, v)
		case "protocol":
			c.Protocol, _ = p.enum(v, "protocol", protocols)
		case "url":
			if s, ok := p.str(v, "url"); ok {
				if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					p.errorf(p.pos(v), "write a full address such as http://127.0.0.1:8080/events", "%surl %q is not an http(s) address", p.ctx, s)
				}
				c.URL = s
			}
		case "startup_timeout":
			c.StartupTimeout, _ = p.duration(v, "startup_timeout")
		case "stop_grace":
			c.StopGrace, _ = p.duration(v, "stop_grace")
		case "restart_policy":
			c.RestartPolicy, _ = p.enum(v, "restart_policy", restartPolicys)
		case "ports":
			c.Ports = p.ports(v)
		case "volumes":
			c.Volumes = p.volumes(v)
		case "secrets":
			c.Secrets = p.secrets(v)
		case "resources":
			c.Resources = p.resources(v)
		case "replicas":
			if r, ok := p.integer(v, "replicas"); ok {
				if r < 0 {
					p.errorf(p.pos(v), "use 0 or more", "%sreplicas must not be negative, got %d", p.ctx, r)
				}
				c.Replicas = r
			}
		case "health_check":
			c.HealthCheck, _ = p.str(v, "health_check")
		case "health_port":
			c.HealthPort, _ = p.port(v, "health_port")
		case "depends_on":
			c.DependsOn, _ = p.strList(v, "depends_on", true)
		}
	}
	return c
}

// words reads a field such as `args` or `build` as a list or as one
// string split like a shell would.
func (p *parser) words(n *yaml.Node, field string) []string {
	n = resolve(n)
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		words, bad, ok := splitShell(n.Value)
		if !ok {
			at := p.pos(n)
			if n.Style == yaml.DoubleQuotedStyle || n.Style == yaml.SingleQuotedStyle {
				at.Col++
			}
			if !strings.Contains(n.Value[:bad], "\n") && n.Style != yaml.LiteralStyle && n.Style != yaml.FoldedStyle {
				at.Col += utf8.RuneCountInString(n.Value[:bad])
			}
			p.errorf(at, fmt.Sprintf("close the quote, or write %s as a list: [a, \"b c\"]", field), "unterminated %c quote in %s", n.Value[bad], field)
			return nil
		}
		return words
	}
	out, _ := p.strList(n, field, false)
	return out
}

// inputs reads `inputs`: names or {from, types}.
func (p *parser) inputs(n *yaml.Node) []Input {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []Input{{From: n.Value, Pos: p.pos(n)}}
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(p.pos(n), "write a list of names: inputs: [parse]", "inputs must be a list, got %s", kindName(n))
		return nil
	}
	var out []Input
	for i, item := range n.Content {
		item = resolve(item)
		in := Input{Pos: p.pos(item)}
		field := fmt.Sprintf("inputs[%d]", i)
		if item.Kind == yaml.MappingNode {
			entries, _ := p.mapping(item, field, inputFields, nil)
			hasFrom := false
			for _, e := range entries {
				switch e.key.Value {
				case "from":
					hasFrom = true
					in.From, _ = p.str(e.val, field+".from")
					in.Pos = p.pos(resolve(e.val))
				case "types":
					in.Types, _ = p.strList(e.val, field+".types", true)
				}
			}
			if !hasFrom {
				p.errorf(p.pos(item), "add `from: NAME` naming the upstream component", "%s has no `from`", field)
				continue
			}
		} else if s, ok := p.str(item, field); ok {
			in.From = s
		} else {
			continue
		}
		out = append(out, in)
	}
	return out
}

// onError reads `on_error` as a policy name or a mapping.
func (p *parser) onError(c *Component, pc *parsed, n *yaml.Node) {
	n = resolve(n)
	pc.onError.node = n
	if n != nil && n.Kind == yaml.ScalarNode {
		if s, ok := p.enum(n, "on_error policy", onErrorPolicys); ok {
			c.OnError.Policy = s
			pc.onError.policy = true
			pc.onError.policyNode = n
		}
		return
	}
	entries, ok := p.mapping(n, "on_error", onErrorFields, nil)
	if !ok {
		return
	}
	for _, e := range entries {
		switch e.key.Value {
		case "policy":
			if s, ok := p.enum(e.val, "on_error policy", onErrorPolicys); ok {
				c.OnError.Policy, pc.onError.policy, pc.onError.policyNode = s, true, e.val
			}
		case "max_attempts":
			if v, ok := p.integer(e.val, "max_attempts"); ok {
				if v < 0 {
					p.errorf(p.pos(e.val), "use 0 to retry for ever (a sink's default), or 1 or more", "%smax_attempts must not be negative, got %d", p.ctx, v)
				}
				c.OnError.MaxAttempts, pc.onError.attempts = v, true
			}
		case "backoff":
			if d, ok := p.duration(e.val, "backoff"); ok {
				c.OnError.Backoff, pc.onError.backoff = d, true
			}
		case "max_backoff":
			if d, ok := p.duration(e.val, "max_backoff"); ok {
				c.OnError.MaxBackoff, pc.onError.maxB = d, true
			}
		case "then":
			if s, ok := p.enum(e.val, "on_error then", thenPolicys); ok {
				c.OnError.Then, pc.onError.then, pc.onError.thenNode = s, true, e.val
			}
		}
	}
}

// list walks a list of mappings with the given fields.
func (p *parser) list(n *yaml.Node, field string, known []string, each func(i int, entries []entry)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(p.pos(n), fmt.Sprintf("write a list: `%s:` then `- name: ...` lines", field), "%s must be a list, got %s", field, kindName(n))
		return
	}
	for i, item := range n.Content {
		what := fmt.Sprintf("%s[%d]", field, i)
		p.spellings(item, what, compatPathAliases)
		if entries, ok := p.earlierMapping(item, what, known, nil); ok {
			each(i, entries)
		}
	}
}

func (p *parser) ports(n *yaml.Node) []Port {
	var out []Port
	p.list(n, "ports", portFields, func(i int, entries []entry) {
		var port Port
		for _, e := range entries {
			f := fmt.Sprintf("ports[%d].%s", i, e.key.Value)
			switch e.key.Value {
			case "name":
				port.Name, _ = p.str(e.val, f)
			case "containerPort", "container_port":
				port.ContainerPort, _ = p.port(e.val, f)
			case "hostPort", "host_port":
				port.HostPort, _ = p.port(e.val, f)
			case "protocol":
				port.Protocol, _ = p.str(e.val, f)
			}
		}
		out = append(out, port)
	})
	return out
}

// port reads a TCP/UDP port number.
func (p *parser) port(n *yaml.Node, field string) (int, bool) {
	v, ok := p.integer(n, field)
	if ok && (v < 1 || v > 65535) {
		p.errorf(p.pos(n), "use a port from 1 to 65535", "%s%s %d is not a port", p.ctx, field, v)
		return v, false
	}
	return v, ok
}

func (p *parser) volumes(n *yaml.Node) []Volume {
	var out []Volume
	p.list(n, "volumes", volumeFields, func(i int, entries []entry) {
		var v Volume
		for _, e := range entries {
			f := fmt.Sprintf("volumes[%d].%s", i, e.key.Value)
			switch e.key.Value {
			case "name":
				v.Name, _ = p.str(e.val, f)
			case "mountPath", "mount_path":
				v.MountPath, _ = p.str(e.val, f)
			case "host_path":
				v.HostPath, _ = p.str(e.val, f)
			case "container_path":
				v.ContainerPath, _ = p.str(e.val, f)
			case "readonly", "read_only":
				v.ReadOnly, _ = p.boolean(e.val, f)
			}
		}
		out = append(out, v)
	})
	return out
}

func (p *parser) secrets(n *yaml.Node) []Secret {
	var out []Secret
	p.list(n, "secrets", secretFields, func(i int, entries []entry) {
		var s Secret
		for _, e := range entries {
			f := fmt.Sprintf("secrets[%d].%s", i, e.key.Value)
			switch e.key.Value {
			case "name":
				s.Name, _ = p.str(e.val, f)
			case "host_path":
				s.HostPath, _ = p.str(e.val, f)
			case "container_path":
				s.ContainerPath, _ = p.str(e.val, f)
			case "env":
				s.Env, _ = p.str(e.val, f)
			case "mode":
				s.Mode, _ = p.str(e.val, f)
			case "type":
				s.Type, _ = p.str(e.val, f)
			case "required":
				s.Required, _ = p.boolean(e.val, f)
			case "labels":
				s.Labels, _ = p.strMap(e.val, f)
			}
		}
		out = append(out, s)
	})
	return out
}

func (p *parser) resources(n *yaml.Node) Resources {
	var r Resources
	entries, ok := p.earlierMapping(n, "resources", resourceFields, nil)
	if !ok {
		return r
	}
	for _, e := range entries {
		var l ResourceList
		qs, ok := p.earlierMapping(e.val, "resources."+e.key.Value, quantityFields, nil)
		if !ok {
			continue
		}
		for _, q := range qs {
			f := "resources." + e.key.Value + "." + q.key.Value
			switch q.key.Value {
			case "cpu":
				l.CPU, _ = p.str(q.val, f)
			case "memory":
				l.Memory, _ = p.str(q.val, f)
			}
		}
		if e.key.Value == "requests" {
			r.Requests = l
		} else {
			r.Limits = l
		}
	}
	return r
}
