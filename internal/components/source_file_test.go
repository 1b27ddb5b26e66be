package components

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// ioNewSource builds a source through its registered spec, as the engine
// does.
func ioNewSource(t testing.TB, typ, name, dir string, cfg flow.Config) flow.Source {
	t.Helper()
	spec, err := NewRegistry().Lookup(flow.RoleSource, typ)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(cfg); err != nil {
		t.Fatalf("validate %v: %v", cfg, err)
	}
	c, err := spec.New(flow.BuildContext{Name: name, Config: cfg, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return c.(flow.Source)
}

func ioWriteFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ioAppendFile(t testing.TB, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// ioRunSource opens and runs a bounded source to its end.
func ioRunSource(t testing.TB, src flow.Source, em flow.Emitter) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if o, ok := src.(flow.Opener); ok {
		if err := o.Open(ctx); err != nil {
			return err
		}
	}
	if c, ok := src.(flow.Closer); ok {
		defer c.Close(ctx)
	}
	return src.Run(ctx, em)
}

func TestFileSourceRead(t *testing.T) {
	long := `{"big":"` + strings.Repeat("y", 100<<10) + `"}`
	tests := []struct {
		name    string
		files   map[string]string
		cfg     flow.Config
		want    string // ioDescribe of the events
		batches []int
		ctype   string
		etype   string
	}{
		{
			name:  "json lines",
			files: map[string]string{"a.jsonl": "{\"n\":1}\n{\"n\":2}\n"},
			cfg:   flow.Config{"path": "a.jsonl"},
			want:  "in:1={\"n\":1}\nin:2={\"n\":2}\n", ctype: "application/json", etype: "in",
		},
		{
			name:  "malformed line emitted when the emitter cannot reject it, blank skipped",
			files: map[string]string{"a.jsonl": "{\"n\":1}\n{\"n\":\n\n{\"n\":3}"},
			cfg:   flow.Config{"path": "a.jsonl"},
			want:  "in:1={\"n\":1}\nin:2={\"n\":\nin:4={\"n\":3}\n",
		},
		{
			name:  "raw lines with event_type",
			files: map[string]string{"log.txt": "hello world\r\n\nbye\n"},
			cfg:   flow.Config{"path": "log.txt", "format": "lines", "event_type": "log"},
			want:  "in:1=hello world\nin:2=\nin:3=bye\n", ctype: "text/plain", etype: "log",
		},
		{
			name: "glob of two files in sorted order",
			files: map[string]string{
				"b.jsonl": "{\"f\":\"b1\"}\n",
				"a.jsonl": "{\"f\":\"a1\"}\n{\"f\":\"a2\"}\n",
				"c.txt":   "not matched\n",
			},
			cfg:  flow.Config{"path": "*.jsonl"},
			want: "in:a.jsonl:1={\"f\":\"a1\"}\nin:a.jsonl:2={\"f\":\"a2\"}\nin:b.jsonl:1={\"f\":\"b1\"}\n",
		},
		{
			name:  "long line",
			files: map[string]string{"a.jsonl": "{}\n" + long + "\n{}\n"},
			cfg:   flow.Config{"path": "a.jsonl"},
			want:  "in:1={}\nin:2=" + long + "\nin:3={}\n",
		},
		{
			name:    "batch size",
			files:   map[string]string{"a.jsonl": "1\n2\n3\n4\n5\n"},
			cfg:     flow.Config{"path": "a.jsonl", "batch_size": 2},
			want:    "in:1=1\nin:2=2\nin:3=3\nin:4=4\nin:5=5\n",
			batches: []int{2, 2, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				ioWriteFile(t, filepath.Join(dir, name), data)
			}
			em := newIOTestEmitter()
			if err := ioRunSource(t, ioNewSource(t, "file", "in", dir, tt.cfg), em); err != nil {
				t.Fatal(err)
			}
			evs := em.events()
			if got := ioDescribe(evs); got != tt.want {
				t.Errorf("events:\n got %.300q\nwant %.300q", got, tt.want)
			}
			if tt.batches != nil {
				var sizes []int
				for _, b := range em.batches {
					sizes = append(sizes, len(b))
				}
				if fmt.Sprint(sizes) != fmt.Sprint(tt.batches) {
					t.Errorf("batch sizes %v, want %v", sizes, tt.batches)
				}
			}
			for _, e := range evs {
				if e.Source != "in" {
					t.Errorf("source = %q", e.Source)
				}
				if tt.ctype != "" && e.DataContentType != tt.ctype {
					t.Errorf("datacontenttype = %q, want %q", e.DataContentType, tt.ctype)
				}
				if tt.etype != "" && e.Type != tt.etype {
					t.Errorf("type = %q, want %q", e.Type, tt.etype)
				}
			}
		})
	}
}

func TestFileSourceOpenErrors(t *testing.T) {
	dir := t.TempDir()
	src := ioNewSource(t, "file", "in", dir, flow.Config{"path": "missing/*.jsonl"})
	err := src.(flow.Opener).Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no file matches") || !strings.Contains(err.Error(), dir) {
		t.Errorf("open error = %v; want one naming the resolved path", err)
	}
	// follow waits for files instead.
	src = ioNewSource(t, "file", "in", dir, flow.Config{"path": "missing/*.jsonl", "follow": true})
	if err := src.(flow.Opener).Open(context.Background()); err != nil {
		t.Errorf("follow open: %v", err)
	}
}

