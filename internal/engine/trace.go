package engine

import (
	"context"
	"maps"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/tracing"
)

// Tracing (docs/tracing.md): with Options.Tracer set, a source batch (one
// Emit) starts a trace, its root span "batch <source>" kept on the batch's
// ack and ended when the batch is acknowledged; every processor, sink and
// the dead-letter sink that handles a batch derived from it adds a child
// span "process <name>" or "write <name>" around its work. Events handed
// to an external component are copies carrying the hop span's W3C
// traceparent in Metadata["traceparent"], so that the component continues
// the trace. With no tracer, or a batch the sampler dropped, the cost is a
// nil check per batch.

// Span attribute keys.
const (
	attrPipeline  = "flowctl.pipeline"
	attrComponent = "flowctl.component"
	attrRole      = "flowctl.role"
	attrEvents    = "flowctl.events"
	attrEventsOut = "flowctl.events.out"
	attrErrors    = "flowctl.errors"
)

// traceBatch starts a's root span for a source batch of count events. A
// batch the sampler does not record keeps no span.
func (n *node) traceBatch(a *ack, count int) {
	if n.e.opts.Tracer != nil {
		n.traceBatchSlow(a, count)
	}
}

func (n *node) traceBatchSlow(a *ack, count int) {
	_, sp := n.e.opts.Tracer.Start(context.Background(), "batch "+n.name,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String(attrPipeline, n.e.p.Name),
			attribute.String(attrComponent, n.name),
			attribute.String(attrRole, string(n.role)),
			attribute.Int(attrEvents, count)))
	if !sp.IsRecording() {
		sp.End()
		return
	}
	a.span = sp
}

// endTrace ends a's root span, if it has one, with err as its status.
func (a *ack) endTrace(err error) {
	if a.span != nil {
		a.endTraceSlow(err)
	}
}

func (a *ack) endTraceSlow(err error) {
	sp := a.span
	a.span = nil
	if err != nil {
		sp.RecordError(err)
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End()
}

// hop is one component's span over one batch; nil when the batch is not
// traced (every method is then a no-op).
type hop struct {
	span trace.Span
	// traceparent is the span's W3C traceparent, for an external
	// component's events; empty for a built-in.
	traceparent string
}

// startHop starts n's span over b ("process" or "write"), or returns nil
// when b is not traced.
func (n *node) startHop(b *batch, verb string) *hop {
	if b.ack.span == nil {
		return nil
	}
	return n.startHopSlow(b, verb)
}

func (n *node) startHopSlow(b *batch, verb string) *hop {
	ext := external(n.gn.Component)
	kind := trace.SpanKindInternal
	if ext {
		kind = trace.SpanKindClient
	}
	ctx := trace.ContextWithSpan(context.Background(), b.ack.span)
	_, sp := n.e.opts.Tracer.Start(ctx, verb+" "+n.name,
		trace.WithSpanKind(kind),
		trace.WithAttributes(
			attribute.String(attrPipeline, n.e.p.Name),
			attribute.String(attrComponent, n.name),
			attribute.String(attrRole, string(n.role)),
			attribute.Int(attrEvents, len(b.events))))
	h := &hop{span: sp}
	if ext {
		h.traceparent = tracing.Format(sp.SpanContext())
	}
	return h
}

// events returns the events to hand the component: events themselves for
// a built-in (or an untraced batch), else copies carrying the hop's
// traceparent (events are immutable: the batch may be shared).
func (h *hop) events(events []*flow.Event) []*flow.Event {
	if h == nil || h.traceparent == "" {
		return events
	}
	return h.eventsSlow(events)
}

func (h *hop) eventsSlow(events []*flow.Event) []*flow.Event {
	out := make([]*flow.Event, len(events))
	for i, ev := range events {
		if ev.Metadata[tracing.MetadataKey] == h.traceparent {
			out[i] = ev
			continue
		}
		m := make(map[string]string, len(ev.Metadata)+1)
		maps.Copy(m, ev.Metadata)
		m[tracing.MetadataKey] = h.traceparent
		out[i] = ev.WithMetadata(m)
	}
	return out
}

// end ends the hop's span with the batch's counts: events out (a
// processor's output, a sink's written) and failed.
func (h *hop) end(out, errors int) {
	if h != nil {
		h.endSlow(out, errors)
	}
}

func (h *hop) endSlow(out, errors int) {
	h.span.SetAttributes(attribute.Int(attrEventsOut, out), attribute.Int(attrErrors, errors))
	if errors > 0 {
		h.span.SetStatus(codes.Error, "some events failed")
	}
	h.span.End()
}
