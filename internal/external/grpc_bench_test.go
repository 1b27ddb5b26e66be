package external

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/sdk"
)

// BenchmarkGRPCProcessorHop pushes W1-sized events through one native
// processor hop (an SDK pass-through processor in this process, over
// loopback gRPC): b.N batches of 128 events, `inflight` at a time.
// cpu-ns/op is the CPU time of both ends per batch (user + system, where
// the platform tells).
//
//	go test -run XXX -bench GRPCProcessorHop -benchmem ./internal/external/
func BenchmarkGRPCProcessorHop(b *testing.B) {
	for _, inflight := range []int{1, 4} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			rt := newGRPCRuntime(b)
			rt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			pass := sdk.ProcessorFunc(func(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) { return []*sdk.Event{e}, nil })
			serveSDK(b, rt, "hop", pass, sdk.WithLogger(rt.Logger))
			inst := instance(b, "hop", flow.RoleProcessor)
			inst.Logger = rt.Logger
			inst.Started = time.Time{}
			conns, err := grpcProtocol{}.Ready(testCtx(b), rt, inst)
			if err != nil {
				b.Fatal(err)
			}
			defer conns.Close()
			batch := jsonBatch("w", 128, func(i int) string {
				return `,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5000,"kind":"fee"`
			})
			// As the engine calls it: under a context a hard stop cancels,
			// one delivery record per batch (Processor.ProcessBatch).
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			process := func() error {
				_, err := conns.Processor.Process(WithDelivery(ctx), batch)
				return err
			}
			b.SetBytes(int64(len(batch[0].Data) * len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			errs := make(chan error, b.N)
			if inflight == 1 {
				// One engine worker: each batch from the same goroutine.
				for range b.N {
					if err := process(); err != nil {
						errs <- err
					}
				}
			} else {
				sem := make(chan struct{}, inflight)
				for range b.N {
					sem <- struct{}{}
					go func() {
						defer func() { <-sem }()
						if err := process(); err != nil {
							errs <- err
						}
					}()
				}
				for range inflight {
					sem <- struct{}{}
				}
			}
			b.StopTimer()
			if cpu := processCPU() - cpu0; cpu > 0 {
				// Both ends run in this process: the CPU of the whole hop.
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		})
	}
}