func TestFileSourceValidate(t *testing.T) {
	spec, _ := NewRegistry().Lookup(flow.RoleSource, "file")
	tests := []struct {
		name string
		cfg  flow.Config
		want string // substring of the error; "" = valid
	}{
		{"ok", flow.Config{"path": "x"}, ""},
		{"missing path", flow.Config{}, "path: is required"},
		{"bad glob", flow.Config{"path": "[x"}, "not a valid glob"},
		{"batch too big", flow.Config{"path": "x", "batch_size": 300}, "batch_size: 300 is out of range"},
		{"batch zero", flow.Config{"path": "x", "batch_size": 0}, "out of range"},
		{"unknown format", flow.Config{"path": "x", "format": "csv"}, `unknown format "csv"`},
		{"bad poll", flow.Config{"path": "x", "poll_interval": "soon"}, "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := spec.Validate(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
			var fe *flow.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a *flow.FieldError", err)
			}
		})
	}
}

// A following source picks up appended lines (completing a half-written
// one), a new file matching the glob, a truncated file and a rotated one.
func TestFileSourceFollow(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.log")
	ioWriteFile(t, a, "{\"a\":1}\n")
	src := ioNewSource(t, "file", "tail", dir, flow.Config{"path": "*.log", "follow": true, "poll_interval": "10ms"})
	em := newIOTestEmitter()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, em) }()

	em.waitEvents(t, 1)
	// A half-written line is held until its newline arrives.
	ioAppendFile(t, a, "{\"a\":2}\n{\"a\":")
	em.waitEvents(t, 2)
	time.Sleep(50 * time.Millisecond)
	if n := len(em.events()); n != 2 {
		t.Fatalf("partial line emitted early: %s", ioDescribe(em.events()))
	}
	ioAppendFile(t, a, "3}\n")
	em.waitEvents(t, 3)

	// A new file matching the glob.
	ioWriteFile(t, filepath.Join(dir, "b.log"), "{\"b\":1}\n")
	em.waitEvents(t, 4)

	// Truncation: the file starts again, numbered from line 1.
	if err := os.Truncate(a, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	ioAppendFile(t, a, "{\"a\":\"after truncate\"}\n")
	em.waitEvents(t, 5)

	// Rotation: rename away, write a new file under the same name.
	ioAppendFile(t, a, "{\"a\":\"before rotate\"}\n")
	em.waitEvents(t, 6)
	if err := os.Rename(a, filepath.Join(dir, "a.log.1")); err != nil {
		t.Fatal(err)
	}
	ioWriteFile(t, a, "{\"a\":\"rotated\"}\n")
	evs := em.waitEvents(t, 7)

	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	want := strings.Join([]string{
		`tail:a.log:1={"a":1}`,
		`tail:a.log:2={"a":2}`,
		`tail:a.log:3={"a":3}`,
		`tail:b.log:1={"b":1}`,
		`tail:a.log:1={"a":"after truncate"}`,
		`tail:a.log:2={"a":"before rotate"}`,
		`tail:a.log:1={"a":"rotated"}`,
	}, "\n") + "\n"
	if got := ioDescribe(evs); got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}
}

