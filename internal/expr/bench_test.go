package expr

import (
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

// BenchmarkEvalBool measures the filter hot path on an event whose payload
// is already parsed (the parse happens once per event, shared by every
// expression that reads it).
func BenchmarkEvalBool(b *testing.B) {
	p := mustCompile(b, "data.amount >= 5000", Bool)
	ev := tradeEvent()
	b.ReportAllocs()
	for b.Loop() {
		ok, err := p.EvalBool(ev)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkEvalBoolFreshEvent includes the one parse of each new event
// (flow.ParseJSON), which is what a filter pays per event in a pipeline.
func BenchmarkEvalBoolFreshEvent(b *testing.B) {
	p := mustCompile(b, "data.amount >= 5000", Bool)
	data := []byte(tradeJSON)
	b.ReportAllocs()
	for b.Loop() {
		ev := &flow.Event{ID: "ledger:7", Type: "trade", Data: data}
		ok, err := p.EvalBool(ev)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkEvalBoolParallel runs the parsed-event benchmark on every core,
// as a processor with parallelism > 1 does.
func BenchmarkEvalBoolParallel(b *testing.B) {
	p := mustCompile(b, "data.amount >= 5000", Bool)
	ev := tradeEvent()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := p.EvalBool(ev); err != nil || !ok {
				b.Error(ok, err)
				return
			}
		}
	})
}

// BenchmarkEvalMapJSON is the map processor's path: build an object from
// the payload and write it as JSON.
func BenchmarkEvalMapJSON(b *testing.B) {
	p := mustCompile(b, `{"account": data.account, "big": data.amount >= 5000, "cents": data.amount * 100}`, Map)
	ev := tradeEvent()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = p.AppendMapJSON(buf[:0], ev); err != nil {
			b.Fatal(err)
		}
	}
}
