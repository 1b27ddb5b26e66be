package sdk

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowctl/flowctl/pkg/tracing"
)

// Tracing (flowctl's docs/tracing.md): when the component's environment
// turns OpenTelemetry on (the same OTEL_* variables as flowctl; flowctl
// gives each component OTEL_SERVICE_NAME=<its name>), a batch whose first
// event carries metadata.traceparent is handled under a span "process
// <id>" or "write <id>", a child of the span flowctl put in the
// traceparent, exported by the component's own OTLP exporter. The span is
// in the ctx handed to Process or Write (trace.SpanFromContext).

// startTracing starts the component's tracer provider when the
// environment asks for one, and returns what flushes it.
func (rt *runtime) startTracing() func() {
	name := rt.s.id
	if name == "" {
		name = rt.s.info.Name
	}
	rt.spanName = name
	tp, err := tracing.Start(context.Background(), name)
	if err != nil {
		rt.log.Warn("tracing is off", "err", err)
		return func() {}
	}
	if tp == nil {
		return func() {}
	}
	rt.tracer = tp.Tracer()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), rt.s.drainTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			rt.log.Warn("tracing: flushing spans failed", "err", err)
		}
	}
}

// startSpan starts the span of a batch whose first event's metadata is md,
// or returns ctx and nil when tracing is off or the batch is not traced.
func (rt *runtime) startSpan(ctx context.Context, verb string, md map[string]string, count int) (context.Context, trace.Span) {
	if rt.tracer == nil {
		return ctx, nil
	}
	parent, ok := tracing.Parse(md[tracing.MetadataKey])
	if !ok {
		return ctx, nil
	}
	ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	return rt.tracer.Start(ctx, verb+" "+rt.spanName, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("flowctl.component", rt.spanName), attribute.Int("flowctl.events", count)))
}

// endSpan ends sp (nil: nothing) with the batch's counts.
func endSpan(sp trace.Span, out, failed int) {
	if sp == nil {
		return
	}
	sp.SetAttributes(attribute.Int("flowctl.events.out", out), attribute.Int("flowctl.errors", failed))
	if failed > 0 {
		sp.SetStatus(codes.Error, "some events failed")
	}
	sp.End()
}
