package expr

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
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

// strconvFloat is appendFloat without its short-decimal path: strconv's
// shortest digits, the reference appendShortFloat must match.
func strconvFloat(f float64) string {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	s := strconv.FormatFloat(f, format, -1, 64)
	if format == 'e' {
		if n := len(s); n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
		return s
	}
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

func checkShortFloat(t *testing.T, f float64) bool {
	t.Helper()
	got, ok := appendShortFloat([]byte("x"), f)
	if !ok {
		if string(got) != "x" {
			t.Fatalf("appendShortFloat(%v) gave up but wrote %q", f, got)
		}
		return false
	}
	if want := "x" + strconvFloat(f); string(got) != want {
		t.Fatalf("appendShortFloat(%v (%#x)) = %q, strconv says %q", f, math.Float64bits(f), got, want)
	}
	return true
}

// TestAppendShortFloat compares the short-decimal path with strconv on the
// doubles it is for (cents, ratios), their neighbours, and values around
// its limits; and checks it answers for the common ones.
func TestAppendShortFloat(t *testing.T) {
	for _, f := range []float64{1, -1, 0.5, 12.34, 99.99, 0.1, 0.2, 0.1 + 0.2, 1.0 / 3, 2.0 / 3, 1e-6, 9.99e-7, 1e14, 1e15,
		999999999999999, 999999999999999.9, 123456789.123456, 0.000123, 1.7976931348623157e308, 5e-324, 0, math.Copysign(0, -1),
		math.NaN(), math.Inf(1), 4503599627370497, 0.3, 100, 1e21, 123456789012345.67} {
		checkShortFloat(t, f)
		checkShortFloat(t, -f)
		checkShortFloat(t, math.Nextafter(f, math.Inf(1)))
		checkShortFloat(t, math.Nextafter(f, math.Inf(-1)))
	}
	for _, d := range []int64{1, 7, 10, 99, 100, 1234, 500000, 999999, 123456789, 100000000000001} {
		for k, p := range exactPow10[:16] {
			f := float64(d) / p
			answered := checkShortFloat(t, f)
			if !answered && k <= 6 && d < 1e9 {
				t.Errorf("appendShortFloat(%d/1e%d) gave up", d, k)
			}
		}
	}
	// W1's amounts in dollars: every cent from 0.01 to 10,000.
	for c := 1; c <= 1000000; c++ {
		if !checkShortFloat(t, float64(c)/100.0) {
			t.Fatalf("appendShortFloat(%d/100.0) gave up", c)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		checkShortFloat(t, math.Float64frombits(r.Uint64()))
		checkShortFloat(t, float64(r.Int64N(1e15))/exactPow10[r.IntN(23)])
		checkShortFloat(t, r.Float64()*exactPow10[r.IntN(16)])
	}
}

func FuzzAppendShortFloat(f *testing.F) {
	for _, x := range []float64{12.34, 0.1 + 0.2, 1e-6, 999999999999999.9} {
		f.Add(math.Float64bits(x))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		x := math.Float64frombits(bits)
		checkShortFloat(t, x)
		for _, p := range exactPow10 {
			checkShortFloat(t, math.Round(x)/p)
		}
	})
}
