package flow

import (
	"sync"
	"testing"
	"time"
)

// TestEventBlock hands out events from several goroutines (run with
// -race): every one is distinct and zero, and WithDataInto fills it as
// WithData would, with an empty view.
func TestEventBlock(t *testing.T) {
	var b EventBlock
	in := &Event{ID: "s:1", Source: "s", Type: "t", Subject: "x", DataContentType: "application/json",
		Time: time.Unix(1, 0), Metadata: map[string]string{"k": "v"}, Data: []byte(`{"a":1}`)}
	if !in.StrictJSON() || in.Index() == nil {
		t.Fatal("input not indexed")
	}
	const workers, each = 4, 3 * eventBlockSize
	got := make([][]*Event, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				e := b.New()
				if e.ID != "" || e.Data != nil || e.view.strict.Load() != 0 || e.view.members.Load() != nil {
					t.Error("New returned an event that is not zero")
				}
				got[w] = append(got[w], in.WithDataInto(e, []byte(`{"b":2}`)))
			}
		})
	}
	wg.Wait()
	seen := map[*Event]bool{}
	for _, evs := range got {
		for _, e := range evs {
			if seen[e] {
				t.Fatal("an event was handed out twice")
			}
			seen[e] = true
			want := in.WithData([]byte(`{"b":2}`))
			if e.ID != want.ID || e.Source != want.Source || e.Type != want.Type || e.Subject != want.Subject ||
				e.DataContentType != want.DataContentType || !e.Time.Equal(want.Time) || e.Metadata["k"] != "v" || string(e.Data) != `{"b":2}` {
				t.Fatalf("WithDataInto = %+v, WithData = %+v", e, want)
			}
			if idx := e.Index(); idx == nil || idx.Len() != 1 {
				t.Fatal("the copy kept the input's view instead of building its own")
			}
		}
	}
}
