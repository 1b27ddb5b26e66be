package server

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogStore(t *testing.T) {
	dir := t.TempDir()
	s, err := newLogStore(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		comp := "a"
		if i%2 == 1 {
			comp = "b"
		}
		s.Append(LogLine{Time: time.Now(), Pipeline: "p", Component: comp, Stream: "stderr", Text: fmt.Sprint(i), Run: 1})
	}
	texts := func(ls []LogLine) string {
		out := ""
		for _, l := range ls {
			out += l.Text
		}
		return out
	}
	cases := []struct {
		name, component string
		n               int
		want            string
	}{
		{name: "all kept (ring of 5)", n: 0, want: "34567"},
		{name: "tail 2", n: 2, want: "67"},
		{name: "tail of one component", component: "b", n: 2, want: "57"},
		{name: "none", n: -1, want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := s.Tail("p", LogFilter{Component: tc.component}, tc.n, false)
			if texts(got) != tc.want {
				t.Errorf("tail = %q, want %q", texts(got), tc.want)
			}
		})
	}

	// Follow: no gap between the tail and the new lines.
	old, f := s.Tail("p", LogFilter{}, 1, true)
	s.Append(LogLine{Pipeline: "p", Text: "8"})
	if got := texts(old) + (<-f.C).Text; got != "78" {
		t.Errorf("tail+follow = %q, want 78", got)
	}
	s.EndFollowers("p")
	if _, ok := <-f.C; ok {
		t.Error("follower still open after EndFollowers")
	}
	s.Close()

	// A new store over the same directory has the lines back.
	s2, err := newLogStore(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, _ := s2.Tail("p", LogFilter{}, 3, false); texts(got) != "678" {
		t.Errorf("after reopening: %q, want 678", texts(got))
	}
}

