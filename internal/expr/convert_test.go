package expr

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

func TestAppendJSON(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"null", nil, `null`},
		{"bool", true, `true`},
		{"int64", int64(-42), `-42`},
		{"int", 7, `7`},
		{"uint64", uint64(math.MaxUint64), `18446744073709551615`},
		{"float", 2.5, `2.5`},
		{"integral float keeps .0", 7.0, `7.0`},
		{"negative zero", math.Copysign(0, -1), `-0.0`},
		{"tiny float", 1e-7, `1e-7`},
		{"huge float", 1e21, `1e+21`},
		{"plain string", "acct-7", `"acct-7"`},
		{"escapes", "a\"b\\c\nd\re\tf\x01", `"a\"b\\c\nd\re\tf\u0001"`},
		{"unicode kept", "héllo ✓", `"héllo ✓"`},
		{"invalid utf8", "a\xffb", `"a\ufffdb"`},
		{"line separator", "a\u2028b", `"a\u2028b"`},
		{"bytes", []byte("hi"), `"aGk="`},
		{"time", time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600)), `"2026-01-02T02:04:05.000006Z"`},
		{"duration", 1500 * time.Millisecond, `"1.5s"`},
		{"sorted keys", map[string]any{"b": int64(1), "a": []any{"x", nil}, "c": map[string]any{}}, `{"a":["x",null],"b":1,"c":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendJSON([]byte("prefix:"), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix:"+tt.want {
				t.Errorf("got %s, want prefix:%s", got, tt.want)
			}
			if !json.Valid(got[len("prefix:"):]) {
				t.Errorf("%s is not valid JSON", got)
			}
		})
	}
}

func TestAppendJSONErrors(t *testing.T) {
	tests := []struct {
		name string
		in   any
		msg  string
	}{
		{"nan", math.NaN(), "cannot write NaN as JSON: JSON has no NaN or infinity"},
		{"inf in map", map[string]any{"x": math.Inf(1)}, `key "x": cannot write +Inf as JSON: JSON has no NaN or infinity`},
		{"unsupported", struct{}{}, "cannot write a Go struct {} as JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AppendJSON(nil, tt.in)
			if err == nil || err.Error() != tt.msg {
				t.Errorf("error %v, want %s", err, tt.msg)
			}
		})
	}
}

// TestJSONRoundTrip checks that ints stay ints and doubles stay doubles
// when a CEL result is written and parsed again by the next component.
func TestJSONRoundTrip(t *testing.T) {
	p := mustCompile(t, `{"n": data.amount, "half": data.amount / 2, "f": double(data.amount), "s": [1, 2.0]}`, Map)
	v, err := p.Eval(tradeEvent())
	if err != nil {
		t.Fatal(err)
	}
	b, err := JSON(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"f":5433.0,"half":2716,"n":5433,"s":[1,2.0]}`; string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}
	back, err := flow.ParseJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	m := back.(map[string]any)
	if _, ok := m["n"].(int64); !ok {
		t.Errorf("n came back as %T", m["n"])
	}
	if _, ok := m["f"].(float64); !ok {
		t.Errorf("f came back as %T", m["f"])
	}
	if s := m["s"].([]any); s[0] != int64(1) || s[1] != 2.0 {
		t.Errorf("s came back as %#v", s)
	}
}

// TestAppendValueMatchesToGo checks that the direct CEL→JSON writer gives
// the same bytes as converting to Go values first.
func TestAppendValueMatchesToGo(t *testing.T) {
	for _, src := range []string{
		"data",
		"data.account",
		`{"b": data.amount, "a": [data.id, 2.0, "x", null, b"hi"], "t": time, "d": duration("1.5s")}`,
		`{"nested": {"z": data, "y": [[1], {"k": true}]}}`,
		"[data, metadata]",
		"data.?missing",
		"data.?amount",
		"optional.none()",
		"1u + 2u",
	} {
		t.Run(src, func(t *testing.T) {
			v, err := mustCompile(t, src, Any).Eval(tradeEvent())
			if err != nil {
				t.Fatal(err)
			}
			direct, err := AppendValue(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			g, err := ToGo(v)
			if err != nil {
				t.Fatal(err)
			}
			viaGo, err := AppendJSON(nil, g)
			if err != nil {
				t.Fatal(err)
			}
			if string(direct) != string(viaGo) {
				t.Errorf("AppendValue %s\nToGo+AppendJSON %s", direct, viaGo)
			}
			if !json.Valid(direct) {
				t.Errorf("%s is not valid JSON", direct)
			}
		})
	}
}
