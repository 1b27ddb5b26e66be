package spec

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// Defaults of DESIGN.md's field table.
const (
	DefaultBuffer         = 1024
	DefaultParallelism    = 1
	DefaultProtocol       = "auto"
	DefaultStartupTimeout = 10 * time.Second
	DefaultStopGrace      = 10 * time.Second
	DefaultRestartPolicy  = "on-failure"
	// DefaultMaxAttempts bounds a processor's retries; a sink retries for
	// ever by default (DefaultSinkMaxAttempts, 0 = no limit): it waits for
	// its endpoint while backpressure holds the sources.
	DefaultMaxAttempts     = 3
	DefaultSinkMaxAttempts = 0
	DefaultBackoff         = 100 * time.Millisecond
	DefaultMaxBackoff      = 10 * time.Second
)

// validate runs every check that needs the whole pipeline, derives each
// component's Runner and applies the defaults.
func (p *parser) validate(pl *Pipeline) {
	all := pl.Components()
	if pl.DeadLetter != nil {
		all = append(all, pl.DeadLetter)
	}
	all = append(all, pipelineComponents(pl)...)
	specs := map[*Component]*flow.ComponentSpec{}
	configOK := map[*Component]bool{}
	for _, c := range all {
		pc := p.comps[c]
		if s := p.runner(c, pc); s != nil {
			specs[c] = s
			configOK[c] = p.checkConfig(c, pc, s)
		} else if m, ok := p.value(pc.config, 0).(map[string]any); ok {
			c.Config = m
		}
		p.defaults(pl, c, pc)
		p.buildFields(c)
	}
	p.names(pl, all)
	p.wiring(pl)
	p.cycles(pl)
	p.selfMoving(pl)
	p.typeSelections(pl, specs, configOK)
	p.pipelineDeps(pl)
	p.pipelineEntries(pl)
}

// runner derives what runs c (DESIGN.md's rule) and returns the built-in's
// spec when it is one.
func (p *parser) runner(c *Component, pc *parsed) *flow.ComponentSpec {
	what := fmt.Sprintf("%s %q", c.Role, c.Name)
	hasType, hasImage, hasCmd := c.Type != "", c.Image != "", len(c.Command) > 0
	typeAt := pc.namePos
	if pc.typeNode != nil {
		typeAt = p.pos(pc.typeNode)
	}
	var spec *flow.ComponentSpec
	if hasType && p.opts.Registry != nil {
		spec, _ = p.opts.Registry.Lookup(c.Role, c.Type)
	}
	switch {
	case hasType && (hasImage || hasCmd) && p.envelope:
		// The earlier format's free label (`type: processor`): kept as is.
	case hasType && (hasImage || hasCmd):
		other := "image"
		if !hasImage {
			other = "command"
		}
		if spec != nil {
			p.errorf(typeAt, fmt.Sprintf("remove `%s:` to use the built-in, or remove `type:` to run your own %s", other, map[bool]string{true: "container", false: "program"}[hasImage]),
				"%s sets both type %q (a built-in) and %s", what, c.Type, other)
		} else {
			p.errorf(typeAt, fmt.Sprintf("remove `type:`; in this form `type` names a built-in, and `%s` already says what runs", other),
				"%s sets type %q next to %s", what, c.Type, other)
		}
		return nil
	case hasType:
		if spec == nil {
			if p.componentRef(c, typeAt) {
				return nil
			}
			p.unknownBuiltin(c, typeAt)
			return nil
		}
		c.Runner = RunBuiltin
		return spec
	}
	switch {
	case hasImage:
		c.Runner = RunContainer
	case hasCmd:
		c.Runner = RunProcess
	case c.URL != "":
		c.Runner = RunRemote
		if c.Protocol != "" && c.Protocol != "auto" && c.Protocol != "http" {
			at, _ := lookupPos(c.Positions, "protocol")
			p.errorf(at, "set `protocol: http`, or add `command:`/`image:` to start it", "%s is reached at its url, which needs protocol http, not %q", what, c.Protocol)
		}
	case c.Positions["type"] != (Pos{}) || c.Positions["image"] != (Pos{}) || c.Positions["command"] != (Pos{}) ||
		contains(pc.suggested, "type") || contains(pc.suggested, "image") || contains(pc.suggested, "command"):
		// Written but unreadable: that mistake was reported already.
	default:
		var names []string
		if p.opts.Registry != nil {
			names = p.opts.Registry.Names(c.Role)
		}
		hint := "set `type:` to a built-in, `command:` to run a program, or `image:` to run a container"
		if len(names) > 0 {
			hint = fmt.Sprintf("set `type:` to a built-in %s (%s), `command:` to run a program, or `image:` to run a container", c.Role, strings.Join(names, ", "))
		}
		if p.legacy {
			key := "type"
			if c.Role == flow.RoleProcessor {
				key = "plugin"
			}
			hint = fmt.Sprintf("add `%s:` naming a built-in %s (%s)", key, c.Role, strings.Join(names, ", "))
		}
		p.errorf(pc.namePos, hint, "%s does not say what runs it", what)
	}
	return nil
}