func TestComponentOf(t *testing.T) {
	known := map[string]bool{"enrich": true, "my sink": true}
	for _, tc := range []struct{ line, want string }{
		{`time=2026 level=WARN msg="x" pipeline=p component=enrich error=boom`, "enrich"},
		{`time=2026 level=WARN msg="x" component="my sink"`, "my sink"},
		{`enrich | python says hi`, "enrich"},
		{`other | not ours`, ""},
		{`pipeline "p" finished`, ""},
	} {
		if got := componentOf(tc.line, known); got != tc.want {
			t.Errorf("componentOf(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestWorkQueue(t *testing.T) {
	q := newWorkQueue(time.Millisecond, 10*time.Millisecond)
	q.Add("a")
	q.Add("a")
	q.Add("b")
	got, _ := q.Get()
	if got != "a" {
		t.Fatalf("first = %q", got)
	}
	// "a" is being processed: an add queues it again only after Done.
	q.Add("a")
	if got, _ := q.Get(); got != "b" {
		t.Fatalf("second = %q, want b", got)
	}
	q.Done("b")
	q.Done("a")
	if got, _ := q.Get(); got != "a" {
		t.Fatalf("third = %q, want a again", got)
	}
	q.Done("a")
	// Doubling, with jitter: between half and all of 1ms, then of 2ms.
	if d := q.AddRateLimited("c"); d < time.Millisecond/2 || d > time.Millisecond {
		t.Errorf("first backoff %s", d)
	}
	if d := q.AddRateLimited("c"); d < time.Millisecond || d > 2*time.Millisecond {
		t.Errorf("second backoff %s", d)
	}
	if got, _ := q.Get(); got != "c" {
		t.Fatalf("rate-limited = %q", got)
	}
	q.ShutDown()
	if _, ok := q.Get(); ok {
		t.Error("Get after ShutDown")
	}
}

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name, line                     string
		ok                             bool
		component, level, source, text string
		time                           string
	}{
		{name: "flowctl record", line: `{"time":"2026-12-06T08:00:00.5Z","level":"WARN","msg":"slow sink","component":"out","waited":"2s","n":3}`,
			ok: true, component: "out", level: "WARN", source: "flowctl", text: `level=WARN msg="slow sink" component=out waited=2s n=3`, time: "2026-12-06T08:00:00.5Z"},
		{name: "component output", line: `{"time":"2026-12-06T08:00:01Z","level":"INFO","msg":"x = 1 | y","component":"enrich","source":"component"}`,
			ok: true, component: "enrich", level: "INFO", source: "component", text: "x = 1 | y", time: "2026-12-06T08:00:01Z"},
		{name: "group and odd values", line: `{"level":"error","msg":"","err":{"a":1, "b":[1,2]},"q":"say \"hi\""}`,
			ok: true, level: "ERROR", source: "flowctl", text: `level=ERROR msg="" err={"a":1,"b":[1,2]} q="say \"hi\""`},
		{name: "not a record: no level", line: `{"msg":"hi"}`},
		{name: "not a record: JSON data", line: `{"id":1,"amount":5}`},
		{name: "text line", line: `time=2026 level=INFO msg=hi component=out`},
		{name: "broken JSON", line: `{"level":"INFO","msg":"hi"`},
		{name: "trailing text", line: `{"level":"INFO","msg":"hi"} and more}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := parseRecord(tc.line)
			if ok != tc.ok {
				t.Fatalf("parseRecord(%q) ok = %v, want %v", tc.line, ok, tc.ok)
			}
			if !ok {
				return
			}
			if r.component != tc.component || r.level != tc.level || r.source != tc.source || r.text != tc.text {
				t.Errorf("parseRecord(%q) = %+v", tc.line, r)
			}
			if tc.time != "" && r.time.Format(time.RFC3339Nano) != tc.time {
				t.Errorf("time = %v, want %s", r.time, tc.time)
			}
		})
	}
}

func TestLogFilter(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	lines := []LogLine{
		{Time: t0, Component: "a", Level: "DEBUG", Text: "1"},
		{Time: t0.Add(time.Second), Component: "b", Level: "INFO", Text: "2"},
		{Time: t0.Add(2 * time.Second), Component: "a", Text: "3"},
		{Time: t0.Add(3 * time.Second), Component: "a", Level: "WARN", Text: "4"},
		{Time: t0.Add(4 * time.Second), Level: "ERROR", Text: "5"},
	}
	tests := []struct {
		name string
		f    LogFilter
		want string
	}{
		{"all", LogFilter{}, "12345"},
		{"component", LogFilter{Component: "a"}, "134"},
		{"since", LogFilter{Since: t0.Add(2 * time.Second)}, "345"},
		{"info and up (no level counts as info)", LogFilter{HasLevel: true, MinLevel: slog.LevelInfo}, "2345"},
		{"warn and up of a", LogFilter{Component: "a", HasLevel: true, MinLevel: slog.LevelWarn}, "4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got strings.Builder
			for _, l := range lines {
				if tc.f.Keep(l) {
					got.WriteString(l.Text)
				}
			}
			if got.String() != tc.want {
				t.Errorf("kept %q, want %q", got.String(), tc.want)
			}
		})
	}
}

// The lines a restarted server reads back from a pipeline's log file are
// all there: a line whose JSON form is long (HTML, control characters:
// json escapes each such byte as six) does not hide the lines after it,
// and a line torn by a crash of the server does not swallow the next one.
func TestLogStoreReopenKeepsEveryLine(t *testing.T) {
	cases := []struct {
		name   string
		before func(t *testing.T, s *logStore, dir string)
	}{
		{"a line of 16 KiB of <", func(t *testing.T, s *logStore, _ string) {
			s.Append(LogLine{Pipeline: "p", Text: strings.Repeat("<", maxLineLen)})
		}},
		{"a line of control characters", func(t *testing.T, s *logStore, _ string) {
			s.Append(LogLine{Pipeline: "p", Text: strings.Repeat("\x01", maxLineLen)})
		}},
		{"a torn last line", func(t *testing.T, s *logStore, dir string) {
			s.Close()
			f, err := os.OpenFile(filepath.Join(dir, "p.log"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			// What a server killed in the middle of a write leaves.
			if _, err := f.WriteString(`{"time":"2026-12-07T07:00:00Z","stream":"std`); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := newLogStore(dir, 100)
			if err != nil {
				t.Fatal(err)
			}
			s.Append(LogLine{Pipeline: "p", Text: "first"})
			tc.before(t, s, dir)
			s.Close()
			s, err = newLogStore(dir, 100)
			if err != nil {
				t.Fatal(err)
			}
			s.Append(LogLine{Pipeline: "p", Text: "last"})
			s.Close()

			s, err = newLogStore(dir, 100)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := s.tailTexts("p")
			if len(got) < 2 || got[0] != "first" || got[len(got)-1] != "last" {
				t.Errorf("after reopening, the lines are %.40q; want first ... last", got)
			}
		})
	}
}

// tailTexts is the text of every kept line of pipeline.
func (s *logStore) tailTexts(pipeline string) []string {
	ls, _ := s.Tail(pipeline, LogFilter{}, 0, false)
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}

// A log file that ends with a whole line gets no empty line when a
// restarted server appends to it.
func TestLogStoreReopenAddsNoBlankLine(t *testing.T) {
	dir := t.TempDir()
	for _, text := range []string{"first", "second"} {
		s, err := newLogStore(dir, 10)
		if err != nil {
			t.Fatal(err)
		}
		s.Append(LogLine{Pipeline: "p", Text: text})
		s.Close()
	}
	b, err := os.ReadFile(filepath.Join(dir, "p.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 2 || strings.Contains(string(b), "\n\n") {
		t.Errorf("the log file holds %q; want two lines", b)
	}
}
