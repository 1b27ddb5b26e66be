package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// otlpReceiver is a real OTLP/gRPC trace receiver on loopback that keeps
// every span it is sent, with its service name.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string

	mu      sync.Mutex
	spans   []recvSpan
	changed chan struct{} // closed and replaced on every export
}

type recvSpan struct {
	service, name     string
	trace, id, parent string
	attrs             map[string]string
	start, end        uint64
	statusCode        tracepb.Status_StatusCode
	kind              tracepb.Span_SpanKind
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: lis.Addr().String(), changed: make(chan struct{})}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, r)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return r
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, kv := range s.GetAttributes() {
					switch v := kv.GetValue().GetValue().(type) {
					case *commonpb.AnyValue_IntValue:
						attrs[kv.GetKey()] = fmt.Sprint(v.IntValue)
					case *commonpb.AnyValue_StringValue:
						attrs[kv.GetKey()] = v.StringValue
					}
				}
				r.spans = append(r.spans, recvSpan{
					service: res["service.name"], name: s.GetName(),
					trace: hex.EncodeToString(s.GetTraceId()), id: hex.EncodeToString(s.GetSpanId()),
					parent: hex.EncodeToString(s.GetParentSpanId()), attrs: attrs,
					start: s.GetStartTimeUnixNano(), end: s.GetEndTimeUnixNano(),
					statusCode: s.GetStatus().GetCode(), kind: s.GetKind(),
				})
			}
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// waitFor waits (bounded) until ok holds for the spans received so far
// and returns them.
func (r *otlpReceiver) waitFor(t *testing.T, d time.Duration, ok func([]recvSpan) bool) []recvSpan {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans := append([]recvSpan(nil), r.spans...)
		ch := r.changed
		r.mu.Unlock()
		if ok(spans) {
			return spans
		}
		select {
		case <-ch:
		case <-deadline.C:
			return spans
		}
	}
}

// tracedPipeline: a file source, a built-in filter, the Go SDK example
// processor over gRPC and a file sink writing envelopes (metadata
// included).
const tracedPipeline = `name: traced
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 0"}}
  - name: usd
    command: [%q]
    protocol: grpc
    inputs: [large]
sinks: [{name: out, type: file, inputs: [usd], config: {path: out.jsonl, format: envelope}}]
`

// runTraced runs tracedPipeline over n events with extra environment and
// returns the sink's lines.
func runTraced(t *testing.T, n int, env ...string) []string {
	t.Helper()
	bin := flowctlBinary(t)
	proc := sdkProcessorBinary(t)
	dir := t.TempDir()
	writeEvents(t, filepath.Join(dir, "in.jsonl"), n)
	pf := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(pf, fmt.Appendf(nil, tracedPipeline, proc), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-f", pf, "--grace", "5s", "--from-start")
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("flowctl run took %s", time.Since(start))
	if err != nil {
		t.Fatalf("flowctl run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d written", n)) {
		t.Fatalf("flowctl run did not write every event:\n%s", out)
	}
	return readLines(t, filepath.Join(dir, "out.jsonl"))
}

// TestTraceE2E: with the OTEL_* variables pointing at an OTLP receiver,
// every source batch is a trace holding the source's root span, the
// built-in filter's, flowctl's hop to the SDK processor, the SDK
// processor's own span (exported by the component, as service "usd") and
// the sink's, with the right parents.
func TestTraceE2E(t *testing.T) {
	recv := startOTLPReceiver(t)
	const events = 1000
	runTraced(t, events,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recv.addr,
		"OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_TRACES_SAMPLER=parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG=1",
	)
	// Every span was flushed before the processes exited; the wait only
	// covers a receiver slower than the exporters.
	complete := func(spans []recvSpan) bool {
		roots, sdk := 0, 0
		for _, s := range spans {
			switch {
			case s.name == "batch ledger":
				roots++
			case s.service == "usd":
				sdk++
			}
		}
		return roots > 0 && sdk == roots
	}
	start := time.Now()
	spans := recv.waitFor(t, 10*time.Second, complete)
	t.Logf("spans complete %s after flowctl exited", time.Since(start))

	type trace struct {
		root  *recvSpan
		named map[string][]recvSpan // "service/name"
	}
	traces := map[string]*trace{}
	for i := range spans {
		s := spans[i]
		tr := traces[s.trace]
		if tr == nil {
			tr = &trace{named: map[string][]recvSpan{}}
			traces[s.trace] = tr
		}
		if s.name == "batch ledger" {
			tr.root = &spans[i]
		}
		tr.named[s.service+"/"+s.name] = append(tr.named[s.service+"/"+s.name], s)
	}
	if len(traces) == 0 {
		t.Fatal("no span received")
	}
	total := 0
	for id, tr := range traces {
		if tr.root == nil {
			t.Fatalf("trace %s has no root span: %v", id, keysOf(tr.named))
		}
		if tr.root.parent != "" || tr.root.service != "flowctl" || tr.root.attrs["flowctl.pipeline"] != "traced" {
			t.Errorf("trace %s: root %+v", id, *tr.root)
		}
		var count int
		fmt.Sscan(tr.root.attrs["flowctl.events"], &count)
		total += count
		one := func(key string) recvSpan {
			got := tr.named[key]
			if len(got) != 1 {
				t.Fatalf("trace %s: %d spans %q, want 1; spans: %v", id, len(got), key, keysOf(tr.named))
			}
			return got[0]
		}
		filter := one("flowctl/process large")
		hop := one("flowctl/process usd")
		sdk := one("usd/process usd")
		sink := one("flowctl/write out")
		if len(tr.named) != 5 {
			t.Errorf("trace %s: spans %v, want 5", id, keysOf(tr.named))
		}
		for _, s := range []recvSpan{filter, hop, sink} {
			if s.parent != tr.root.id {
				t.Errorf("trace %s: %s's parent is %s, want the root %s", id, s.name, s.parent, tr.root.id)
			}
		}
		if sdk.parent != hop.id {
			t.Errorf("trace %s: the SDK span's parent is %s, want flowctl's hop span %s", id, sdk.parent, hop.id)
		}
		if sdk.kind != tracepb.Span_SPAN_KIND_SERVER || hop.kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("trace %s: kinds hop %v, sdk %v", id, hop.kind, sdk.kind)
		}
		if sdk.start < hop.start || sdk.end > hop.end {
			t.Errorf("trace %s: the SDK span [%d,%d] is not within flowctl's hop [%d,%d]", id, sdk.start, sdk.end, hop.start, hop.end)
		}
	}
	if total != events {
		t.Errorf("the root spans count %d events, want %d", total, events)
	}
	t.Logf("%d traces, %d spans for %d events", len(traces), len(spans), events)
}