// unknownBuiltin reports a `type:` that names no built-in of the role.
func (p *parser) unknownBuiltin(c *Component, at Pos) {
	var names []string
	if p.opts.Registry != nil {
		names = p.opts.Registry.Names(c.Role)
	}
	var hint string
	if near, ok := nearest(c.Type, names); ok {
		hint = fmt.Sprintf("did you mean %q? ", near)
	} else if p.opts.Registry != nil {
		for _, r := range []flow.Role{flow.RoleSource, flow.RoleProcessor, flow.RoleSink} {
			if _, err := p.opts.Registry.Lookup(r, c.Type); err == nil && r != c.Role {
				hint = fmt.Sprintf("%q is a built-in %s, not a %s; ", c.Type, r, c.Role)
			}
		}
	}
	switch {
	case len(names) > 0:
		hint += fmt.Sprintf("built-in %ss: %s", c.Role, strings.Join(names, ", "))
	default:
		hint += "no built-in " + string(c.Role) + " is known; use `command:` or `image:` to run your own"
	}
	if p.envelope && len(names) > 0 {
		hint += "; or add `image:` or `command:` to run your own (then `type` is a free label)"
	}
	p.errorf(at, hint, "unknown built-in %s %q", c.Role, c.Type)
}

// defaults fills in what the file left out (DESIGN.md's field table).
func (p *parser) defaults(pl *Pipeline, c *Component, pc *parsed) {
	what := fmt.Sprintf("%s %q", c.Role, c.Name)
	_, set := c.Positions["buffer"]
	if !set {
		c.Buffer = DefaultBuffer
	}
	if _, set := c.Positions["parallelism"]; !set {
		c.Parallelism = DefaultParallelism
	}
	c.Ordered = pc.ordered == nil || *pc.ordered
	if c.Protocol == "" {
		c.Protocol = DefaultProtocol
	}
	if _, set := c.Positions["startup_timeout"]; !set {
		c.StartupTimeout = DefaultStartupTimeout
	}
	if _, set := c.Positions["stop_grace"]; !set {
		c.StopGrace = DefaultStopGrace
	}
	if c.RestartPolicy == "" {
		c.RestartPolicy = DefaultRestartPolicy
	}
	for i := range c.Inputs {
		if len(c.Inputs[i].Types) == 0 && len(c.InputEventTypes) > 0 {
			c.Inputs[i].Types = append([]string(nil), c.InputEventTypes...)
		}
	}

	// on_error: sinks retry (for ever unless max_attempts says) then stop;
	// processors, and sources for the events they reject (a malformed
	// line), go to the dead letter sink when there is one, else drop.
	oe, set2 := &c.OnError, pc.onError
	afterRetry := OnErrorStop
	if c.Role == flow.RoleProcessor || c.Role == flow.RoleSource {
		afterRetry = OnErrorDrop
		if pl.DeadLetter != nil {
			afterRetry = OnErrorDeadLetter
		}
	}
	if !set2.policy {
		switch {
		case set2.then || set2.attempts:
			oe.Policy = OnErrorRetry
		case c.Role == flow.RoleSink:
			oe.Policy = OnErrorRetry
		case c.Role == flow.RoleProcessor || c.Role == flow.RoleSource:
			oe.Policy = afterRetry
		default:
			oe.Policy = OnErrorStop
		}
	}
	if oe.Policy == OnErrorRetry && !set2.then {
		oe.Then = afterRetry
	}
	if set2.then && oe.Policy != OnErrorRetry {
		p.errorf(p.pos(set2.thenNode), "set `policy: retry`, or remove `then`", "on_error of %s: `then` applies only after retries, but the policy is %s", what, oe.Policy)
	}
	if !set2.attempts {
		oe.MaxAttempts = DefaultMaxAttempts
		if c.Role == flow.RoleSink {
			oe.MaxAttempts = DefaultSinkMaxAttempts
		}
	}
	if !set2.backoff {
		oe.Backoff = DefaultBackoff
	}
	if !set2.maxB {
		oe.MaxBackoff = DefaultMaxBackoff
	}
	if oe.MaxBackoff < oe.Backoff {
		at, _ := lookupPos(c.Positions, "on_error.max_backoff")
		if !set2.maxB {
			at, _ = lookupPos(c.Positions, "on_error.backoff")
		}
		p.errorf(at, fmt.Sprintf("raise max_backoff to at least %s", oe.Backoff), "on_error of %s: max_backoff %s is less than backoff %s", what, oe.MaxBackoff, oe.Backoff)
	}
	usesDL := func(s string) bool { return s == OnErrorDeadLetter }
	at := func() Pos {
		if set2.thenNode != nil && usesDL(oe.Then) {
			return p.pos(set2.thenNode)
		}
		if set2.policyNode != nil {
			return p.pos(set2.policyNode)
		}
		return p.pos(set2.node)
	}
	if (set2.policy && usesDL(oe.Policy)) || (set2.then && usesDL(oe.Then)) {
		switch {
		case pc.deadLet:
			p.errorf(at(), "use retry, drop or stop", "the dead_letter sink cannot send its own failures to itself")
		case pl.DeadLetter == nil:
			p.errorf(at(), "add a `dead_letter:` sink at the top level, or choose drop or stop", "on_error of %s sends failed events to the dead letter sink, but the pipeline has none", what)
		}
	}
	if pc.deadLet && oe.Then == OnErrorDeadLetter {
		oe.Then = OnErrorStop
	}
}

