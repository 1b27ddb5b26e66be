package graph

import (
	"testing"

	"github.com/flowctl/flowctl/internal/spec"
)

func TestSameSpec(t *testing.T) {
	base := func() *spec.Component {
		return &spec.Component{Name: "tag", Runner: spec.RunProcess, Command: []string{"bin/tag"},
			Build: []string{"go", "build", "-o", "bin/tag", "./tag"}, Watch: []string{"tag/*.go"}}
	}
	cases := []struct {
		name string
		edit func(c *spec.Component)
		same bool
	}{
		{"identical", func(c *spec.Component) {}, true},
		{"inputs and positions", func(c *spec.Component) {
			c.Inputs, c.Pos = []spec.Input{{From: "gen"}}, spec.Pos{Line: 9, Col: 3}
		}, true},
		{"watch globs", func(c *spec.Component) { c.Watch = []string{"tag/**/*.go"} }, true},
		{"build command", func(c *spec.Component) { c.Build = []string{"make", "tag"} }, true},
		{"command", func(c *spec.Component) { c.Command = []string{"bin/tag2"} }, false},
		{"env", func(c *spec.Component) { c.Env = map[string]string{"A": "1"} }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := base()
			c.edit(b)
			if got := SameSpec(base(), b); got != c.same {
				t.Errorf("SameSpec = %v, want %v", got, c.same)
			}
		})
	}
}