// Run returns promptly when ctx is done while Emit is blocked
// (backpressure), and reports no error.
func TestFileSourceStopsUnderBackpressure(t *testing.T) {
	dir := t.TempDir()
	ioWriteFile(t, filepath.Join(dir, "a.jsonl"), strings.Repeat("{}\n", 1000))
	src := ioNewSource(t, "file", "in", dir, flow.Config{"path": "a.jsonl", "batch_size": 10})
	em := newIOTestEmitter()
	em.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, em) }()
	em.gate <- struct{}{} // let one batch through
	em.waitEvents(t, 10)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n := len(em.events()); n != 10 {
		t.Errorf("%d events emitted while blocked, want 10", n)
	}
}

// ioBenchLines writes n lines shaped like the benchmark workload.
func ioBenchLines(tb testing.TB, path string, n int) {
	tb.Helper()
	var b strings.Builder
	kinds := []string{"payment", "trade", "fee"}
	for i := range n {
		fmt.Fprintf(&b, `{"id":%d,"ts":"2026-01-01T00:00:00Z","account":"acct-%d","amount":%d,"kind":"%s"}`+"\n", i, i%1000, (i*7919)%10000, kinds[i%3])
	}
	ioWriteFile(tb, path, b.String())
}

// ioCountEmitter counts events and recycles batch slices as the engine
// does, so the benchmark measures the source alone.
type ioCountEmitter struct{ n int }

func (c *ioCountEmitter) Emit(_ context.Context, b []*flow.Event, _ func(error)) error {
	c.n += len(b)
	flow.RecycleBatch(b)
	return nil
}

func (c *ioCountEmitter) Reject(context.Context, []*flow.Event, []error, func(error)) error {
	return errors.New("the benchmark's lines are valid")
}

// BenchmarkFileSource100k reads 100,000 JSON lines (the W1 shape) per
// iteration; ns/op ÷ 100,000 is the cost per event. The emitter is a
// flow.Rejecter, as the engine's is, so strict JSON checks every line.
func BenchmarkFileSource100k(b *testing.B) { benchFileSource(b, "strict") }

// BenchmarkFileSource100kLenient is the same without the JSON check: the
// difference is what strict mode costs per event.
func BenchmarkFileSource100kLenient(b *testing.B) { benchFileSource(b, "lenient") }

