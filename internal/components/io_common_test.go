package components

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// ioTestEmitter is a real flow.Emitter for tests: it records what it is
// given, can hold Emit blocked (backpressure) until released or ctx is
// done, and acknowledges batches when asked.
type ioTestEmitter struct {
	mu      sync.Mutex
	batches [][]*flow.Event
	dones   []func(error)
	// gate, when set, makes Emit wait for a receive on it (or ctx).
	gate chan struct{}
	// autoAck calls done(nil) as soon as a batch is taken.
	autoAck bool
	changed chan struct{}
}

func newIOTestEmitter() *ioTestEmitter {
	return &ioTestEmitter{changed: make(chan struct{}, 1)}
}

func (m *ioTestEmitter) Emit(ctx context.Context, batch []*flow.Event, done func(error)) error {
	if len(batch) == 0 || len(batch) > ioMaxBatch {
		return fmt.Errorf("test emitter: batch of %d events", len(batch))
	}
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	m.batches = append(m.batches, batch)
	if done != nil && !m.autoAck {
		m.dones = append(m.dones, done)
	}
	m.mu.Unlock()
	if done != nil && m.autoAck {
		done(nil)
	}
	select {
	case m.changed <- struct{}{}:
	default:
	}
	return nil
}

// events returns every event emitted so far, in order.
func (m *ioTestEmitter) events() []*flow.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*flow.Event
	for _, b := range m.batches {
		out = append(out, b...)
	}
	return out
}

// ackAll acknowledges every batch waiting for its done callback.
func (m *ioTestEmitter) ackAll(err error) int {
	m.mu.Lock()
	dones := m.dones
	m.dones = nil
	m.mu.Unlock()
	for _, d := range dones {
		d(err)
	}
	return len(dones)
}

// waitEvents waits until at least n events were emitted.
func (m *ioTestEmitter) waitEvents(t *testing.T, n int) []*flow.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if evs := m.events(); len(evs) >= n {
			return evs
		}
		select {
		case <-m.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %d events; have %d: %s", n, len(m.events()), ioDescribe(m.events()))
		}
	}
}

// ioDescribe renders events as "id=data" lines for failure messages and
// comparisons.
func ioDescribe(evs []*flow.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s=%s\n", e.ID, e.Data)
	}
	return b.String()
}