// names reports empty and duplicate component names.
func (p *parser) names(pl *Pipeline, all []*Component) {
	first := map[string]*Component{}
	for _, c := range all {
		if c.Name == "" {
			continue
		}
		if f, dup := first[c.Name]; dup {
			p.errorf(p.comps[c].namePos, fmt.Sprintf("the first is at line %d; give each component its own name", p.comps[f].namePos.Line),
				"duplicate component name %q", c.Name)
			continue
		}
		first[c.Name] = c
	}
}

// wiring checks inputs: sources have none, processors and sinks have some,
// each names an existing component that emits events, and nothing is a
// dead end.
func (p *parser) wiring(pl *Pipeline) {
	byName := map[string]*Component{}
	var emitters []string
	for _, c := range pl.Components() {
		if _, dup := byName[c.Name]; !dup && c.Name != "" {
			byName[c.Name] = c
			if c.Role != flow.RoleSink {
				emitters = append(emitters, c.Name)
			}
		}
	}
	if dl := pl.DeadLetter; dl != nil {
		if _, dup := byName[dl.Name]; !dup {
			byName[dl.Name] = dl
		}
		if pc := p.comps[dl]; pc.hasInputs {
			p.errorf(p.pos(pc.inputsKey), "remove `inputs`; every failed event goes to the dead letter sink", "the dead_letter sink takes no inputs")
		}
	}
	read := map[string]bool{}
	ordered := pl.Components()
	sort.SliceStable(ordered, func(i, j int) bool { return before(ordered[i].Pos, ordered[j].Pos) })
	for _, c := range pl.Components() {
		pc := p.comps[c]
		what := fmt.Sprintf("%s %q", c.Role, c.Name)
		switch {
		case c.Role == flow.RoleSource && pc.hasInputs:
			p.errorf(p.pos(pc.inputsKey), "remove `inputs`; a source reads from outside the pipeline (make it a processor to read from another component)", "source %q cannot have inputs", c.Name)
			continue
		case c.Role != flow.RoleSource && len(c.Inputs) == 0:
			p.inputsBroken = true
			if !pc.inputsBad && !contains(pc.suggested, "inputs") {
				p.errorf(pc.namePos, p.aboveHint(c, ordered), "%s has no inputs", what)
			}
			continue
		}
		seen := map[string]bool{}
		for _, in := range c.Inputs {
			up, ok := byName[in.From]
			switch {
			case !ok:
				p.inputsBroken = true
				hint := didYouMean(in.From, emitters, "components it can read from")
				if hint == "" {
					// Nothing to suggest (no source or processor at all):
					// the error must still say what to do.
					hint = fmt.Sprintf("declare a source or processor named %q (the pipeline has none to read from)", in.From)
				}
				p.errorf(in.Pos, hint, "%s reads from unknown component %q", what, in.From)
			case up.Role == flow.RoleSink:
				p.errorf(in.Pos, "read from a source or processor; a sink emits nothing", "%s reads from %q, which is a sink", what, in.From)
			case seen[in.From]:
				p.errorf(in.Pos, "list each input once; merge their types into one `types` list", "%s reads from %q twice", what, in.From)
			}
			seen[in.From] = true
			read[in.From] = true
		}
	}
	if p.inputsBroken {
		return // dead ends would only echo the broken inputs
	}
	for _, c := range pl.Components() {
		if c.Role != flow.RoleSink && c.Name != "" && !read[c.Name] && byName[c.Name] == c {
			p.warnf(p.comps[c].namePos, fmt.Sprintf("add %q to the inputs of a processor or sink, or remove it", c.Name),
				"nothing reads the output of %s %q", c.Role, c.Name)
		}
	}
}

