package expr

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/flowctl/flowctl/internal/flow"
)

func TestCompiledShapes(t *testing.T) {
	tests := []struct {
		src      string
		want     Result
		compiled bool
	}{
		{"data.amount >= 5000", Bool, true},
		{"double(data.amount) / 100.0", Any, true},
		{"data.kind.upperAscii()", Any, true},
		{"data.a.b.c == 'x' && has(data.a.b)", Bool, true},
		{"data.kind in ['trade', 'fee'] || !(data.n < 2)", Bool, true},
		{"type.startsWith('pay') && id.endsWith('7') && subject.contains('-') && source == 'x'", Bool, true},
		{"size(data.kind) + data.kind.size() > int(2.5) ? string(data.n) : data.s.lowerAscii()", Any, true},
		{"has(data.x)", Bool, true},
		{"data.a - -data.b * data.c % 3 == 1", Bool, true},
		// Not compiled: the whole object, lists, maps, other variables,
		// comprehensions, optionals, indexing, uint and bytes literals.
		{"data", Any, false},
		{"size(data) > 1", Bool, false},
		{"data.tags.exists(t, t == 'x')", Bool, false},
		{"'x' in data.tags", Bool, false},
		{"data.kind in [data.a]", Bool, false},
		{`{"a": data.a}`, Map, false},
		{"data.a", Map, false},
		{"metadata.region == 'eu'", Bool, false},
		{"time > timestamp('2026-01-01T00:00:00Z')", Bool, false},
		{"data.?a.orValue(1) == 1", Bool, false},
		{"data['a'] == 1 && data.b['c-d'].e > 2", Bool, true},
		{"data[data.k] == 1", Bool, false},
		{"data.l[0] == 1", Bool, false},
		{"data.a == 1u", Bool, false},
		{"data.s == b'x'", Bool, false},
		{"data.s.matches('^a')", Bool, false},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p := mustCompile(t, tt.src, tt.want)
			if p.Compiled() != tt.compiled {
				t.Errorf("Compiled() = %v, want %v", p.Compiled(), tt.compiled)
			}
		})
	}
}

// TestCompiledMatchesCEL pins the cases where the two paths could part:
// each expression is evaluated over each event both ways.
func TestCompiledMatchesCEL(t *testing.T) {
	events := []string{
		tradeJSON,
		`{"amount": 4999, "kind": "fee"}`,
		`{"amount": 5000.0, "kind": "Payment"}`,
		`{"amount": -9223372036854775808, "kind": ""}`,
		`{"amount": 9223372036854775807, "kind": "ünïcödé"}`,
		`{"amount": 12345678901234567890, "kind": null}`,
		`{"amount": 1e400}`,
		`{"amount": "5000", "kind": true}`,
		`{"amount": 1, "amount": 7000, "kind": "a"}`,
		`{"am\u006fu\u006et": 1, "kind": "x"}`,
		`{"amount": 6000, "kind": "tr\u0061de"}`,
		`{"amount": 6000, "kind": "trad\u0065"}`,
		`{"amount": 6000, "kind": "trades"}`,
		`{"amount": 6000, "kind": "trade\n"}`,
		`{"amount": 6000, "kind": "tr\"ade"}`,
		`{"amount": [1], "kind": {"a": 1}}`,
		`{"kind": "trade"}`,
		` { "amount" : 6000 , "kind" : "trade" } `,
		`{"a": {"b": {"c": "x"}}, "amount": 0}`,
		`{"a": {"b": null}}`,
		`{"amount": 1234, "kind": "Mixed-Case kind\u2028 with <html> & more than sixty-four bytes in it, zZ"}`,
		`{"amount": 1234, "kind": "exactly sixty-four bytes of kind, upper and lower: aZ-09-xyz-XYZ"}`,
		`{"amount": 1234, "kind": "tab\tand \"quote\" and \\ control\u0001"}`,
		`{"a": {"b": [], "b": {"c": "x"}}}`,
		`{"s": "ab\xffc", "amount": 1}`,
		`[1, 2]`,
		`"text"`,
		`not json`,
		``,
		`{"amount": 6000} x`,
	}
	exprs := []string{
		"data.amount >= 5000",
		"data.amount == 5000",
		"data.amount != 5000.0",
		"double(data.amount) / 100.0",
		"data.amount + 1",
		"data.amount - 1",
		"data.amount * 2",
		"data.amount / 0",
		"data.amount % 7",
		"-data.amount",
		"int(data.amount)",
		"string(data.amount)",
		"data.kind.upperAscii()",
		"data.kind.lowerAscii()",
		"size(data.kind)",
		"data.kind in ['trade', 'fee', 1, null]",
		"data.kind == null",
		"data.kind == 'trade'",
		"data.kind != 'trade'",
		"'fee' == data.kind",
		"data.kind == 'tr'",
		"data.kind == ''",
		"data.kind == 'ünïcödé'",
		"data.kind == 'tr\"ade'",
		"data.amount == '5000'",
		"data.a == 'x'",
		"has(data.amount)",
		"has(data.a.b)",
		"has(data.a.b.c)",
		"data.a.b.c",
		"data['a']['b'].c == 'x'",
		"data['amount'] > 1",
		"data.a.b.c.startsWith('x') || data.amount > 1",
		"data.amount > 1 && data.kind.contains('a')",
		"data.amount < 1 && data.nope",
		"data.amount > 1 || data.nope",
		"data.kind > 'b' ? data.amount : 'no'",
		"data.s + 'x'",
		"type == 'payment' && id.endsWith(':7')",
	}
	for _, data := range events {
		for _, src := range exprs {
			p := mustCompile(t, src, Any)
			checkSame(t, p, []byte(data))
		}
	}
}

