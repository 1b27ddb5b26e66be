package components

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

func TestFileSink(t *testing.T) {
	tests := []struct {
		name     string
		cfg      flow.Config
		existing string
		want     string
	}{
		{"data truncates", flow.Config{"path": "out/x.jsonl"}, "old\n", "{\"b\":2,  \"a\":1}\n{\"pretty\":true}\nplain \"text\"\n"},
		{"append keeps", flow.Config{"path": "out/x.jsonl", "append": true}, "old\n", "old\n{\"b\":2,  \"a\":1}\n{\"pretty\":true}\nplain \"text\"\n"},
		{"envelope", flow.Config{"path": "out/x.jsonl", "format": "envelope"}, "", `{"specversion":"1.0","id":"in:1","source":"in","type":"t","datacontenttype":"application/json","data":{"b":2,  "a":1}}` + "\n" +
			`{"specversion":"1.0","id":"in:2","source":"in","type":"t","datacontenttype":"application/json","data":{"pretty":true}}` + "\n" +
			`{"specversion":"1.0","id":"in:3","source":"in","type":"log","datacontenttype":"text/plain","data":"plain \"text\""}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out", "x.jsonl")
			if tt.existing != "" {
				os.MkdirAll(filepath.Dir(path), 0o755)
				ioWriteFile(t, path, tt.existing)
			}
			s := ioNewSink(t, "file", dir, tt.cfg)
			if err := s.Write(context.Background(), ioSampleBatch()); err != nil {
				t.Fatal(err)
			}
			// On disk as soon as Write returns, before Close.
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("file before close:\n%s\nwant\n%s", got, tt.want)
			}
			ioClose(t, s)
			ioClose(t, s) // a second Close is harmless
		})
	}
}

func TestFileSinkErrors(t *testing.T) {
	dir := t.TempDir()
	ioWriteFile(t, filepath.Join(dir, "blocker"), "")
	spec, _ := NewRegistry().Lookup(flow.RoleSink, "file")
	c, err := spec.New(flow.BuildContext{Name: "out", Config: flow.Config{"path": "blocker/x.jsonl"}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.(flow.Opener).Open(context.Background()); err == nil || !strings.Contains(err.Error(), `sink "out"`) {
		t.Errorf("open under a file: %v", err)
	}
	if err := c.(flow.Closer).Close(context.Background()); err != nil {
		t.Errorf("close after failed open: %v", err)
	}
	if err := spec.Validate(flow.Config{"format": "xml"}); err == nil || !strings.Contains(err.Error(), "path: is required") || !strings.Contains(err.Error(), `unknown format "xml"`) {
		t.Errorf("validate: %v", err)
	}
}

// Write allocates nothing per event: the W1 hot path.
func TestFileSinkWriteAllocs(t *testing.T) {
	s := ioNewSink(t, "file", t.TempDir(), flow.Config{"path": "x.jsonl"})
	defer ioClose(t, s)
	batch := make([]*flow.Event, 256)
	for i := range batch {
		batch[i] = &flow.Event{Data: []byte(`{"id":1,"ts":"2026-01-01T00:00:00Z","account":"acct-1","amount":7919,"kind":"trade"}`)}
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(50, func() {
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("Write of 256 events: %v allocations, want 0", allocs)
	}
}

func BenchmarkFileSinkWrite(b *testing.B) {
	s := ioNewSink(b, "file", b.TempDir(), flow.Config{"path": "x.jsonl"})
	defer ioClose(b, s)
	batch := make([]*flow.Event, 256)
	for i := range batch {
		batch[i] = &flow.Event{Data: []byte(`{"id":1,"ts":"2026-01-01T00:00:00Z","account":"acct-1","amount":7919,"kind":"trade"}`)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
}