// aboveHint suggests reading from the nearest emitting component above c.
func (p *parser) aboveHint(c *Component, ordered []*Component) string {
	var above *Component
	for _, o := range ordered {
		if !before(o.Pos, c.Pos) {
			break
		}
		if o.Role != flow.RoleSink && o.Name != "" {
			above = o
		}
	}
	if above == nil {
		return "add `inputs: [NAME]` naming the source it reads from"
	}
	return fmt.Sprintf("add `inputs: [%s]`", above.Name)
}

func before(a, b Pos) bool {
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	return a.Col < b.Col
}

// cycles reports each loop among the components once, at the input that
// closes it, with its path in the direction events flow.
func (p *parser) cycles(pl *Pipeline) {
	comps := pl.Components()
	byName := map[string]*Component{}
	for _, c := range comps {
		if _, dup := byName[c.Name]; !dup {
			byName[c.Name] = c
		}
	}
	// Tarjan's strongly connected components over edges input → component.
	index := map[*Component]int{}
	low := map[*Component]int{}
	onStack := map[*Component]bool{}
	var stack []*Component
	var sccs [][]*Component
	next := 0
	var strong func(c *Component, depth int)
	strong = func(c *Component, depth int) {
		index[c], low[c] = next, next
		next++
		stack = append(stack, c)
		onStack[c] = true
		for _, in := range c.Inputs {
			up := byName[in.From]
			if up == nil || depth > 10000 {
				continue
			}
			if _, seen := index[up]; !seen {
				strong(up, depth+1)
				low[c] = min(low[c], low[up])
			} else if onStack[up] {
				low[c] = min(low[c], index[up])
			}
		}
		if low[c] == index[c] {
			var scc []*Component
			for {
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[top] = false
				scc = append(scc, top)
				if top == c {
					break
				}
			}
			sccs = append(sccs, scc)
		}
	}
	for _, c := range comps {
		if _, seen := index[c]; !seen {
			strong(c, 0)
		}
	}
	for _, scc := range sccs {
		in := map[*Component]bool{}
		for _, c := range scc {
			in[c] = true
		}
		start := scc[0]
		for _, c := range scc {
			if before(c.Pos, start.Pos) {
				start = c
			}
		}
		if len(scc) == 1 && !readsFrom(start, start.Name) {
			continue
		}
		// Shortest walk upstream from start, inside the loop, back to
		// start: start ← u1 ← … ← uk ← start. Events flow the other way:
		// start → uk → … → u1 → start, and the loop closes at start's
		// input u1.
		prev := map[*Component]*Component{}
		queue := []*Component{start}
		var last *Component
		for len(queue) > 0 && last == nil {
			cur := queue[0]
			queue = queue[1:]
			for _, inp := range cur.Inputs {
				up := byName[inp.From]
				if up == start {
					last = cur
					break
				}
				if up != nil && in[up] && prev[up] == nil && up != start {
					prev[up] = cur
					queue = append(queue, up)
				}
			}
		}
		if last == nil {
			continue
		}
		upstream := []*Component{last} // uk … u1 then start
		for c := last; c != start; c = prev[c] {
			upstream = append(upstream, prev[c])
		}
		// upstream is [uk, …, u1, start]; u1 is the one start reads.
		u1 := start
		if len(upstream) >= 2 {
			u1 = upstream[len(upstream)-2]
		}
		var closing Input
		for _, inp := range start.Inputs {
			if byName[inp.From] == u1 {
				closing = inp
				break
			}
		}
		flow := []string{start.Name}
		for _, c := range upstream {
			flow = append(flow, c.Name)
		}
		if last == start {
			flow = []string{start.Name, start.Name}
		}
		p.errorf(closing.Pos, "remove one of these inputs; events must flow one way, from sources to sinks",
			"cycle: %s", strings.Join(flow, " → "))
	}
}