// checkSame evaluates p over data through Eval (fast path first) and
// through cel-go alone, and fails on any difference of value, type or
// error; it reports whether the fast path answered.
func checkSame(t *testing.T, p *Program, data []byte) bool {
	t.Helper()
	ev := func() *flow.Event {
		e := tradeEvent()
		e.Data = data
		return e
	}
	got, gotErr := p.Eval(ev())
	want, wantErr := p.evalCEL(ev())
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%s over %s: Eval error %v, cel-go error %v", p.Source(), data, gotErr, wantErr)
	}
	if wantErr == nil && !sameVal(got, want) {
		t.Fatalf("%s over %s: Eval = %v (%s), cel-go = %v (%s)", p.Source(), data, got, got.Type().TypeName(), want, want.Type().TypeName())
	}
	// The map processor's writer gives AppendValue's bytes.
	buf, ok := p.AppendFastJSON([]byte("x"), ev())
	if ok {
		w, err := AppendValue([]byte("x"), want)
		if err != nil || wantErr != nil || !bytes.Equal(buf, w) {
			t.Fatalf("%s over %s: AppendFastJSON = %s, AppendValue = %s, %v %v", p.Source(), data, buf, w, err, wantErr)
		}
	} else if string(buf) != "x" {
		t.Fatalf("%s: AppendFastJSON changed dst without answering", p.Source())
	}
	if b, err := p.EvalBool(ev()); wantErr == nil {
		if wb, isBool := want.(types.Bool); isBool != (err == nil) || (isBool && bool(wb) != b) {
			t.Fatalf("%s over %s: EvalBool = %v, %v; cel-go %v", p.Source(), data, b, err, want)
		}
	}
	if p.fast == nil {
		return false
	}
	_, hit := p.fast.eval(ev())
	return hit
}

// checkSameObject checks AppendMapJSON of an object-literal program over
// data against cel-go alone, error text included.
func checkSameObject(t *testing.T, p *Program, data []byte) {
	t.Helper()
	ev := func() *flow.Event {
		e := tradeEvent()
		e.Data = data
		return e
	}
	got, gotErr := p.AppendMapJSON([]byte("x"), ev())
	var want []byte
	out, wantErr := p.evalCEL(ev())
	if wantErr == nil {
		want, wantErr = p.appendMap([]byte("x"), out)
	}
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) || !bytes.Equal(got, want) {
		t.Fatalf("%s over %s: AppendMapJSON = %s, %v; cel-go %s, %v", p.Source(), data, got, gotErr, want, wantErr)
	}
}

