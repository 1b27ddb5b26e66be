package server

import (
	"fmt"
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
			got, _ := s.Tail("p", tc.component, tc.n, false)
			if texts(got) != tc.want {
				t.Errorf("tail = %q, want %q", texts(got), tc.want)
			}
		})
	}

	// Follow: no gap between the tail and the new lines.
	old, f := s.Tail("p", "", 1, true)
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
	if got, _ := s2.Tail("p", "", 3, false); texts(got) != "678" {
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
