package components

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// ioNewSink builds a sink through its registered spec and opens it.
func ioNewSink(t testing.TB, typ, dir string, cfg flow.Config) flow.Sink {
	t.Helper()
	spec, err := NewRegistry().Lookup(flow.RoleSink, typ)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Validate != nil {
		if err := spec.Validate(cfg); err != nil {
			t.Fatalf("validate %v: %v", cfg, err)
		}
	}
	c, err := spec.New(flow.BuildContext{Name: "out", Config: cfg, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := c.(flow.Opener); ok {
		if err := o.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return c.(flow.Sink)
}

func ioClose(t testing.TB, s any) {
	t.Helper()
	if c, ok := s.(flow.Closer); ok {
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// ioSampleBatch is a batch covering the shapes sinks must handle.
func ioSampleBatch() []*flow.Event {
	return []*flow.Event{
		{ID: "in:1", Source: "in", Type: "t", Data: []byte(`{"b":2,  "a":1}`)},
		{ID: "in:2", Source: "in", Type: "t", Data: []byte("{\n  \"pretty\": true\n}")},
		{ID: "in:3", Source: "in", Type: "log", DataContentType: "text/plain", Data: []byte(`plain "text"`)},
	}
}

func TestStdoutSink(t *testing.T) {
	tests := []struct {
		format, want string
	}{
		{"data", "{\"b\":2,  \"a\":1}\n{\"pretty\":true}\nplain \"text\"\n"},
		{"envelope", `{"specversion":"1.0","id":"in:1","source":"in","type":"t","datacontenttype":"application/json","data":{"b":2,  "a":1}}` + "\n" +
			`{"specversion":"1.0","id":"in:2","source":"in","type":"t","datacontenttype":"application/json","data":{"pretty":true}}` + "\n" +
			`{"specversion":"1.0","id":"in:3","source":"in","type":"log","datacontenttype":"text/plain","data":"plain \"text\""}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			old := ioStdout
			ioStdout = &buf
			s := ioNewSink(t, "stdout", "", flow.Config{"format": tt.format})
			ioStdout = old
			if err := s.Write(context.Background(), ioSampleBatch()); err != nil {
				t.Fatal(err)
			}
			// Flushed per batch: visible before Close.
			if got := buf.String(); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			ioClose(t, s)
		})
	}
}

func init() {
	// -update rewrites golden files. Another test file of the package may
	// define the same flag as a package variable (initialised before any
	// init runs); then that one is used.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

// ioGolden compares got with testdata/name, or rewrites it with -update.
func ioGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// The envelope and data renderings of a spread of events, as every
// JSON-lines sink writes them.
func TestSinkFormatsGolden(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	events := append(ioSampleBatch(),
		&flow.Event{ID: "web:9", Source: "/shop", Type: "order.created", Subject: "order/9", Time: ts,
			DataContentType: "application/json", Data: []byte(`{"total":12.5,"items":[1,2]}`),
			Metadata: map[string]string{"traceparent": "00-abc-01", "tenant": "acme", "type": "shadowed"}},
		&flow.Event{ID: "bin:1", Source: "bin", Type: "blob", DataContentType: "application/octet-stream", Data: []byte{0, 1, 0xfe, 0xff}},
		&flow.Event{ID: "in:4", Source: "in", Type: "t", Data: []byte(`{"broken":`)},
		&flow.Event{ID: "in:5", Source: "in", Type: "t", Data: []byte(`"unicode ☃ \u00e9"`)},
	)
	for _, format := range []string{"data", "envelope"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			old := ioStdout
			ioStdout = &buf
			s := ioNewSink(t, "stdout", "", flow.Config{"format": format})
			ioStdout = old
			if err := s.Write(context.Background(), events); err != nil {
				t.Fatal(err)
			}
			ioClose(t, s)
			ioGolden(t, "io_format_"+format+".golden", buf.Bytes())
		})
	}
}