func TestCompiledObjectMatchesCEL(t *testing.T) {
	tests := []struct {
		src      string
		compiled bool
	}{
		{`{"id": data.id, "big": data.amount >= 5000, "cents": data.amount * 100}`, true},
		{`{"z": 1, "a": "x", "m": null, "k": data.kind.upperAscii()}`, true},
		{`{}`, true},
		{`{"n": data.n}`, true},    // an object value: falls back per event
		{`{"r": 1.0 / 0.0}`, true}, // infinity: AppendValue's error
		{`{"a": 1, "a": 2}`, false},
		{`{"a": [data.id]}`, false},
		{`{?"a": data.?id}`, false},
		{`data.n`, false},
	}
	events := []string{tradeJSON, `{"id": 1, "amount": 9223372036854775807, "kind": "x", "n": {"a": 1}}`, `{"kind": 1}`, `[]`, `bad`}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p := mustCompile(t, tt.src, Map)
			if (p.fastObj != nil) != tt.compiled {
				t.Errorf("compiled = %v, want %v", p.fastObj != nil, tt.compiled)
			}
			for _, data := range events {
				checkSameObject(t, p, []byte(data))
			}
		})
	}
}

func sameVal(a, b ref.Val) bool {
	if a.Type() != b.Type() {
		return false
	}
	if x, ok := a.(types.Double); ok {
		y := b.(types.Double)
		return math.Float64bits(float64(x)) == math.Float64bits(float64(y)) || (math.IsNaN(float64(x)) && math.IsNaN(float64(y)))
	}
	return a.Equal(b) == types.True
}

// gen builds random events and expressions from a byte stream, so that
// the fuzzer's mutations of the bytes explore both.
type gen struct {
	b []byte
	r *rand.Rand // when set, used instead of b
}

func (g *gen) n(k int) int {
	if g.r != nil {
		return g.r.IntN(k)
	}
	if len(g.b) == 0 {
		return 0
	}
	c := int(g.b[0])
	g.b = g.b[1:]
	return c % k
}

var (
	genKeys    = []string{"a", "b", "amount", "kind", "n"}
	genNumbers = []string{"0", "1", "-3", "5000", "4999", "2.5", "-0.0", "1e3", "0.1", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "1e308", "100000000000000000000"}
	genStrings = []string{`""`, `"trade"`, `"Fee"`, `"a"`, `"ü-x"`, `"tr\u0061de"`, `"b\"q"`, `"5000"`}
)

// event writes a JSON object of random members, some nested.
func (g *gen) event(depth int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range g.n(5) {
		if i > 0 {
			b.WriteByte(',')
		}
		if g.n(8) == 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(genKeys[g.n(len(genKeys))]))
		b.WriteByte(':')
		b.WriteString(g.jsonValue(depth))
	}
	b.WriteByte('}')
	return b.String()
}

func (g *gen) jsonValue(depth int) string {
	switch g.n(9) {
	case 0, 1, 2:
		return genNumbers[g.n(len(genNumbers))]
	case 3, 4:
		return genStrings[g.n(len(genStrings))]
	case 5:
		return [...]string{"true", "false", "null"}[g.n(3)]
	case 6:
		return "[1]"
	}
	if depth >= 2 {
		return "1"
	}
	return g.event(depth + 1)
}

