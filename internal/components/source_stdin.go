package components

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/flowctl/flowctl/internal/flow"
)

// ioStdin is where stdin sources read; tests swap it for a pipe or a
// reader of their own before building the source.
var ioStdin io.Reader = os.Stdin

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:     flow.RoleSource,
		Name:     "stdin",
		Summary:  "Reads JSON lines or raw lines from standard input until EOF.",
		Delivery: "Cannot be replayed: lines read but not yet written when flowctl is killed are lost, and a second run reads what standard input gives it then. For a restartable run read a file instead.",
		Fields:   append([]flow.Field(nil), ioLineSourceFields...),
		Examples: []string{
			"format: json",
			"format: lines\nevent_type: log_line",
		},
		Validate:    validateWith(func(cfg flow.Config) (ioLineSource, error) { return ioParseLineSource("", cfg) }),
		OutputTypes: sourceEventTypes,
		New: func(bc flow.BuildContext) (any, error) {
			ls, err := ioParseLineSource(bc.Name, bc.Config)
			if err != nil {
				return nil, err
			}
			if bc.Logger != nil {
				ls.log = bc.Logger
			}
			return &stdinSource{ioLineSource: ls, in: ioStdin}, nil
		},
	})
}

// stdinSource reads lines from a stream (os.Stdin outside tests). Event ids
// are <component>:<line number>.
type stdinSource struct {
	ioLineSource
	in io.Reader
}

// Bounded implements flow.Bounded: standard input ends at EOF.
func (s *stdinSource) Bounded() bool { return true }

// Run reads until EOF (returns nil) or ctx is done. A read from a terminal
// or a pipe cannot be interrupted, so the reading happens on a goroutine
// and Run returns as soon as ctx is done; that goroutine ends at the next
// EOF or when its Emit sees ctx done (the process is normally exiting by
// then).
func (s *stdinSource) Run(ctx context.Context, out flow.Emitter) error {
	errc := make(chan error, 1)
	go func() {
		lr := newIOLineReader(s.in, ioReadBufSize)
		errc <- s.pump(ctx, out, lr, s.name+":", true, nil)
	}()
	select {
	case err := <-errc:
		if err == io.EOF || ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("source %q: read stdin: %w", s.name, err)
	case <-ctx.Done():
		return nil
	}
}

var _ flow.Source = (*stdinSource)(nil)
