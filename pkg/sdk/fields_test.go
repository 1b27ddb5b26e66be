package sdk_test

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/flowctl/flowctl/pkg/sdk"
)

func TestEventField(t *testing.T) {
	const doc = ` { "id": 7, "amount" : -12.5e1, "kind":"pay\"m\u00e9nt\ud83d\ude00", "ok": true, "none": null,
		"n": {"amount": 1, "s": "}"}, "list": [1, "]", {"a": []}], "big": 12345678901234567890 } `
	cases := []struct {
		name   string
		get    func(v sdk.Value) (any, bool)
		field  string
		want   any
		wantOK bool
	}{
		{"int", func(v sdk.Value) (any, bool) { return v.Int() }, "id", int64(7), true},
		{"int as float", func(v sdk.Value) (any, bool) { return v.Float() }, "id", 7.0, true},
		{"float", func(v sdk.Value) (any, bool) { return v.Float() }, "amount", -125.0, true},
		{"float is no int", func(v sdk.Value) (any, bool) { return v.Int() }, "amount", int64(0), false},
		{"too big for int", func(v sdk.Value) (any, bool) { return v.Int() }, "big", int64(0), false},
		{"big as float", func(v sdk.Value) (any, bool) { return v.Float() }, "big", 12345678901234567890.0, true},
		{"string with escapes", func(v sdk.Value) (any, bool) { return v.Str() }, "kind", "pay\"mént😀", true},
		{"string is no number", func(v sdk.Value) (any, bool) { return v.Float() }, "kind", 0.0, false},
		{"bool", func(v sdk.Value) (any, bool) { return v.Bool() }, "ok", true, true},
		{"null", func(v sdk.Value) (any, bool) { return v.IsNull(), v.Exists() }, "none", true, true},
		{"object", func(v sdk.Value) (any, bool) { return string(v.Raw()), v.Exists() }, "n", `{"amount": 1, "s": "}"}`, true},
		{"array", func(v sdk.Value) (any, bool) { return string(v.Raw()), v.Exists() }, "list", `[1, "]", {"a": []}]`, true},
		{"missing", func(v sdk.Value) (any, bool) { return v.Exists(), v.Exists() }, "s", false, false},
		{"number is no string", func(v sdk.Value) (any, bool) { return v.Str() }, "id", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &sdk.Event{Data: []byte(doc)}
			got, ok := c.get(e.Field(c.field))
			if ok != c.wantOK || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Field(%q) = %#v, %v; want %#v, %v", c.field, got, ok, c.want, c.wantOK)
			}
		})
	}
}

func TestEventFieldNotObject(t *testing.T) {
	for _, data := range []string{``, `nope`, `[1,2]`, `"amount"`, `{"amount":1`, `{"amount" 1}`, `{"amount":1} x`, `{"a":"\u0001` + "\x01" + `"}`} {
		e := &sdk.Event{Data: []byte(data)}
		// Field scans only up to the field: the end of the first two is
		// not checked.
		if v := e.Field("amount"); v.Exists() && data != `{"amount":1} x` && data != `{"amount":1` {
			t.Errorf("Field on %q = %s, want missing", data, v.Raw())
		}
		if err := e.SetField("x", 1); err == nil {
			t.Errorf("SetField on %q: no error", data)
		}
		if string(e.Data) != data {
			t.Errorf("SetField changed %q to %q", data, e.Data)
		}
	}
}

func TestEventSetField(t *testing.T) {
	cases := []struct {
		name, in string
		field    string
		value    any
		want     string
	}{
		{"append", `{"a":1}`, "b", 2.5, `{"a":1,"b":2.5}`},
		{"append to empty", ` { } `, "b", "x", ` { "b":"x"} `},
		{"append keeps spacing", "{\"a\": 1 }\n", "b", true, "{\"a\": 1 ,\"b\":true}\n"},
		{"replace in place", `{"kind":"trade","a":1}`, "kind", "TRADE", `{"kind":"TRADE","a":1}`},
		{"replace longer", `{"a":1,"b":2}`, "a", "long", `{"a":"long","b":2}`},
		{"replace shorter", `{"a":"long","b":2}`, "a", nil, `{"a":null,"b":2}`},
		{"replace object", `{"a":{"x":[1,2]},"b":2}`, "a", 0, `{"a":0,"b":2}`},
		{"nested name is not top-level", `{"n":{"a":1}}`, "a", int64(3), `{"n":{"a":1},"a":3}`},
		{"escaped string", `{}`, "s", "q\"\\\n\x01<é\xff", `{"s":"q\"\\\n\u0001<é\ufffd"}`},
		{"escaped name", `{}`, `a"b`, 1, `{"a\"b":1}`},
		{"integral float", `{}`, "f", 51.0, `{"f":51}`},
		{"tiny float", `{}`, "f", 1e-7, `{"f":1e-7}`},
		{"huge float", `{}`, "f", 1e21, `{"f":1e+21}`},
		{"float32", `{}`, "f", float32(0.1), `{"f":0.1}`},
		{"raw JSON", `{}`, "r", json.RawMessage(`[1,{"x":2}]`), `{"r":[1,{"x":2}]}`},
		{"marshalled", `{}`, "m", map[string]int{"x": 1}, `{"m":{"x":1}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &sdk.Event{ID: "e", Data: []byte(c.in)}
			if err := e.SetField(c.field, c.value); err != nil {
				t.Fatal(err)
			}
			if string(e.Data) != c.want {
				t.Fatalf("got %s, want %s", e.Data, c.want)
			}
			if !json.Valid(e.Data) {
				t.Fatalf("%s is not valid JSON", e.Data)
			}
		})
	}
}

func TestEventSetFieldErrors(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), json.RawMessage(`{`), make(chan int)} {
		e := &sdk.Event{Data: []byte(`{"a":1}`)}
		if err := e.SetField("a", v); err == nil {
			t.Errorf("SetField(%v): no error", v)
		}
		if string(e.Data) != `{"a":1}` {
			t.Errorf("SetField(%v) changed the payload to %s", v, e.Data)
		}
	}
}

// TestEventSetFieldFloats checks numbers against encoding/json: the same
// text, so the same value for every reader.
func TestEventSetFieldFloats(t *testing.T) {
	for _, f := range []float64{0, -0.5, 50, 99.99, 123.45, 1e20, 1e21, 1.5e-6, 9.9e-7, -3e-10, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		e := &sdk.Event{Data: []byte(`{}`)}
		if err := e.SetField("f", f); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(map[string]float64{"f": f})
		if string(e.Data) != string(want) {
			t.Errorf("%v: got %s, want %s", f, e.Data, want)
		}
	}
}

func BenchmarkEventFields(b *testing.B) {
	const in = `{"id":12345,"ts":"2026-01-01T00:00:00Z","account":"acct-345","amount":7919,"kind":"payment"}`
	b.Run("helpers", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			e := &sdk.Event{Data: []byte(in)}
			amount, _ := e.Field("amount").Float()
			kind, _ := e.Field("kind").Str()
			_ = e.SetField("amount_usd", amount/100)
			_ = e.SetField("kind", kind)
		}
	})
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			e := &sdk.Event{Data: []byte(in)}
			var m map[string]any
			_ = e.Decode(&m)
			m["amount_usd"] = m["amount"].(float64) / 100
			_ = e.SetJSON(m)
		}
	})
}
