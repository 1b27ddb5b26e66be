package components

import (
	"context"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleProcessor,
		Name:    "filter",
		Summary: "Keeps the events for which a CEL condition is true and drops the others.",
		Fields: []flow.Field{{
			Name:        "expr",
			Type:        flow.TypeCEL,
			CELResult:   "bool",
			Required:    true,
			Description: "CEL condition over the event (data, id, type, source, subject, time, metadata); events where it is true pass unchanged.",
			Example:     "data.amount >= 5000",
		}},
		Examples: []string{
			`expr: "data.amount >= 5000"`,
			`expr: "has(data.user) && data.user.country == 'NL'"`,
		},
		Validate: validateWith(parseFilter),
		New: func(bc flow.BuildContext) (any, error) {
			return parseFilter(bc.Config)
		},
	})
}

// filterProcessor passes the events whose condition holds. A kept event is
// the very same *flow.Event, so its original bytes go out untouched.
type filterProcessor struct {
	cond *expr.Program
}

func parseFilter(cfg flow.Config) (*filterProcessor, error) {
	src, ok, err := cfgString(cfg, "expr")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fieldErr("expr", "is required", `add a condition, for example expr: "data.amount >= 5000"`)
	}
	cond, err := compileField("expr", src, expr.Bool)
	if err != nil {
		return nil, err
	}
	return &filterProcessor{cond: cond}, nil
}

// Process appends in when the condition is true. An evaluation error (a
// missing field, data that is not JSON) fails the event; the engine applies
// on_error. It is safe for concurrent use: the program is immutable.
func (f *filterProcessor) Process(_ context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	keep, err := f.cond.EvalBool(in)
	if err != nil {
		return out, err
	}
	if keep {
		out = append(out, in)
	}
	return out, nil
}

var _ flow.Processor = (*filterProcessor)(nil)
