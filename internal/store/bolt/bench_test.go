package bolt_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/flowctl/flowctl/internal/store"
)

func BenchmarkPutRegistration(b *testing.B) {
	ctx := context.Background()
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprintf("parallel=%v", parallel), func(b *testing.B) {
			s, _ := openTempB(b)
			defer s.Close()
			var n atomic.Int64
			put := func() {
				reg := store.Registration{ID: fmt.Sprintf("c%d", n.Add(1)), Pipeline: "p", Endpoint: "127.0.0.1:1"}
				if err := s.PutRegistration(ctx, reg); err != nil {
					b.Error(err)
				}
			}
			if !parallel {
				for b.Loop() {
					put()
				}
				return
			}
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					put()
				}
			})
		})
	}
}

func BenchmarkPutPipelineUnchanged(b *testing.B) {
	ctx := context.Background()
	s, _ := openTempB(b)
	defer s.Close()
	p := store.Pipeline{Name: "orders", Hash: "h", Spec: make([]byte, 4096)}
	for b.Loop() {
		if _, err := s.PutPipeline(ctx, p, store.AnyRevision); err != nil {
			b.Fatal(err)
		}
	}
}
