package components

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/wasmtest"
	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// w1Batch is a batch of W1's events (bench/README.md) that pass its
// filter, as the map step sees them.
func w1Batch() []*flow.Event {
	evs := make([]*flow.Event, flow.MaxBatch)
	kinds := []string{"payment", "trade", "fee"}
	for i := range evs {
		evs[i] = &flow.Event{ID: fmt.Sprint(i), Type: "ledger", Source: "ledger",
			Data: fmt.Appendf(nil, `{"id":%d,"ts":"2026-01-01T00:00:00Z","account":"acct-%d","amount":%d,"kind":"%s"}`, i, i%1000, 5000+i, kinds[i%3])}
	}
	return evs
}

// BenchmarkWasmMapW1 runs W1's map step (amount_usd, upper-case kind)
// four ways over the same batches of 256 events: the built-in map
// processor in process, the Go module examples/wasm/usdmap and the Rust
// module examples/wasm/usdmap-rust in the wasm processor, and a gRPC SDK
// processor over loopback. One op is one batch;
// ns/event is the figure to compare.
func BenchmarkWasmMapW1(b *testing.B) {
	batch := w1Batch()
	ctx := context.Background()
	b.Run("inprocess", func(b *testing.B) {
		m, err := parseMap(flow.Config{"set": map[string]any{
			"amount_usd": "double(data.amount) / 100.0",
			"kind":       "data.kind.upperAscii()",
		}})
		if err != nil {
			b.Fatal(err)
		}
		out := make([]*flow.Event, 0, len(batch))
		b.ReportAllocs()
		for b.Loop() {
			// Fresh events each time: the parsed view is cached per event.
			in := w1Batch()
			out = out[:0]
			for _, e := range in {
				if out, err = m.Process(ctx, e, out); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
	})
	b.Run("wasm", func(b *testing.B) {
		p := openWasm(b, wasmtest.BuildGo(b, "examples/wasm/usdmap"), nil)
		b.ReportAllocs()
		for b.Loop() {
			_, failures, err := p.ProcessBatch(ctx, w1Batch())
			if err != nil || len(failures) > 0 {
				b.Fatal(err, failures)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
	})
	b.Run("wasm-rust", func(b *testing.B) {
		p := openWasm(b, wasmtest.BuildRust(b, "examples/wasm/usdmap-rust/usdmap.rs"), nil)
		b.ReportAllocs()
		for b.Loop() {
			_, failures, err := p.ProcessBatch(ctx, w1Batch())
			if err != nil || len(failures) > 0 {
				b.Fatal(err, failures)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
	})
	b.Run("grpc", func(b *testing.B) {
		benchGRPCMap(b, batch)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
	})
}

// benchGRPCMap serves W1's map with pkg/sdk on loopback and keeps the
// processor stream's credit full, as flowctl's side does.
func benchGRPCMap(b *testing.B, batch []*flow.Event) {
	usd := sdk.ProcessorFunc(func(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) {
		var m map[string]any
		if err := e.Decode(&m); err != nil {
			return nil, err
		}
		amount, _ := m["amount"].(float64)
		m["amount_usd"] = amount / 100.0
		m["kind"] = strings.ToUpper(fmt.Sprint(m["kind"]))
		if err := e.SetJSON(m); err != nil {
			return nil, err
		}
		return []*sdk.Event{e}, nil
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- sdk.Serve(ctx, usd, sdk.WithListener(lis), sdk.WithEnv(func(string) string { return "" }),
			sdk.WithSignals(), sdk.WithLogger(slog.New(slog.DiscardHandler)))
	}()
	defer func() { stop(); <-done }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	s, err := streamv1.NewProcessorServiceClient(conn).Process(ctx)
	if err != nil {
		b.Fatal(err)
	}
	first, err := s.Recv()
	if err != nil {
		b.Fatal(err)
	}
	credit := int(first.GetCredit().GetBatches())
	events := make([]*streamv1.Event, len(batch))
	for i, e := range batch {
		events[i] = &streamv1.Event{Id: e.ID, Type: e.Type, Source: e.Source, Data: e.Data}
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent, answered := 0, 0
	for answered < b.N {
		for credit > 0 && sent < b.N {
			sent++
			credit--
			if err := s.Send(&streamv1.ProcessRequest{Batch: &streamv1.Batch{Seq: uint64(sent), Events: events}}); err != nil {
				b.Fatal(err)
			}
		}
		m, err := s.Recv()
		if err != nil {
			b.Fatal(err)
		}
		credit += int(m.GetCredit().GetBatches())
		if m.GetResult() != nil {
			answered++
		}
	}
	b.StopTimer()
}
