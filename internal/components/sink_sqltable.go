package components

import (
	"fmt"
	"slices"
	"strings"

	"github.com/flowctl/flowctl/internal/flow"
)

// Shared by the table sinks (postgres, duckdb): how a sink without
// config.columns learns its columns, and how create picks a column's type.

// sqlInferColumns returns the fields of the first object in objs that has
// any, sorted, and checks that every key column is one of them. It
// returns nil, nil while no object has a field.
func sqlInferColumns(objs []map[string]any, key []string) ([]string, error) {
	var cols []string
	for _, o := range objs {
		if len(o) == 0 {
			continue
		}
		for k := range o {
			cols = append(cols, k)
		}
		slices.Sort(cols)
		break
	}
	if len(cols) == 0 {
		return nil, nil // nothing to learn from yet
	}
	for _, k := range key {
		if !slices.Contains(cols, k) {
			return nil, fmt.Errorf("%w: key column %q is not a field of the first event (its fields: %s) — list the columns in config.columns, or fix config.key", flow.ErrStopRun, k, strings.Join(cols, ", "))
		}
	}
	return cols, nil
}

// sqlColumnType is the type create gives column c: the declared one, else
// typeOf of the first value in objs it recognises, else def.
func sqlColumnType(c string, declared map[string]string, objs []map[string]any, typeOf func(any) string, def string) string {
	t := declared[c]
	for _, o := range objs {
		if t != "" {
			break
		}
		t = typeOf(o[c])
	}
	if t == "" {
		t = def
	}
	return t
}
