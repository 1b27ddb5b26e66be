package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/pkg/tracing"
)

// traceFlushWait bounds the flush of the spans left when a run ends.
const traceFlushWait = 5 * time.Second

// startTracing turns OpenTelemetry tracing on for the run when the OTEL_*
// environment asks for it (docs/tracing.md), setting opts.Tracer, and
// returns what flushes the spans at the end. Tracing that cannot start is
// a warning, never a reason not to run.
func startTracing(opts *engine.Options, log *slog.Logger) (shutdown func()) {
	tp, err := tracing.Start(context.Background(), "flowctl")
	if err != nil {
		log.Warn("tracing is off", "error", err)
		return func() {}
	}
	if tp == nil {
		return func() {}
	}
	opts.Tracer = tp.Tracer()
	log.Debug("tracing on: exporting spans over OTLP")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), traceFlushWait)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: flushing spans failed", "error", err)
		}
	}
}
