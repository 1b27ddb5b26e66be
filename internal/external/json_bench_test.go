package external

import (
	"testing"
)

// BenchmarkStdioAppendEvent writes W1 events as stdio lines, as the stdio
// protocol does for every input; their payloads were already checked
// (StrictJSON), as after a strict source or a filter.
//
//	go test -run XXX -bench StdioAppendEvent -benchmem ./internal/external/
func BenchmarkStdioAppendEvent(b *testing.B) {
	batch := jsonBatch("w", 256, func(i int) string {
		return `,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5000,"kind":"fee"`
	})
	for _, e := range batch {
		if !e.StrictJSON() {
			b.Fatalf("event %s: not strict JSON", e.ID)
		}
	}
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		buf = buf[:0]
		for _, e := range batch {
			buf = appendEvent(buf, e)
			buf = append(buf, '\n')
		}
	}
	b.SetBytes(int64(len(buf)))
}
