package spec

import "github.com/flowctl/flowctl/internal/componentref"

// componentRef takes c's `type:` as a component reference (the earlier
// flowctl's `type: stellar-live-source@v1.0.0`) when it is written as one:
// c then runs as a process whose binary is found when the pipeline starts,
// never here (validating needs no network). It reports whether Type was
// meant as a reference; a malformed one is reported at its position.
func (p *parser) componentRef(c *Component, at Pos) bool {
	if !componentref.IsRef(c.Type) {
		return false
	}
	if _, err := componentref.Parse(c.Type); err != nil {
		p.errorf(at, componentref.RefHint, "%s %q: bad component reference: %v", c.Role, c.Name, err)
		return true
	}
	c.Ref = c.Type
	c.Runner = RunProcess
	return true
}
