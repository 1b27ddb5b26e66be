//go:build !(duckdb && cgo)

package components

import "github.com/flowctl/flowctl/internal/flow"

// Without the duckdb tag (or without cgo) the sink is described but
// cannot be used: validating a pipeline that names it says how to build a
// flowctl that has it.
func init() {
	builtins = append(builtins, duckdbSpec(
		func(flow.Config) error { return errNoDuckDB },
		func(flow.BuildContext) (any, error) { return nil, errNoDuckDB },
	))
}