func benchFileSource(b *testing.B, mode string) {
	const lines = 100_000
	dir := b.TempDir()
	ioBenchLines(b, filepath.Join(dir, "in.jsonl"), lines)
	src := ioNewSource(b, "file", "in", dir, flow.Config{"path": "in.jsonl", "json": mode})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		em := &ioCountEmitter{}
		if err := src.Run(context.Background(), em); err != nil {
			b.Fatal(err)
		}
		if em.n != lines {
			b.Fatalf("read %d lines", em.n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/event")
}

// ioRejectEmitter is an ioTestEmitter that also takes rejected events, as
// the engine's emitter does.
type ioRejectEmitter struct {
	*ioTestEmitter
	rejected []string // "id: error"
}

func (m *ioRejectEmitter) Reject(_ context.Context, evs []*flow.Event, errs []error, done func(error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, e := range evs {
		if !errors.Is(errs[i], flow.ErrMalformedJSON) {
			return fmt.Errorf("reject %s: %v does not wrap ErrMalformedJSON", e.ID, errs[i])
		}
		m.rejected = append(m.rejected, e.ID+": "+errs[i].Error())
	}
	if done != nil {
		done(nil)
	}
	return nil
}

func TestFileSourceMalformedLines(t *testing.T) {
	const in = "{\"n\":1}\n" +
		"{\"n\":\n" + // syntax
		"{\"n\":1e999}\n" + // +Inf
		"{\"n\":123456789012345678901234567890}\n" + // not int64, not exactly float64
		"{\"s\":\"a\xffb\"}\n" + // invalid UTF-8
		"{\"s\":\"\\ud800\"}\n" + // lone surrogate
		"{\"n\":9223372036854775807,\"s\":\"\\ud83d\\ude00 é\"}\n" +
		"{\"n\":2"
	for _, tc := range []struct {
		name     string
		cfg      flow.Config
		want     string
		rejected []string
	}{
		{"strict by default", flow.Config{"path": "a.jsonl"},
			"in:1={\"n\":1}\nin:7={\"n\":9223372036854775807,\"s\":\"\\ud83d\\ude00 é\"}\n",
			[]string{
				"in:2: invalid JSON at offset 5: unexpected end of input in value",
				"in:3: invalid JSON at offset 5: number 1e999 is beyond the range of float64",
				"in:4: invalid JSON at offset 5: integer 123456789012345678901234567890 does not fit in int64",
				"in:5: invalid JSON at offset 7: invalid UTF-8 byte 0xff",
				"in:6: invalid JSON at offset 6: \\uD800 is half of a UTF-16 surrogate pair",
				"in:8: invalid JSON at offset 6: unexpected end of input in object",
			}},
		{"lenient", flow.Config{"path": "a.jsonl", "json": "lenient"},
			"in:1={\"n\":1}\nin:2={\"n\":\nin:3={\"n\":1e999}\nin:4={\"n\":123456789012345678901234567890}\n" +
				"in:5={\"s\":\"a\xffb\"}\nin:6={\"s\":\"\\ud800\"}\nin:7={\"n\":9223372036854775807,\"s\":\"\\ud83d\\ude00 é\"}\nin:8={\"n\":2\n",
			nil},
		{"raw lines are not JSON", flow.Config{"path": "a.jsonl", "format": "lines"}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ioWriteFile(t, filepath.Join(dir, "a.jsonl"), in)
			em := &ioRejectEmitter{ioTestEmitter: newIOTestEmitter()}
			if err := ioRunSource(t, ioNewSource(t, "file", "in", dir, tc.cfg), em); err != nil {
				t.Fatal(err)
			}
			if got := ioDescribe(em.events()); tc.want != "" && got != tc.want {
				t.Errorf("emitted:\n got %q\nwant %q", got, tc.want)
			}
			if tc.name == "raw lines are not JSON" && len(em.events()) != 8 {
				t.Errorf("format lines emitted %d events, want all 8", len(em.events()))
			}
			if len(em.rejected) != len(tc.rejected) {
				t.Fatalf("rejected %q, want %d", em.rejected, len(tc.rejected))
			}
			for i, want := range tc.rejected {
				if !strings.HasPrefix(em.rejected[i], want) {
					t.Errorf("rejected[%d] = %q, want it to start %q", i, em.rejected[i], want)
				}
			}
		})
	}
}

func TestLineSourceJSONModeValidate(t *testing.T) {
	spec, err := NewRegistry().Lookup(flow.RoleSource, "stdin")
	if err != nil {
		t.Fatal(err)
	}
	err = spec.Validate(flow.Config{"json": "loose"})
	if err == nil || !strings.Contains(err.Error(), "json") {
		t.Fatalf("Validate(json: loose) = %v; want an error about json", err)
	}
}
