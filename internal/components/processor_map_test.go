package components

import (
	"context"
	"strings"
	"sync"
	"testing"

	"cel.dev/cel-go/common/types/ref"

	"github.com/flowctl/flowctl/internal/flow"
)

func TestMapValidate(t *testing.T) {
	procCheckValidate(t, flow.RoleProcessor, "map", []procValidateCase{
		{"set", flow.Config{"set": map[string]any{"cents": "data.amount * 100"}}, nil},
		{"delete", flow.Config{"delete": []any{"ts"}}, nil},
		{"set and delete", flow.Config{"set": map[string]any{"a": "1"}, "delete": []any{"b"}}, nil},
		{"expr", flow.Config{"expr": `{"id": data.id}`}, nil},
		{"expr dyn", flow.Config{"expr": `data.inner`}, nil},
		{"nothing", flow.Config{}, []string{`needs set, delete or expr — for example set: {total: "data.amount * 2"}, or expr: '{"id": data.id}'`}},
		{"expr with set", flow.Config{"expr": `{"id": 1}`, "set": map[string]any{"a": "1"}}, []string{"expr: cannot be combined with set or delete — use expr to build a whole new object, or set and delete to change fields of the incoming one"}},
		{"expr with delete", flow.Config{"expr": `{"id": 1}`, "delete": []any{"a"}}, []string{"expr: cannot be combined with set or delete — use expr to build a whole new object, or set and delete to change fields of the incoming one"}},
		{"expr not a map", flow.Config{"expr": `data.id > 1`}, []string{`expr: expression must return map, got bool — build an object, for example {"id": data.id, "total": data.amount * 2}`}},
		{"bad set entries", flow.Config{"set": map[string]any{"b": "data.x +", "a": "nope", "c": 3}}, []string{
			"set.a: undeclared reference to 'nope' at column 1 — did you mean data.nope? the variables are data, id, type, source, subject, time and metadata; payload fields are data.<field>",
			"set.b: syntax error: the expression ends where a value is expected at column 9 — check the CEL syntax: && || ! for logic, == != < <= > >= to compare, \"text\" or 'text' for strings",
			`set.c: must be a CEL expression (a string), got int — quote it, for example "data.amount * 2"`,
		}},
		{"set and delete same field", flow.Config{"set": map[string]any{"a": "1"}, "delete": []any{"b", "a"}}, []string{`delete[1]: field "a" is both set and deleted — remove it from set or from delete`}},
		{"empty delete name", flow.Config{"delete": []any{""}}, []string{"delete[0]: must be a field name — write the name of a top-level field"}},
	})
}