// expr writes a random expression over the recognised shapes (and a few
// that are not, to keep the fallback honest).
func (g *gen) expr(depth int) string {
	if depth >= 3 {
		return g.leaf()
	}
	switch g.n(12) {
	case 0, 1, 2:
		return g.leaf()
	case 3:
		ops := []string{"==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "&&", "||"}
		return "(" + g.expr(depth+1) + " " + ops[g.n(len(ops))] + " " + g.expr(depth+1) + ")"
	case 4:
		return [...]string{"!", "-"}[g.n(2)] + "(" + g.expr(depth+1) + ")"
	case 5:
		return [...]string{"double", "int", "string", "size"}[g.n(4)] + "(" + g.expr(depth+1) + ")"
	case 6:
		return "(" + g.expr(depth+1) + ")." + [...]string{"upperAscii()", "lowerAscii()", "size()"}[g.n(3)]
	case 7:
		return "(" + g.expr(depth+1) + ")." + [...]string{"startsWith", "endsWith", "contains"}[g.n(3)] + "(" + g.expr(depth+1) + ")"
	case 8:
		var items []string
		for range g.n(4) {
			items = append(items, g.literal())
		}
		return g.expr(depth+1) + " in [" + strings.Join(items, ", ") + "]"
	case 9:
		return "(" + g.expr(depth+1) + " ? " + g.expr(depth+1) + " : " + g.expr(depth+1) + ")"
	case 10:
		return "has(" + g.field() + ")"
	}
	return g.field() + " " + [...]string{"==", ">=", "<", "!="}[g.n(4)] + " " + g.literal()
}

func (g *gen) leaf() string {
	switch g.n(4) {
	case 0:
		return g.literal()
	case 1:
		return [...]string{"id", "type", "source", "subject"}[g.n(4)]
	}
	return g.field()
}

func (g *gen) field() string {
	f := "data." + genKeys[g.n(len(genKeys))]
	for depth := 0; depth < 3 && g.n(3) == 1; depth++ { // not 0: an exhausted stream gives 0
		if g.n(4) == 0 {
			f += "['" + genKeys[g.n(len(genKeys))] + "']"
		} else {
			f += "." + genKeys[g.n(len(genKeys))]
		}
	}
	return f
}

func (g *gen) literal() string {
	return [...]string{"0", "1", "-3", "5000", "9223372036854775807", "2.5", "0.0", "-1.5", "100.0",
		`"trade"`, `""`, `"A"`, `"5000"`, "true", "false", "null"}[g.n(16)]
}

// TestCompiledMatchesCELRandom runs the differential check on a fixed set
// of random events and expressions (the fuzz test explores further), and
// makes sure the fast path answers often enough for the check to mean
// something.
func TestCompiledMatchesCELRandom(t *testing.T) {
	g := &gen{r: rand.New(rand.NewPCG(1, 2))}
	n := 4000
	if testing.Short() {
		n = 500
	}
	var compiled, hits int
	for range n {
		src := g.expr(0)
		p, err := Compile(src, Any)
		if err != nil {
			continue // a random expression may not type-check
		}
		if p.Compiled() {
			compiled++
		}
		for range 4 {
			data := []byte(g.event(0))
			if checkSame(t, p, data) {
				hits++
			}
			if obj, err := Compile(`{"v": `+src+`, "k": data.kind}`, Map); err == nil {
				checkSameObject(t, obj, data)
			}
		}
	}
	t.Logf("%d expressions, %d compiled, %d fast answers of %d evaluations", n, compiled, hits, 4*n)
	if compiled < n/4 || hits < n/4 {
		t.Errorf("only %d of %d expressions compiled and %d fast answers: the generator misses the fast path", compiled, n, hits)
	}
}

// FuzzCompiledMatchesCEL is the differential fuzz test of the compiled
// fast path: random expressions (from exprBytes) over random events (from
// eventBytes, or raw when it is not empty) give the same value and the
// same error through Eval as through cel-go alone. CI runs it for a fixed
// short time (.ci/run).
func FuzzCompiledMatchesCEL(f *testing.F) {
	f.Add([]byte{11, 2, 0, 1, 3}, []byte{2, 2, 0, 3, 0, 1, 3, 1}, "")
	f.Add([]byte{3, 0, 2, 7, 2, 0, 3}, []byte{4, 0, 2, 0, 0, 9, 1, 3, 3, 1}, "")
	f.Add([]byte{6, 1, 3}, []byte{1, 3, 3, 1}, `{"kind":"trade","amount":5433}`)
	f.Add([]byte{11, 2, 1, 1, 7}, []byte{}, `{"amount":1,"amount":6000}`)
	f.Add([]byte{10, 0, 4, 0, 0}, []byte{}, `{"n":{"a":1},"amount":"x"}`)
	f.Fuzz(func(t *testing.T, exprBytes, eventBytes []byte, raw string) {
		g := &gen{b: exprBytes}
		p, err := Compile(g.expr(0), Any)
		if err != nil {
			return
		}
		data := raw
		if data == "" {
			data = (&gen{b: eventBytes}).event(0)
		}
		checkSame(t, p, []byte(data))
		if obj, err := Compile(`{"v": `+p.Source()+`, "k": data.kind}`, Map); err == nil {
			checkSameObject(t, obj, []byte(data))
		}
	})
}
