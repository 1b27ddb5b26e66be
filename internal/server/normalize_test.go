package server

import (
	"slices"
	"strings"
	"testing"

	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
)

const basePipeline = `name: p
sources:
  - name: gen
    type: generate
    config: {count: 3, data: {kind: x}}
processors:
  - name: keep
    type: filter
    inputs: [gen]
    config: {expr: "true"}
sinks:
  - name: out
    type: file
    inputs: [keep]
    config: {path: out.jsonl}
`

func TestContentHash(t *testing.T) {
	base := parseSpec("a.yaml", []byte(basePipeline))
	if base.hash == "" {
		t.Fatalf("base does not parse: %v", base.diags)
	}
	cases := []struct {
		name string
		text string
		dir  string
		same bool
	}{
		{name: "identical", text: basePipeline, same: true},
		{name: "comments and blank lines", text: "# a comment\n\n" + strings.ReplaceAll(basePipeline, "\n", "  # note\n"), same: true},
		{name: "flow style config", text: strings.Replace(basePipeline, "config: {path: out.jsonl}", "config:\n      path: out.jsonl", 1), same: true},
		{name: "default written out", text: strings.Replace(basePipeline, "inputs: [gen]", "inputs: [gen]\n    parallelism: 1", 1), same: true},
		{name: "config changed", text: strings.Replace(basePipeline, "count: 3", "count: 4", 1)},
		{name: "component added", text: basePipeline + "  - name: more\n    type: drop\n    inputs: [gen]\n"},
		{name: "other directory", text: basePipeline, dir: "/elsewhere"},
		{name: "literal ${ kept literal", text: strings.Replace(basePipeline, "kind: x", `kind: "${NOT_A_VAR}"`, 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := parseSpec("b.yaml", []byte(tc.text))
			if p.diags.HasErrors() {
				t.Fatalf("does not parse: %v", p.diags)
			}
			got := contentHash(p.canon, tc.dir) == base.hash
			if got != tc.same {
				t.Errorf("same hash = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	old := parseSpec("", []byte(basePipeline))
	cases := []struct {
		name string
		text string
		old  *parsed
		want map[string]controlv1.PlanAction
		// fields lists, for CHANGE, the fields that must be named.
		fields map[string][]string
	}{
		{name: "new pipeline", text: basePipeline, want: map[string]controlv1.PlanAction{
			"gen": controlv1.PlanAction_PLAN_ACTION_START, "keep": controlv1.PlanAction_PLAN_ACTION_START, "out": controlv1.PlanAction_PLAN_ACTION_START}},
		{name: "unchanged", text: basePipeline, old: old, want: map[string]controlv1.PlanAction{
			"gen": controlv1.PlanAction_PLAN_ACTION_UNCHANGED, "keep": controlv1.PlanAction_PLAN_ACTION_UNCHANGED, "out": controlv1.PlanAction_PLAN_ACTION_UNCHANGED}},
		{name: "config of one", text: strings.Replace(basePipeline, `expr: "true"`, `expr: "false"`, 1), old: old,
			want: map[string]controlv1.PlanAction{
				"gen": controlv1.PlanAction_PLAN_ACTION_UNCHANGED, "keep": controlv1.PlanAction_PLAN_ACTION_CHANGE, "out": controlv1.PlanAction_PLAN_ACTION_UNCHANGED},
			fields: map[string][]string{"keep": {"config"}}},
		{name: "processor removed, sink rewired", text: strings.Replace(strings.Replace(basePipeline, "inputs: [keep]", "inputs: [gen]", 1),
			"processors:\n  - name: keep\n    type: filter\n    inputs: [gen]\n    config: {expr: \"true\"}\n", "", 1), old: old,
			want: map[string]controlv1.PlanAction{
				"gen": controlv1.PlanAction_PLAN_ACTION_UNCHANGED, "keep": controlv1.PlanAction_PLAN_ACTION_STOP, "out": controlv1.PlanAction_PLAN_ACTION_CHANGE},
			fields: map[string][]string{"out": {"inputs"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := parseSpec("", []byte(tc.text))
			if next.diags.HasErrors() {
				t.Fatalf("does not parse: %v", next.diags)
			}
			items := plan(next, tc.old)
			if len(items) != len(tc.want) {
				t.Fatalf("plan = %v, want %d items", items, len(tc.want))
			}
			for _, it := range items {
				if it.GetAction() != tc.want[it.GetComponent()] {
					t.Errorf("%s: %v, want %v", it.GetComponent(), it.GetAction(), tc.want[it.GetComponent()])
				}
				for _, f := range tc.fields[it.GetComponent()] {
					if !slices.Contains(it.GetFields(), f) {
						t.Errorf("%s: fields %v lack %q", it.GetComponent(), it.GetFields(), f)
					}
				}
			}
		})
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"payments", true}, {"a", true}, {"w1.v2_x-y", true},
		{"", false}, {"Payments", false}, {"../etc", false}, {"-x", false}, {"a/b", false}, {strings.Repeat("a", 64), false},
	} {
		if got := validName(tc.name) == nil; got != tc.ok {
			t.Errorf("validName(%q) ok = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
