package flow

import (
	"fmt"
	"testing"
)

// BenchmarkCheckStrictJSON validates a batch of W1 lines the way a line
// source does (allocs/op is per batch of 256).
func BenchmarkCheckStrictJSON(b *testing.B) {
	lines := make([][]byte, MaxBatch)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"id":%d,"ts":"2026-01-01T00:00:00Z","account":"acct-%d","amount":%d,"kind":"payment"}`, i, i%1000, i*7919%10000)
	}
	evs := make([]Event, MaxBatch)
	ptrs := make([]*Event, MaxBatch)
	for _, bb := range []struct {
		name  string
		check func([]*Event)
	}{
		{"batch", CheckStrictJSON},
		{"each", func(evs []*Event) {
			for _, e := range evs {
				e.StrictJSON()
			}
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for i := range evs {
					evs[i] = Event{Data: lines[i]}
					ptrs[i] = &evs[i]
				}
				bb.check(ptrs)
				if ptrs[MaxBatch-1].Index() == nil {
					b.Fatal("not indexed")
				}
			}
		})
	}
}