// readsFrom reports whether c lists name among its inputs.
func readsFrom(c *Component, name string) bool {
	for _, in := range c.Inputs {
		if in.From == name {
			return true
		}
	}
	return false
}

// typeSelections warns about input type selections that can never match
// what the upstream component emits, when that is known statically.
func (p *parser) typeSelections(pl *Pipeline, specs map[*Component]*flow.ComponentSpec, configOK map[*Component]bool) {
	byName := map[string]*Component{}
	for _, c := range pl.Components() {
		if _, dup := byName[c.Name]; !dup {
			byName[c.Name] = c
		}
	}
	type result struct {
		types []string
		known bool
	}
	memo := map[*Component]*result{}
	var out func(c *Component) result
	out = func(c *Component) result {
		if r, ok := memo[c]; ok {
			if r == nil {
				return result{} // a loop: unknown
			}
			return *r
		}
		memo[c] = nil
		r := result{}
		spec := specs[c]
		switch {
		case spec != nil && configOK[c]:
			var inTypes []string
			inKnown := len(c.Inputs) > 0
			for _, in := range c.Inputs {
				if len(in.Types) > 0 {
					inTypes = append(inTypes, in.Types...)
					continue
				}
				up := byName[in.From]
				if up == nil {
					inKnown = false
					continue
				}
				u := out(up)
				inKnown = inKnown && u.known
				inTypes = append(inTypes, u.types...)
			}
			if !inKnown {
				inTypes = nil
			}
			inTypes = dedupe(inTypes)
			if spec.OutputTypes != nil {
				types, ok := safeOutputTypes(spec.OutputTypes, c.Name, c.Config, inTypes)
				r = result{types: dedupe(types), known: ok}
			} else if inKnown {
				r = result{types: inTypes, known: true}
			}
		case spec == nil && len(c.OutputEventTypes) > 0:
			r = result{types: dedupe(c.OutputEventTypes), known: true}
		}
		memo[c] = &r
		return r
	}
	for _, c := range pl.Components() {
		for i, in := range c.Inputs {
			if len(in.Types) == 0 {
				continue
			}
			up := byName[in.From]
			if up == nil || up.Role == flow.RoleSink {
				continue
			}
			u := out(up)
			if !u.known {
				continue
			}
			for j, t := range in.Types {
				if contains(u.types, t) {
					continue
				}
				at, ok := c.Positions[fmt.Sprintf("inputs[%d].types[%d]", i, j)]
				if !ok {
					at, ok = c.Positions[fmt.Sprintf("input_event_types[%d]", j)]
				}
				if !ok {
					at = in.Pos
				}
				emits := "nothing"
				if len(u.types) > 0 {
					emits = `"` + strings.Join(u.types, `", "`) + `"`
				}
				p.warnf(at, "select one of the types it emits, or remove the selection",
					"%s %q selects type %q from %q, which only emits %s", c.Role, c.Name, t, in.From, emits)
			}
		}
	}
}

