package tracing

import (
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestEnabled(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{EnvEndpoint: "http://127.0.0.1:4317"}, true},
		{map[string]string{EnvTracesEndpoint: "http://127.0.0.1:4317"}, true},
		{map[string]string{EnvTracesExporter: "otlp"}, true},
		{map[string]string{EnvTracesExporter: "console,otlp"}, true},
		{map[string]string{EnvTracesExporter: "console"}, false},
		{map[string]string{EnvTracesExporter: "none", EnvEndpoint: "http://x:4317"}, false},
		{map[string]string{EnvSDKDisabled: "TRUE", EnvEndpoint: "http://x:4317"}, false},
		{map[string]string{EnvSDKDisabled: "false", EnvEndpoint: "http://x:4317"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_INSECURE": "true"}, false},
	}
	for _, tc := range tests {
		if got := Enabled(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("Enabled(%v) = %v, want %v", tc.env, got, tc.want)
		}
	}
}

func TestTraceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc, ok := Parse(tp)
	if !ok || !sc.IsSampled() || !sc.IsRemote() {
		t.Fatalf("Parse(%q) = %v, %v", tp, sc, ok)
	}
	if got := Format(sc); got != tp {
		t.Errorf("Format = %q, want %q", got, tp)
	}
	for _, bad := range []string{
		"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero span id
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version ff
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 with more
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
	} {
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, ok := Parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future"); !ok {
		t.Error("a later version's traceparent was refused")
	}
	sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: sc.TraceID(), SpanID: sc.SpanID()})
	if got := Format(sc); got[53:] != "00" {
		t.Errorf("unsampled flags: %q", got)
	}
}
