// Package tracing turns OpenTelemetry tracing on from the standard OTEL_*
// environment variables, for flowctl and for components built with the Go
// SDK (pkg/sdk), and carries the W3C trace context in an event's metadata
// (MetadataKey).
//
// Tracing is off unless the environment asks for it (see Enabled); then
// Start builds a tracer provider that batches spans to an OTLP gRPC
// exporter configured by OTEL_EXPORTER_OTLP_* (endpoint, insecure, headers,
// certificates, timeout), samples by OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG, and names the service by OTEL_SERVICE_NAME (or
// the caller's default) and OTEL_RESOURCE_ATTRIBUTES. Nothing of the
// OpenTelemetry SDK runs while tracing is off.
package tracing

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// MetadataKey is the event metadata key (a CloudEvents extension
// attribute, as in the CloudEvents distributed-tracing extension) that
// carries the W3C traceparent of the span that handed the event to a
// component.
const MetadataKey = "traceparent"

// Environment variables read here (the exporter reads OTEL_EXPORTER_OTLP_*
// itself, the provider OTEL_TRACES_SAMPLER*, the resource OTEL_SERVICE_NAME
// and OTEL_RESOURCE_ATTRIBUTES).
const (
	EnvSDKDisabled     = "OTEL_SDK_DISABLED"
	EnvTracesExporter  = "OTEL_TRACES_EXPORTER"
	EnvEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvServiceName     = "OTEL_SERVICE_NAME"
	EnvSampler         = "OTEL_TRACES_SAMPLER"
	EnvSamplerArg      = "OTEL_TRACES_SAMPLER_ARG"
	exporterOTLP       = "otlp"
	exporterNone       = "none"
	protocolGRPC       = "grpc"
	instrumentationLib = "github.com/flowctl/flowctl"
)

// Enabled reports whether the environment (getenv; os.Getenv when nil)
// turns tracing on: OTEL_SDK_DISABLED is not "true", and either
// OTEL_TRACES_EXPORTER is "otlp" or it is unset and an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is.
// OTEL_TRACES_EXPORTER=none turns it off.
func Enabled(getenv func(string) string) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(strings.TrimSpace(getenv(EnvSDKDisabled)), "true") {
		return false
	}
	switch exp := strings.ToLower(strings.TrimSpace(getenv(EnvTracesExporter))); exp {
	case "":
		return getenv(EnvEndpoint) != "" || getenv(EnvTracesEndpoint) != ""
	case exporterNone:
		return false
	default:
		// otlp, or several (otlp,console): on when otlp is among them.
		for _, e := range strings.Split(exp, ",") {
			if strings.TrimSpace(e) == exporterOTLP {
				return true
			}
		}
		return false
	}
}

// Provider is a running tracer provider with its OTLP exporter.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Start returns a Provider when the environment turns tracing on
// (Enabled), nil otherwise. defaultService is the service name when
// OTEL_SERVICE_NAME (and OTEL_RESOURCE_ATTRIBUTES' service.name) is unset.
// The exporter connects lazily: Start does not wait for the collector.
func Start(ctx context.Context, defaultService string) (*Provider, error) {
	if !Enabled(nil) {
		return nil, nil
	}
	for _, k := range []string{EnvTracesProtocol, EnvProtocol} {
		if p := strings.TrimSpace(os.Getenv(k)); p != "" {
			if p != protocolGRPC {
				return nil, fmt.Errorf("tracing: %s=%q: only %q is supported", k, p, protocolGRPC)
			}
			break
		}
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(
		resource.NewSchemaless(attribute.String("service.name", defaultService)),
		resource.Environment(), // OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME win
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// The sampler comes from OTEL_TRACES_SAMPLER/_ARG (the SDK's default:
	// parentbased_always_on).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{tp: tp}, nil
}

// Tracer returns the provider's tracer for flowctl's spans.
func (p *Provider) Tracer() trace.Tracer { return p.tp.Tracer(instrumentationLib) }

// Shutdown flushes the spans not exported yet and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// Format returns sc as a W3C traceparent: 00-<trace id>-<span id>-<flags>.
func Format(sc trace.SpanContext) string {
	tid, sid := sc.TraceID(), sc.SpanID()
	var b [55]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// Parse reads a W3C traceparent (version 00, or a later version's first
// four fields) into a remote span context; ok is false when s is not one.
func Parse(s string) (sc trace.SpanContext, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < 55 || (len(s) > 55 && s[55] != '-') || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return sc, false
	}
	ver, err := hex.DecodeString(s[0:2])
	if err != nil || ver[0] == 0xff || (ver[0] == 0 && len(s) != 55) {
		return sc, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	var flags [1]byte
	if _, err := hex.Decode(tid[:], []byte(s[3:35])); err != nil {
		return sc, false
	}
	if _, err := hex.Decode(sid[:], []byte(s[36:52])); err != nil {
		return sc, false
	}
	if _, err := hex.Decode(flags[:], []byte(s[53:55])); err != nil {
		return sc, false
	}
	if strings.ToLower(s[:55]) != s[:55] {
		return sc, false // the spec wants lower-case hex
	}
	sc = trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]) & trace.FlagsSampled, Remote: true,
	})
	return sc, sc.IsValid()
}
