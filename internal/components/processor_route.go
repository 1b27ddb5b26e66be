package components

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleProcessor,
		Name:    "route",
		Summary: "Sets each event's type from declared cases, so downstream inputs can select by type.",
		Fields: []flow.Field{
			{
				Name:        "cases",
				Type:        flow.TypeArray,
				Required:    true,
				Description: "Checked in order; the first case whose condition is true gives the event its type.",
				Items: &flow.Field{Type: flow.TypeObject, Fields: []flow.Field{
					{Name: "type", Type: flow.TypeString, Required: true, Description: "Event type given to matching events.", Example: "large"},
					{Name: "when", Type: flow.TypeCEL, CELResult: "bool", Required: true, Description: "CEL condition over the event.", Example: "data.amount >= 5000"},
				}},
				Example: []any{map[string]any{"type": "large", "when": "data.amount >= 5000"}},
			},
			{
				Name:        "default",
				Type:        flow.TypeString,
				Description: "Type of events that match no case. Without it such events are dropped (counted as filtered).",
				Example:     "small",
			},
		},
		Examples: []string{
			"cases:\n  - type: large\n    when: \"data.amount >= 5000\"\n  - type: refund\n    when: \"data.kind == 'refund'\"\ndefault: other",
		},
		Validate:    validateWith(parseRoute),
		OutputTypes: routeOutputTypes,
		New: func(bc flow.BuildContext) (any, error) {
			return parseRoute(bc.Config)
		},
	})
}

// routeProcessor retypes events by the first matching case. The output
// event keeps the input's data bytes; only the type changes.
type routeProcessor struct {
	cases []routeCase
	def   string // "" drops unmatched events
}

type routeCase struct {
	typ  string
	when *expr.Program
}

func parseRoute(cfg flow.Config) (*routeProcessor, error) {
	var errs []error
	r := &routeProcessor{}
	cases, err := cfgList(cfg, "cases")
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil && len(cases) == 0 {
		errs = append(errs, fieldErr("cases", "needs at least one case", `add - {type: large, when: "data.amount >= 5000"}`))
	}
	for i, c := range cases {
		path := fmt.Sprintf("cases[%d]", i)
		m, ok := c.(map[string]any)
		if !ok {
			if fc, isCfg := c.(flow.Config); isCfg {
				m, ok = fc, true
			}
		}
		if !ok {
			errs = append(errs, fieldErr(path, fmt.Sprintf("must be a mapping with type and when, got %T", c), `write - {type: large, when: "data.amount >= 5000"}`))
			continue
		}
		typ, _ := m["type"].(string)
		if typ == "" {
			errs = append(errs, fieldErr(path+".type", "is required", "name the event type matching events get, for example type: large"))
		}
		src, ok := m["when"].(string)
		if !ok {
			errs = append(errs, fieldErr(path+".when", "is required", `add a condition, for example when: "data.amount >= 5000"`))
			continue
		}
		when, err := compileField(path+".when", src, expr.Bool)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.cases = append(r.cases, routeCase{typ: typ, when: when})
	}
	def, _, err := cfgString(cfg, "default")
	if err != nil {
		errs = append(errs, err)
	}
	r.def = def
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// routeOutputTypes declares the case types and the default, in order and
// without repeats: route's output types are known from its config alone.
func routeOutputTypes(_ string, cfg flow.Config, _ []string) ([]string, bool) {
	var out []string
	add := func(t string) {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	cases, _ := cfgList(cfg, "cases")
	for _, c := range cases {
		switch m := c.(type) {
		case map[string]any:
			t, _ := m["type"].(string)
			add(t)
		case flow.Config:
			t, _ := m["type"].(string)
			add(t)
		}
	}
	def, _, _ := cfgString(cfg, "default")
	add(def)
	return out, true
}

// Process appends the event retyped by the first case whose condition is
// true, or by default; with no match and no default the event is dropped
// (nothing appended, which the engine counts as filtered). An error in a
// condition fails the event. Safe for concurrent use.
func (r *routeProcessor) Process(_ context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	typ := r.def
	for _, c := range r.cases {
		ok, err := c.when.EvalBool(in)
		if err != nil {
			return out, fmt.Errorf("case %s: %w", c.typ, err)
		}
		if ok {
			typ = c.typ
			break
		}
	}
	switch {
	case typ == "":
		return out, nil
	case typ == in.Type:
		// Already the right type: events are immutable, pass it as is.
		return append(out, in), nil
	}
	return append(out, in.WithType(typ)), nil
}

var _ flow.Processor = (*routeProcessor)(nil)