// TestTraceOffE2E: with no OTEL_* variable nothing is exported and no
// event carries a traceparent.
func TestTraceOffE2E(t *testing.T) {
	recv := startOTLPReceiver(t)
	// OTEL_EXPORTER_OTLP_INSECURE alone (no endpoint) does not turn tracing
	// on; the receiver is where an accidental default would go.
	lines := runTraced(t, 300, "OTEL_EXPORTER_OTLP_INSECURE=true")
	if len(lines) != 300 {
		t.Fatalf("wrote %d lines", len(lines))
	}
	for _, l := range lines {
		if strings.Contains(l, "traceparent") {
			t.Fatalf("an output event carries a traceparent: %s", l)
		}
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.spans) != 0 {
		t.Fatalf("%d spans exported with tracing off", len(recv.spans))
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// stdioEcho is a stdio processor that copies its input's
// metadata.traceparent into the payload (tp), so the test can read what
// crossed the JSON protocol.
const stdioEcho = `import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    data = msg["event"].get("data") or {}
    data["tp"] = (msg["event"].get("metadata") or {}).get("traceparent", "")
    sys.stdout.write(json.dumps({"seq": msg["seq"], "data": data, "done": True}) + "\n")
    sys.stdout.flush()
`

// TestTraceStdioE2E: over the stdio protocol every event of a traced batch
// carries, in metadata.traceparent, flowctl's span for that hop.
func TestTraceStdioE2E(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3")
	}
	bin := flowctlBinary(t)
	recv := startOTLPReceiver(t)
	dir := t.TempDir()
	const events = 600
	writeEvents(t, filepath.Join(dir, "in.jsonl"), events)
	if err := os.WriteFile(filepath.Join(dir, "echo.py"), []byte(stdioEcho), 0o644); err != nil {
		t.Fatal(err)
	}
	pl := fmt.Sprintf(`name: traced-stdio
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors: [{name: echo, command: [%q, echo.py], protocol: stdio, inputs: [ledger]}]
sinks: [{name: out, type: file, inputs: [echo], config: {path: out.jsonl}}]
`, python)
	if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(pl), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-f", "pipeline.yaml", "--from-start")
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recv.addr, "OTEL_EXPORTER_OTLP_INSECURE=true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("flowctl run: %v\n%s", err, out)
	}
	spans := recv.waitFor(t, 10*time.Second, func(s []recvSpan) bool { return len(s) > 0 })
	hops := map[string]bool{}
	for _, s := range spans {
		if s.name == "process echo" {
			hops["00-"+s.trace+"-"+s.id+"-01"] = true
		}
	}
	if len(hops) == 0 {
		t.Fatalf("no span for the stdio processor among %d", len(spans))
	}
	lines := readLines(t, filepath.Join(dir, "out.jsonl"))
	if len(lines) != events {
		t.Fatalf("wrote %d lines, want %d", len(lines), events)
	}
	seen := map[string]int{}
	for _, l := range lines {
		var v struct {
			TP string `json:"tp"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		if !hops[v.TP] {
			t.Fatalf("event crossed with traceparent %q, not one of flowctl's %d hop spans", v.TP, len(hops))
		}
		seen[v.TP]++
	}
	t.Logf("%d events over stdio carried %d distinct traceparents (%d hop spans)", events, len(seen), len(hops))
}