func TestMapProcess(t *testing.T) {
	const trade = `{"id":7,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5433,"kind":"trade"}`
	tests := []struct {
		name string
		cfg  flow.Config
		data string
		want string // output payload
		err  string
	}{
		{"set adds and replaces", flow.Config{"set": map[string]any{"cents": "data.amount * 100", "kind": "data.kind.upperAscii()", "half": "double(data.amount) / 2.0"}},
			trade, `{"id":7,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5433,"kind":"TRADE","cents":543300,"half":2716.5}`, ""},
		{"set reads the input, not earlier sets", flow.Config{"set": map[string]any{"amount": "data.amount + 1", "b": "data.amount"}},
			`{"amount":1}`, `{"amount":2,"b":1}`, ""},
		{"set event attributes", flow.Config{"set": map[string]any{"from": "source + '/' + id", "region": "metadata.region", "at": "time"}},
			`{}`, `{"at":"2026-01-01T00:00:00Z","from":"src/src:1","region":"eu"}`, ""},
		{"set nested value from payload", flow.Config{"set": map[string]any{"copy": "data.user"}},
			`{"user":{"n":1,"tags":["a"]}}`, `{"user":{"n":1,"tags":["a"]},"copy":{"n":1,"tags":["a"]}}`, ""},
		{"delete", flow.Config{"delete": []any{"ts", "kind", "absent"}},
			trade, `{"id":7,"account":"acct-7","amount":5433}`, ""},
		{"set then delete", flow.Config{"set": map[string]any{"big": "data.amount >= 5000"}, "delete": []any{"ts"}},
			`{"amount":5433,"ts":"x"}`, `{"amount":5433,"big":true}`, ""},
		{"whole new object", flow.Config{"expr": `{"id": data.id, "big": data.amount >= 5000, "tags": [type, "x"], "none": null}`},
			trade, `{"big":true,"id":7,"none":null,"tags":["payment","x"]}`, ""},
		{"whole object from payload", flow.Config{"expr": `data.inner`},
			`{"inner":{"b":2.0,"a":1}}`, `{"a":1,"b":2.0}`, ""},
		{"W1 mapping", flow.Config{"set": map[string]any{"amount_usd": "double(data.amount) / 100.0", "kind": "data.kind.upperAscii()"}},
			trade, `{"id":7,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5433,"kind":"TRADE","amount_usd":54.33}`, ""},
		{"raw members kept byte for byte", flow.Config{"set": map[string]any{"n": "data.n + 1"}},
			" {\n  \"s\": \"a}b]\\\"{\" , \"deep\": {\"x\": [1, {\"y\": \"]\"}]},\n  \"n\": 1, \"f\": 1.50, \"e\": 1e3 }\n",
			`{"s": "a}b]\"{","deep": {"x": [1, {"y": "]"}]},"n":2,"f": 1.50,"e": 1e3}`, ""},
		{"runs of kept members around set, deleted and spaced ones", flow.Config{"set": map[string]any{"kind": "data.kind.upperAscii()"}, "delete": []any{"e"}},
			`{"a":1,"b":2, "c":3,"kind":"x","e":5,"f":6,"g":[7] ,"h":8}`, `{"a":1,"b":2,"c":3,"kind":"X","f":6,"g":[7],"h":8}`, ""},
		{"repeated key keeps one", flow.Config{"set": map[string]any{"a": "data.a * 10"}, "delete": []any{"b"}},
			`{"a":1,"b":2,"a":3,"b":4,"c":5}`, `{"a":30,"c":5}`, ""},
		{"names as long as a key, and 63 bytes and longer", flow.Config{"set": map[string]any{"kind": "1", strings.Repeat("s", 64): "2"}, "delete": []any{strings.Repeat("d", 70)}},
			`{"kinx":0,"` + strings.Repeat("d", 70) + `":0,"` + strings.Repeat("s", 64) + `":0,"` + strings.Repeat("k", 66) + `":0,"kind":0}`,
			`{"kinx":0,"` + strings.Repeat("s", 64) + `":2,"` + strings.Repeat("k", 66) + `":0,"kind":1}`, ""},
		{"escaped key takes the general path", flow.Config{"set": map[string]any{"z": "1"}},
			`{"q\u0022":1,"b":true}`, `{"b":true,"q\"":1,"z":1}`, ""},
		{"empty object", flow.Config{"set": map[string]any{"a": "[1, 2.0, 'x', null, {'k': true}]"}},
			`{}`, `{"a":[1,2.0,"x",null,{"k":true}]}`, ""},
		{"missing field fails", flow.Config{"set": map[string]any{"x": "data.nope"}}, trade, "", `set x: expression "data.nope": no such key: nope`},
		{"non-object payload fails", flow.Config{"delete": []any{"a"}}, `[1,2]`, "", "event data is an array, not a JSON object: set and delete change fields of an object"},
		{"expr not a map at run time", flow.Config{"expr": "data.inner"}, `{"inner":3}`, "", `expression "data.inner" returned int, want map`},
		{"nan fails", flow.Config{"set": map[string]any{"x": "0.0 / 0.0"}}, `{}`, "", "set x: cannot write NaN as JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := procNew(t, "map", tt.cfg)
			in := procEvent("src:1", "payment", tt.data)
			parsedBefore, _ := in.Value()
			out, err := p.Process(context.Background(), in, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 1 {
				t.Fatalf("got %d events, want 1", len(out))
			}
			got := out[0]
			if string(got.Data) != tt.want {
				t.Errorf("data\n got %s\nwant %s", got.Data, tt.want)
			}
			if got == in || string(in.Data) != tt.data {
				t.Error("the input event was modified or reused")
			}
			if got.ID != in.ID || got.Type != in.Type || got.Source != in.Source || !got.Time.Equal(in.Time) || got.Metadata["region"] != "eu" {
				t.Errorf("attributes not kept: %+v", got)
			}
			// The input's parsed view is shared with other consumers: it
			// must be left as it was.
			if m, ok := parsedBefore.(map[string]any); ok {
				if _, added := m["cents"]; added {
					t.Error("set wrote into the input's parsed payload")
				}
			}
			if _, err := got.Value(); err != nil {
				t.Errorf("output is not JSON: %v", err)
			}
		})
	}
}