// safeOutputTypes runs an OutputTypes hook; a panic counts as "cannot be
// known", so one faulty spec only costs a warning that is not given.
func safeOutputTypes(hook func(string, flow.Config, []string) ([]string, bool), name string, cfg flow.Config, in []string) (types []string, ok bool) {
	defer func() {
		if recover() != nil {
			types, ok = nil, false
		}
	}()
	return hook(name, cfg, in)
}

func dedupe(in []string) []string {
	if in == nil {
		return nil
	}
	seen := map[string]bool{}
	out := []string{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// pipelineDeps checks that depends_on names listed pipelines.
func (p *parser) pipelineDeps(pl *Pipeline) {
	var names []string
	for _, r := range pl.Pipelines {
		names = append(names, r.Name)
	}
	for _, r := range pl.Pipelines {
		for _, d := range r.DependsOn {
			if !contains(names, d) {
				p.errorf(r.Pos, didYouMean(d, names, "known pipelines"), "pipeline %q depends on unknown pipeline %q", r.Name, d)
			}
		}
	}
}

// buildFields checks `build` and `watch`: a build makes the program a
// local process runs, and is run again when one of the watched sources
// changes, so each needs the other and both need `command`.
func (p *parser) buildFields(c *Component) {
	what := fmt.Sprintf("%s %q", c.Role, c.Name)
	buildAt, hasBuild := lookupPos(c.Positions, "build")
	watchAt, hasWatch := lookupPos(c.Positions, "watch")
	switch {
	case hasBuild && c.Runner != RunProcess && c.Runner != "":
		p.errorf(buildAt, "remove `build:`; it makes the program of a component run by `command:`", "%s has build but is not run by a local command", what)
	case hasBuild && !hasWatch:
		p.errorf(buildAt, "add the sources it builds, e.g. watch: [\"cmd/x/**/*.go\"] (relative to the pipeline's directory)", "%s has build but no watch", what)
	case hasWatch && !hasBuild:
		p.errorf(watchAt, "add the command that builds the program, e.g. build: go build -o bin/x ./cmd/x, or remove `watch:` (flowctl run --watch already restarts a component whose program or script changes)", "%s has watch but no build", what)
	}
	for i, g := range c.Watch {
		at, _ := lookupPos(c.Positions, fmt.Sprintf("watch[%d]", i))
		if err := ValidGlob(g); err != nil {
			p.errorf(at, "write a glob such as src/*.go or **/*.py", "%s: watch %q: %v", what, g, err)
		}
	}
}
