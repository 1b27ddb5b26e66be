package components

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

func TestDedupeValidate(t *testing.T) {
	procCheckValidate(t, flow.RoleProcessor, "dedupe", []procValidateCase{
		{"valid", flow.Config{"key": "data.id", "window": 10000}, nil},
		{"valid default window", flow.Config{"key": "[data.account, data.ts]"}, nil},
		{"missing key", flow.Config{"window": 5}, []string{`key: is required — say what identifies an event, for example key: "data.id"`}},
		{"bad key", flow.Config{"key": "data.id +"}, []string{
			"key: syntax error: the expression ends where a value is expected at column 10 — check the CEL syntax: && || ! for logic, == != < <= > >= to compare, \"text\" or 'text' for strings",
		}},
		{"zero window", flow.Config{"key": "data.id", "window": 0}, []string{"window: must be at least 1, got 0 — the number of keys to remember, for example 10000"}},
		{"both wrong", flow.Config{"key": "x", "window": -1}, []string{
			"key: undeclared reference to 'x' at column 1 — did you mean data.x? the variables are data, id, type, source, subject, time and metadata; payload fields are data.<field>",
			"window: must be at least 1, got -1 — the number of keys to remember, for example 10000",
		}},
	})
}

func TestDedupeProcess(t *testing.T) {
	tests := []struct {
		name   string
		cfg    flow.Config
		stream []string // payloads in order
		kept   string   // indexes of the kept events
	}{
		{"drops repeats", flow.Config{"key": "data.id"},
			[]string{`{"id":1}`, `{"id":2}`, `{"id":1}`, `{"id":3}`, `{"id":2}`}, "0 1 3"},
		{"types differ", flow.Config{"key": "data.id"},
			[]string{`{"id":7}`, `{"id":"7"}`, `{"id":7.5}`, `{"id":7}`}, "0 1 2"},
		{"composite key", flow.Config{"key": "[data.a, data.b]"},
			[]string{`{"a":1,"b":1}`, `{"a":1,"b":2}`, `{"b":1,"a":1}`}, "0 1"},
		{"object key", flow.Config{"key": "data.user"},
			[]string{`{"user":{"x":1,"y":2}}`, `{"user":{"y":2,"x":1}}`, `{"user":{"x":2}}`}, "0 2"},
		{"window forgets the oldest", flow.Config{"key": "data.id", "window": 2},
			// 1 2 | 3 evicts 1 | 1 is new again, evicts 2 | 3 still remembered
			[]string{`{"id":1}`, `{"id":2}`, `{"id":3}`, `{"id":1}`, `{"id":3}`, `{"id":2}`}, "0 1 2 3 5"},
		{"window of one", flow.Config{"key": "data.id", "window": 1},
			[]string{`{"id":1}`, `{"id":1}`, `{"id":2}`, `{"id":1}`}, "0 2 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := procNew(t, "dedupe", tt.cfg)
			var kept []string
			for i, data := range tt.stream {
				in := procEvent(fmt.Sprint("src:", i), "t", data)
				out, err := p.Process(context.Background(), in, nil)
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				switch len(out) {
				case 0:
				case 1:
					if out[0] != in {
						t.Fatalf("event %d: dedupe must pass the event itself", i)
					}
					kept = append(kept, fmt.Sprint(i))
				default:
					t.Fatalf("event %d: %d outputs", i, len(out))
				}
			}
			if got := strings.Join(kept, " "); got != tt.kept {
				t.Errorf("kept %q, want %q", got, tt.kept)
			}
		})
	}
}

func TestDedupeKeyError(t *testing.T) {
	p := procNew(t, "dedupe", flow.Config{"key": "data.id"})
	_, err := p.Process(context.Background(), procEvent("src:1", "t", `{"other":1}`), nil)
	if err == nil || !strings.Contains(err.Error(), "no such key: id") {
		t.Fatalf("error = %v", err)
	}
}

// TestDedupeConcurrent feeds every key twice from parallel workers: each
// key must pass exactly once, and memory must stay within the window.
func TestDedupeConcurrent(t *testing.T) {
	const keys, workers = 2000, 4
	p := procNew(t, "dedupe", flow.Config{"key": "data.id", "window": keys})
	var passed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range keys {
				id := (i + w*keys/workers) % keys // workers overlap on every key
				out, err := p.Process(context.Background(), procEvent("x", "t", fmt.Sprintf(`{"id":%d}`, id)), nil)
				if err != nil {
					t.Error(err)
					return
				}
				passed.Add(int64(len(out)))
			}
		})
	}
	wg.Wait()
	if passed.Load() != keys {
		t.Errorf("%d events passed, want %d (one per key)", passed.Load(), keys)
	}
	d := p.(*dedupeProcessor)
	if len(d.seen) != keys || len(d.ring) != keys {
		t.Errorf("remembers %d keys in a ring of %d, want %d", len(d.seen), len(d.ring), keys)
	}
}
