//go:build !arrow

package components

import (
	"io"

	"github.com/parquet-go/parquet-go"

	"github.com/flowctl/flowctl/internal/flow"
)

// Without the arrow tag the sink is described but cannot be used:
// validating a pipeline that names it says how to build a flowctl that
// has it. The table sink's two Arrow hooks are never reached then.
func init() {
	builtins = append(builtins, arrowSpec(
		func(flow.Config) error { return errNoArrow },
		func(flow.BuildContext) (any, error) { return nil, errNoArrow },
	))
}

type arrowWriter struct{}

func (s *tableSink) newArrowWriter(io.Writer) (*arrowWriter, error) { return nil, errNoArrow }
func (*arrowWriter) WriteRow(parquet.Row) error                     { return errNoArrow }
func (*arrowWriter) EndGroup() error                                { return errNoArrow }
func (*arrowWriter) Close() error                                   { return errNoArrow }
func arrowRows(string, bool) (int64, string, error)                 { return 0, "", errNoArrow }

var _ tableWriter = (*arrowWriter)(nil)