func TestMapContentType(t *testing.T) {
	p := procNew(t, "map", flow.Config{"expr": `{"line": "x"}`})
	in := procEvent("src:1", "log", `"raw"`)
	in.DataContentType = "text/plain"
	out, err := p.Process(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ct := out[0].DataContentType; ct != "application/json" {
		t.Errorf("content type %q, want application/json", ct)
	}
}

// BenchmarkMapW1 is the map step of benchmark workload W1 on an event whose
// payload the filter before it already parsed.
func BenchmarkMapW1(b *testing.B) {
	p := procNew(b, "map", flow.Config{"set": map[string]any{"amount_usd": "double(data.amount) / 100.0", "kind": "data.kind.upperAscii()"}})
	in := procEvent("src:7", "t", `{"id":7,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5433,"kind":"trade"}`)
	if _, err := in.Value(); err != nil {
		b.Fatal(err)
	}
	out := make([]*flow.Event, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = p.Process(context.Background(), in, out[:0]); err != nil || len(out) != 1 {
			b.Fatal(err)
		}
	}
}

// TestMapConcurrent shares one input event between parallel workers, as
// fan-out and parallelism do: every output must be the same and the input
// untouched (run with -race).
func TestMapConcurrent(t *testing.T) {
	p := procNew(t, "map", flow.Config{"set": map[string]any{"usd": "double(data.amount) / 100.0"}, "delete": []any{"ts"}})
	const data = `{"id":7,"ts":"x","amount":5433}`
	in := procEvent("src:7", "t", data)
	var wg sync.WaitGroup
	results := make([]string, 8)
	for w := range results {
		wg.Go(func() {
			for range 100 {
				out, err := p.Process(context.Background(), in, nil)
				if err != nil {
					t.Error(err)
					return
				}
				results[w] = string(out[0].Data)
			}
		})
	}
	wg.Wait()
	for w, r := range results {
		if r != `{"id":7,"amount":5433,"usd":54.33}` {
			t.Errorf("worker %d: %s", w, r)
		}
	}
	if string(in.Data) != data {
		t.Errorf("input changed: %s", in.Data)
	}
}

// BenchmarkW1Chain is the processor part of workload W1 on fresh events:
// the filter, then the map on the events it keeps (half of them, as in
// W1), nothing parsed beforehand.
func BenchmarkW1Chain(b *testing.B) {
	filter := procNew(b, "filter", flow.Config{"expr": "data.amount >= 5000"})
	mp := procNew(b, "map", flow.Config{"set": map[string]any{"amount_usd": "double(data.amount) / 100.0", "kind": "data.kind.upperAscii()"}})
	datas := [][]byte{
		[]byte(`{"id":7,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5433,"kind":"trade"}`),
		[]byte(`{"id":8,"ts":"2026-01-01T00:00:00Z","account":"acct-8","amount":3352,"kind":"fee"}`),
	}
	kept := make([]*flow.Event, 0, 1)
	out := make([]*flow.Event, 0, 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		in := &flow.Event{ID: "src:7", Data: datas[i&1]}
		i++
		var err error
		if kept, err = filter.Process(context.Background(), in, kept[:0]); err != nil {
			b.Fatal(err)
		}
		for _, ev := range kept {
			if out, err = mp.Process(context.Background(), ev, out[:0]); err != nil || len(out) != 1 {
				b.Fatal(err)
			}
		}
	}
}

// TestMapSpliceIndex checks that splicing through the member index that
// validation recorded writes the same bytes as scanning the payload.
func TestMapSpliceIndex(t *testing.T) {
	m, err := parseMap(flow.Config{"set": map[string]any{"usd": "double(data.amount) / 100.0", "kind": "data.kind.upperAscii()"}, "delete": []any{"ts"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{
		`{"id":7,"ts":"x","amount":5433,"kind":"trade"}`,
		` { "kind" : "fee" ,"amount":1, "x": [1, {"y": "}"}] } `,
		`{"amount":1,"kind":"a","kind":"b","ts":1,"ts":2}`,
		`{"amount":0,"kind":"ü","usd":{"old":true}}`,
	} {
		t.Run(data, func(t *testing.T) {
			in := procEvent("s:1", "t", data)
			idx := in.Index()
			if idx == nil {
				t.Fatal("not indexed")
			}
			vals := make([]ref.Val, len(m.set))
			for k, f := range m.set {
				if vals[k], err = f.prg.Eval(in); err != nil {
					t.Fatal(err)
				}
			}
			fastAt := make([]int, len(m.set)+1)
			viaIndex, ok1, err1 := m.splice(nil, in.Data, idx, vals, fastAt, nil)
			viaScan, ok2, err2 := m.splice(nil, in.Data, nil, vals, fastAt, nil)
			if !ok1 || !ok2 || err1 != nil || err2 != nil || string(viaIndex) != string(viaScan) {
				t.Fatalf("index: %s %v %v; scan: %s %v %v", viaIndex, ok1, err1, viaScan, ok2, err2)
			}
		})
	}
}
