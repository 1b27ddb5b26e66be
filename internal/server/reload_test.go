package server

import (
	"strings"
	"testing"
)

// TestReloadable: which revisions a running child may apply in place.
func TestReloadable(t *testing.T) {
	base := parseSpec("", []byte(tickPipeline))
	cases := []struct {
		name    string
		next    string
		dir     string
		ok      bool
		because string
	}{
		{"filter condition", strings.Replace(tickPipeline, `expr: "true"`, `expr: "data.n == 1"`, 1), "/d", true, ""},
		{"on_error of the sink", tickPipeline + "    on_error: drop\n", "/d", true, ""},
		{"same file", tickPipeline, "/d", true, ""},
		{"another directory", tickPipeline, "/e", false, "another directory"},
		{"source config", strings.Replace(tickPipeline, "rate: 100", "rate: 5", 1), "/d", true, ""},
		{"new sink", tickPipeline + "  - {name: more, type: drop, inputs: [gen]}\n", "/d", true, ""},
		{"parallelism", strings.Replace(tickPipeline, "    inputs: [gen]\n", "    inputs: [gen]\n    parallelism: 2\n", 1), "/d", true, ""},
		{"new dead-letter sink", tickPipeline + "dead_letter: {name: failed, type: drop}\n", "/d", false, "dead-letter sink was added"},
		{"invalid", "name: tick\n", "/d", false, "does not validate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := parseSpec("", []byte(tc.next))
			if next.diags.HasErrors() {
				next.pl = nil
			}
			ok, why := reloadable(base, next, "/d", tc.dir)
			if ok != tc.ok || !strings.Contains(why, tc.because) {
				t.Fatalf("reloadable = %v (%s), want %v (%s)", ok, why, tc.ok, tc.because)
			}
		})
	}
}
