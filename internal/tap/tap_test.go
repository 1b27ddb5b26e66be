package tap

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

var comps = map[string]flow.Role{"src": flow.RoleSource, "proc": flow.RoleProcessor, "sink": flow.RoleSink}

func TestResolvePoint(t *testing.T) {
	tests := []struct {
		spec    string
		want    Point
		wantErr string
	}{
		{"src", Point{Component: "src"}, ""},
		{"src:out", Point{Component: "src"}, ""},
		{"proc:in", Point{Component: "proc", In: true}, ""},
		{"sink", Point{Component: "sink", In: true}, ""},
		{"sink:in", Point{Component: "sink", In: true}, ""},
		{"src:in", Point{}, `source "src" has no input`},
		{"sink:out", Point{}, `sink "sink" has no output`},
		{"proc:sideways", Point{}, "use :out (what it emits) or :in"},
		{"nope", Point{}, `no component "nope" in the pipeline: its components are proc, sink, src`},
		{"", Point{}, "name the component"},
	}
	for _, tc := range tests {
		got, err := ResolvePoint(tc.spec, comps)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ResolvePoint(%q) error = %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ResolvePoint(%q) = %v, %v, want %v", tc.spec, got, err, tc.want)
		}
	}
	all, err := ResolvePoints(nil, comps)
	if err != nil || len(all) != 2 || all[0].String() != "proc:out" || all[1].String() != "src:out" {
		t.Errorf("ResolvePoints(none) = %v, %v", all, err)
	}
}

func events(n int, typ string) []*flow.Event {
	out := make([]*flow.Event, n)
	for i := range out {
		out[i] = &flow.Event{ID: typ + string(rune('a'+i%26)), Type: typ, Data: []byte(`{"i":` + string(rune('0'+i%10)) + `}`)}
	}
	return out
}

// TestHubDropsInsteadOfBlocking: a subscriber that does not read never
// blocks Publish; what did not fit is counted.
func TestHubDropsInsteadOfBlocking(t *testing.T) {
	h := NewHub()
	h.Publish("src", false, events(10, "t")) // nobody watches: nothing kept
	s := h.Subscribe([]Point{{Component: "src"}}, 4)
	other := h.Subscribe([]Point{{Component: "proc", In: true}}, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			h.Publish("src", false, events(10, "t"))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	if len(s.C) != 4 || s.Dropped() != 996 {
		t.Errorf("kept %d, dropped %d; want 4 and 996", len(s.C), s.Dropped())
	}
	if len(other.C) != 0 || other.Dropped() != 0 {
		t.Errorf("a subscriber of another point got %d", len(other.C))
	}
	h.Unsubscribe(s)
	h.Unsubscribe(other)
	if h.Watching() != 0 {
		t.Errorf("Watching() = %d after unsubscribing all", h.Watching())
	}
	var nilHub *Hub
	nilHub.Publish("src", false, events(1, "t")) // a nil hub watches nothing
}

// TestHandler streams through a real HTTP server: the watching record
// first, filters, the limit, and the request errors.
func TestHandler(t *testing.T) {
	h := NewHub()
	srv := httptest.NewServer(Handler(h, func() map[string]flow.Role { return comps }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var got []Record
	errc := make(chan error, 1)
	go func() {
		errc <- Watch(ctx, srv.Client(), srv.URL, Request{Points: []string{"proc:in", "src"}, Types: []string{"keep"}, Where: `data.i >= 5`, Limit: 3},
			func(r Record) error {
				got = append(got, r)
				if r.Watching != "" {
					// Subscribed: publish a mix; only "keep" events with
					// i >= 5 pass.
					go func() {
						h.Publish("src", false, events(10, "drop"))
						h.Publish("proc", true, events(10, "keep"))
					}()
				}
				return nil
			})
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(got) < 5 || got[0].Watching != "proc:in,src:out" || got[len(got)-1].End != "limit" {
		t.Fatalf("records: %+v", got)
	}
	n := 0
	for _, r := range got {
		if r.Event == nil {
			continue
		}
		n++
		if r.Event.Type != "keep" || r.Event.Point != "proc:in" || string(r.Event.Data) < `{"i":5}` {
			t.Errorf("event %+v passed the filters", r.Event)
		}
	}
	if n != 3 {
		t.Errorf("%d events, want the limit 3", n)
	}

	for _, tc := range []struct {
		q    string
		code int
		want string
	}{
		{"point=nope", http.StatusNotFound, `no component \"nope\"`},
		{"point=src&where=data.i+%2B", http.StatusBadRequest, "--where"},
		{"point=src&limit=-1", http.StatusBadRequest, "limit"},
	} {
		resp, err := srv.Client().Get(srv.URL + Path + "?" + tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(b.String(), tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.q, resp.StatusCode, b.String(), tc.code, tc.want)
		}
	}
}

// TestHandlerEndsWhenTheRunEnds: after Hub.Close a stream sends the
// events it still holds, then End EndRun, and the server ends it: the
// client reads a complete stream, not one cut off when the run's server
// closes.
func TestHandlerEndsWhenTheRunEnds(t *testing.T) {
	h := NewHub()
	srv := httptest.NewServer(Handler(h, func() map[string]flow.Role { return comps }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []Record
	err := Watch(ctx, srv.Client(), srv.URL, Request{Points: []string{"src"}}, func(r Record) error {
		got = append(got, r)
		if r.Watching != "" {
			// The run's last batch, then its end, at once: the batch
			// is still queued for the stream when the hub closes.
			h.Publish("src", false, events(50, "last"))
			h.Close()
			h.Close() // twice is fine
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Watch: %v (records %d)", err, len(got))
	}
	n := 0
	for _, r := range got {
		if r.Event != nil {
			n++
		}
	}
	if n != 50 || got[len(got)-1].End != EndRun {
		t.Fatalf("%d events, last record %+v; want the 50 published, then End %q", n, got[len(got)-1], EndRun)
	}
	var nilHub *Hub
	nilHub.Close()
	if nilHub.Ended() != nil {
		t.Error("a nil hub never ends")
	}
}
