package components

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/flowctl/flowctl/internal/flow"
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:     flow.RoleSink,
		Name:     "drop",
		Summary:  "Counts events and discards them (for benchmarks and for branches whose output is not needed).",
		Examples: []string{"{}"},
		New: func(bc flow.BuildContext) (any, error) {
			log := bc.Logger
			if log == nil {
				log = slog.New(slog.DiscardHandler)
			}
			return &dropSink{log: log}, nil
		},
	})
}

// dropSink counts and discards events.
type dropSink struct {
	n   atomic.Int64
	log *slog.Logger
}

// Write counts the batch; it never fails.
func (s *dropSink) Write(_ context.Context, batch []*flow.Event) error {
	s.n.Add(int64(len(batch)))
	return nil
}

// Count is how many events were dropped so far.
func (s *dropSink) Count() int64 { return s.n.Load() }

// Close logs the count.
func (s *dropSink) Close(context.Context) error {
	s.log.Debug("drop sink closed", "events", s.n.Load())
	return nil
}

var (
	_ flow.Sink   = (*dropSink)(nil)
	_ flow.Closer = (*dropSink)(nil)
)