func TestIOLineReader(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	tests := []struct {
		name      string
		in        string
		bufSize   int
		max       int
		skipEmpty bool
		oneByte   bool
		want      []string // "num:line"
		batches   []int
	}{
		{name: "plain", in: "a\nb\nc\n", want: []string{"1:a", "2:b", "3:c"}, batches: []int{3}},
		{name: "crlf", in: "a\r\nb\r\n", want: []string{"1:a", "2:b"}},
		{name: "no trailing newline", in: "a\nb", want: []string{"1:a", "2:b"}},
		{name: "blank lines skipped but counted", in: "a\n\n\r\nb\n", skipEmpty: true, want: []string{"1:a", "4:b"}},
		{name: "blank lines kept", in: "a\n\nb\n", want: []string{"1:a", "2:", "3:b"}},
		{name: "only blank lines", in: "\n\n\n", skipEmpty: true, want: nil},
		{name: "batch limit", in: "1\n2\n3\n4\n5\n", max: 2, want: []string{"1:1", "2:2", "3:3", "4:4", "5:5"}, batches: []int{2, 2, 1}},
		{name: "long line grows a small buffer", in: "a\n" + long + "\nb\n", bufSize: 16, want: []string{"1:a", "2:" + long, "3:b"}},
		{name: "one byte reads", in: "ab\ncd\n", oneByte: true, bufSize: 4, want: []string{"1:ab", "2:cd"}},
		{name: "empty", in: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r io.Reader = strings.NewReader(tt.in)
			if tt.oneByte {
				r = iotest.OneByteReader(r)
			}
			size := tt.bufSize
			if size == 0 {
				size = 1 << 10
			}
			max := tt.max
			if max == 0 {
				max = 256
			}
			lr := newIOLineReader(r, size)
			var got []string
			var sizes []int
			for {
				lines, nums, err := lr.next(max, tt.skipEmpty)
				if len(lines) > 0 {
					sizes = append(sizes, len(lines))
				}
				for i, l := range lines {
					got = append(got, fmt.Sprintf("%d:%s", nums[i], l))
				}
				if err == io.EOF {
					if last, n := lr.rest(); last != nil {
						got = append(got, fmt.Sprintf("%d:%s", n, last))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("lines:\n got %.200q\nwant %.200q", got, tt.want)
			}
			if tt.batches != nil && fmt.Sprint(sizes) != fmt.Sprint(tt.batches) {
				t.Errorf("batch sizes = %v, want %v", sizes, tt.batches)
			}
		})
	}
}

// A line handed out must not change when the reader moves on: each batch
// has its own backing array.
func TestIOLineReaderLinesStayValid(t *testing.T) {
	lr := newIOLineReader(iotest.HalfReader(strings.NewReader("first\nsecond\nthird\n")), 8)
	var kept [][]byte
	for {
		lines, _, err := lr.next(1, true)
		kept = append(kept, lines...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := string(bytes.Join(kept, []byte(","))); got != "first,second,third" {
		t.Errorf("kept lines = %q", got)
	}
	// Appending to one line must not overwrite the next (capacity is
	// clipped).
	_ = append(kept[0], 'X')
	if string(kept[1]) != "second" {
		t.Errorf("append to a line clobbered the next: %q", kept[1])
	}
}

// An overlong line is skipped with an error naming it, and reading goes
// on with the next line; a reader that never sends a newline cannot make
// the buffer grow past the limit.
func TestIOLineReaderTooLong(t *testing.T) {
	in := "short\n" + strings.Repeat("x", 5000) + "\nafter\n" + strings.Repeat("y", 3000)
	lr := newIOLineReader(strings.NewReader(in), 64)
	lr.maxLine = 1024
	var got []string
	var skipped []string
	for {
		lines, nums, err := lr.next(10, true)
		for i, l := range lines {
			got = append(got, fmt.Sprintf("%d:%s", nums[i], l))
		}
		if errors.Is(err, errIOLineTooLong) {
			skipped = append(skipped, err.Error())
			continue
		}
		if err == io.EOF {
			if last, n := lr.rest(); last != nil {
				got = append(got, fmt.Sprintf("%d:%.10s", n, last))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(lr.buf) > 1024 {
			t.Fatalf("buffer grew to %d bytes, limit 1024", len(lr.buf))
		}
	}
	if len(lr.buf) != 64 {
		t.Errorf("buffer stays at %d bytes after the long lines, want back to 64", len(lr.buf))
	}
	if strings.Join(got, "|") != "1:short|3:after" {
		t.Errorf("lines %q", got)
	}
	if len(skipped) != 2 || !strings.Contains(skipped[0], "line 2 skipped") || !strings.Contains(skipped[1], "line 4 skipped") {
		t.Errorf("skipped %q", skipped)
	}

	// An endless line never grows the buffer past the limit. (The next
	// call would go on dropping bytes until a newline: do not make it.)
	lr = newIOLineReader(ioRepeatReader('x'), 1<<10)
	lr.maxLine = 1 << 16
	if _, _, err := lr.next(10, true); !errors.Is(err, errIOLineTooLong) {
		t.Fatalf("err = %v, want errIOLineTooLong", err)
	}
	if len(lr.buf) > 1<<16 {
		t.Errorf("buffer grew to %d", len(lr.buf))
	}
}

type ioRepeatReader byte

func (b ioRepeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func TestIOLineEventsBuild(t *testing.T) {
	b := ioLineEvents{source: "src", eventType: "t", contentType: "application/json"}
	evs := b.build("src:", [][]byte{[]byte(`{"a":1}`), []byte(`{"a":2}`)}, []int64{7, 10})
	if len(evs) != 2 || evs[0].ID != "src:7" || evs[1].ID != "src:10" {
		t.Fatalf("ids: %s", ioDescribe(evs))
	}
	for _, e := range evs {
		if e.Source != "src" || e.Type != "t" || e.DataContentType != "application/json" {
			t.Errorf("event %+v", e)
		}
	}
	// The second build must not change the first batch's ids (shared
	// scratch is copied into a new string).
	b.build("src:", [][]byte{[]byte("x")}, []int64{99})
	if evs[0].ID != "src:7" {
		t.Errorf("first batch id changed to %q", evs[0].ID)
	}
	lines := make([][]byte, 256)
	nums := make([]int64, 256)
	for i := range lines {
		lines[i] = []byte(`{}`)
		nums[i] = int64(i + 1000000)
	}
	allocs := testing.AllocsPerRun(100, func() { b.build("src:", lines, nums) })
	if allocs > 3 {
		t.Errorf("build of 256 events: %v allocations, want ≤ 3", allocs)
	}
}

func TestIOIncDecimal(t *testing.T) {
	for _, n := range []int64{0, 1, 8, 9, 10, 99, 199, 999, 123456789} {
		got := string(ioIncDecimal([]byte(strconv.FormatInt(n, 10))))
		if want := strconv.FormatInt(n+1, 10); got != want {
			t.Errorf("inc(%d) = %s, want %s", n, got, want)
		}
	}
	b := ioLineEvents{}
	evs := b.build("x:", make([][]byte, 5), []int64{8, 9, 10, 12, 13})
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	if got := strings.Join(ids, ","); got != "x:8,x:9,x:10,x:12,x:13" {
		t.Errorf("ids = %s", got)
	}
}

func TestIOAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "nl\ncr\rtab\t", "\x00\x1f", "héllo ☃", "bad\xffutf8", "<html>&"} {
		got := flow.AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q → %s: not JSON: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Errorf("%q → %s → %q", s, got, back)
		}
	}
}

func TestIOAppendEnvelope(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	tests := []struct {
		name string
		e    *flow.Event
		want string
	}{
		{"json data", &flow.Event{ID: "s:1", Source: "s", Type: "t", Data: []byte(`{"a":1}`)},
			`{"specversion":"1.0","id":"s:1","source":"s","type":"t","datacontenttype":"application/json","data":{"a":1}}`},
		{"all attributes and metadata", &flow.Event{ID: "i", Source: "s", Type: "t", Subject: "sub", Time: ts, DataContentType: "application/json",
			Data: []byte(`[1, 2]`), Metadata: map[string]string{"zeta": "z", "alpha": "a", "id": "shadow"}},
			`{"specversion":"1.0","id":"i","source":"s","type":"t","time":"2026-01-02T03:04:05.000006Z","subject":"sub","datacontenttype":"application/json","alpha":"a","zeta":"z","data":[1, 2]}`},
		{"malformed json becomes a string", &flow.Event{ID: "i", Source: "s", Type: "t", Data: []byte(`{"a":`)},
			`{"specversion":"1.0","id":"i","source":"s","type":"t","datacontenttype":"application/json","data":"{\"a\":"}`},
		{"text", &flow.Event{ID: "i", Source: "s", Type: "t", DataContentType: "text/plain", Data: []byte(`hello "x"`)},
			`{"specversion":"1.0","id":"i","source":"s","type":"t","datacontenttype":"text/plain","data":"hello \"x\""}`},
		{"binary", &flow.Event{ID: "i", Source: "s", Type: "t", DataContentType: "application/octet-stream", Data: []byte{0xff, 0x00}},
			`{"specversion":"1.0","id":"i","source":"s","type":"t","datacontenttype":"application/octet-stream","data_base64":"/wA="}`},
		{"multi-line json compacted", &flow.Event{ID: "i", Source: "s", Type: "t", Data: []byte("{\n  \"a\": 1\n}")},
			`{"specversion":"1.0","id":"i","source":"s","type":"t","datacontenttype":"application/json","data":{"a":1}}`},
		{"no data", &flow.Event{ID: "i", Source: "s", Type: "t"},
			`{"specversion":"1.0","id":"i","source":"s","type":"t","datacontenttype":"application/json"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(ioAppendEnvelope(nil, tt.e))
			if got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

func TestIOAppendLine(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"original bytes kept", `{"b":2, "a":1}`, `{"b":2, "a":1}`},
		{"multi-line json compacted", "{\n\"a\": 1\n}", `{"a":1}`},
		{"malformed passed through", `{"a":`, `{"a":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(ioAppendLine(nil, &flow.Event{Data: []byte(tt.data)}, ioFormatData))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIOParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-5", 0, true},
		{"Fri, 27 Nov 2026 08:00:07 GMT", 7 * time.Second, true},
		{"Fri, 27 Nov 2026 07:00:00 GMT", 0, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := ioParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ioParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// Every I/O built-in is registered once, and its own defaults pass its
// own validation.
func TestIOSpecsRegistered(t *testing.T) {
	r := NewRegistry()
	required := map[string]flow.Config{
		"source.file":  {"path": "x.jsonl"},
		"source.stdin": {},
		"source.http":  {},
		"sink.stdout":  {},
		"sink.file":    {"path": "out.jsonl"},
		"sink.http":    {"url": "http://127.0.0.1:1/"},
		"sink.sqlite":  {"path": "x.db", "table": "t"},
		"sink.drop":    {},
	}
	for id, base := range required {
		role, name, _ := strings.Cut(id, ".")
		s, err := r.Lookup(flow.Role(role), name)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		cfg := flow.Config{}
		for _, f := range s.Fields {
			if f.Default != nil {
				cfg[f.Name] = f.Default
			}
		}
		for k, v := range base {
			cfg[k] = v
		}
		if s.Validate != nil {
			if err := s.Validate(cfg); err != nil {
				t.Errorf("%s: defaults do not validate: %v", id, err)
			}
		}
		if _, err := s.New(flow.BuildContext{Name: "c", Config: cfg, Dir: t.TempDir()}); err != nil {
			t.Errorf("%s: New with defaults: %v", id, err)
		}
		if s.Summary == "" {
			t.Errorf("%s: no summary", id)
		}
	}
}
