package conformance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// captureHandler is the logger handed to the protocol clients. They log a
// warning each time they tolerate a mistake of the component (an answer
// for a batch not in flight — answered twice —, a stray line on a stdio
// component's stdout), so every record at Warn or above is counted as a
// protocol violation; all records also go on to the run's logger.
type captureHandler struct {
	next  slog.Handler
	v     *violations
	attrs []slog.Attr
}

func newCaptureLogger(next *slog.Logger, v *violations) *slog.Logger {
	return slog.New(&captureHandler{next: next.Handler(), v: v})
}

func (h *captureHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		// The conn's own error says it best when there is one ("seq 3 is
		// not an input in flight (answered twice?)"); else the message
		// with its attributes.
		var b strings.Builder
		b.WriteString(r.Message)
		var errText string
		add := func(a slog.Attr) bool {
			if a.Key == "err" {
				errText = a.Value.String()
			}
			if a.Key != "line" {
				fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			}
			return true
		}
		for _, a := range h.attrs {
			add(a)
		}
		r.Attrs(add)
		if errText != "" {
			h.v.add(errors.New(errText))
		} else {
			h.v.add(errors.New(b.String()))
		}
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{next: h.next.WithAttrs(as), v: h.v, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	return &captureHandler{next: h.next.WithGroup(name), v: h.v, attrs: h.attrs}
}
