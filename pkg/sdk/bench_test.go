package sdk_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowctl/flowctl/pkg/sdk"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// BenchmarkProcessorStream measures one processor stream over loopback
// gRPC with the W1 map step, flowctl's side keeping the credit full. One
// op is one batch of 256 events.
func BenchmarkProcessorStream(b *testing.B) {
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
	go func() { done <- sdk.Serve(ctx, usd, quietly(lis)...) }()
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
	events := make([]*streamv1.Event, 256)
	for i := range events {
		events[i] = &streamv1.Event{Id: fmt.Sprint(i), Type: "payment",
			Data: []byte(fmt.Sprintf(`{"id":%d,"kind":"payment","amount":%d,"account":"acct-%d"}`, i, 5000+i, i%97))}
	}
	b.SetBytes(int64(256 * len(events[0].Data)))
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
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "events/s")
	s.CloseSend()
}
