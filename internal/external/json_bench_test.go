package external

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
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

// BenchmarkStdioProcessorHop pushes W1-sized events through one stdio
// processor hop: a StdioConn writing to a real pipe, read by a goroutine
// of this process that answers every input line with the short form
// {"seq":N,"data":…,"done":true} (the payload unchanged), as a simple
// component does. b.N batches of 128 events, one at a time; cpu-ns/op is
// the CPU of both ends per batch, where the platform tells.
//
//	go test -run XXX -bench StdioProcessorHop -benchmem ./internal/external/
func BenchmarkStdioProcessorHop(b *testing.B) {
	inR, inW, err := os.Pipe() // flowctl → component
	if err != nil {
		b.Fatal(err)
	}
	outR, outW, err := os.Pipe() // component → flowctl
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- echoStdio(inR, outW) }()
	conn := NewStdioConn(inW, outR, time.Minute, nil)
	batch := jsonBatch("w", 128, func(i int) string {
		return `,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5000,"kind":"fee"`
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.SetBytes(int64(len(batch[0].Data) * len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for range b.N {
		res, err := conn.Process(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Outputs[0]) != 1 {
			b.Fatalf("answer %v", res.Outputs[0])
		}
	}
	b.StopTimer()
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
	conn.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	outR.Close()
}

// echoStdio is a stdio component answering every input with its own
// payload, flushing when its input has nothing more buffered; it returns
// at EOF.
func echoStdio(in io.ReadCloser, out io.WriteCloser) error {
	defer out.Close()
	defer in.Close()
	br := bufio.NewReaderSize(in, 64<<10)
	bw := bufio.NewWriterSize(out, 64<<10)
	var a []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			seq, ok := flow.JSONMember(line, 0, "seq")
			ev, ok2 := flow.JSONMember(line, 0, "event")
			if ok != flow.MemberFound || ok2 != flow.MemberFound {
				return fmt.Errorf("not an input line: %s", line)
			}
			data, ok3 := flow.JSONMember(line, ev, "data")
			if ok3 != flow.MemberFound {
				return fmt.Errorf("no data: %s", line)
			}
			a = append(a[:0], `{"seq":`...)
			a = append(a, line[seq:flow.SkipJSONValue(line, seq)]...)
			a = append(a, `,"data":`...)
			a = append(a, line[data:flow.SkipJSONValue(line, data)]...)
			a = append(a, `,"done":true}`+"\n"...)
			if _, err := bw.Write(a); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return bw.Flush()
		}
		if err != nil {
			return err
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
	}
}
