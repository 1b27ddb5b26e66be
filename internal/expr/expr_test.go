package expr

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

const tradeJSON = `{"id":7,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5433,"kind":"trade"}`

func tradeEvent() *flow.Event {
	return &flow.Event{
		ID:       "ledger:7",
		Source:   "ledger",
		Type:     "payment",
		Subject:  "acct-7",
		Time:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Data:     []byte(tradeJSON),
		Metadata: map[string]string{"region": "eu"},
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		want     Result
		index    bool
		message  string // exact Error()
		hintPart string // substring of the hint
	}{
		{"empty", "  ", Bool, false, "expression is empty", "CEL expression"},
		{"wrong result", "data.id + 1 > 0 ? 1 : 2", Bool, false, "expression must return bool, got int", "condition"},
		{"wrong result map", `{"a": 1}`, Bool, false, "expression must return bool, got map(string, int)", "condition"},
		{"string wanted", "1 == 1", String, false, "expression must return string, got bool", "string("},
		{"map wanted", "id", Map, false, "expression must return map, got string", "build an object"},
		{"undeclared", "x > 1", Bool, false, "undeclared reference to 'x' at column 1", "variables are data"},
		{"undeclared later column", "data.a > 1 && amount < 2", Bool, false, "undeclared reference to 'amount' at column 15", "variables are data"},
		{"undeclared on line 2", "data.a > 1 &&\n  amount < 2", Bool, false, "undeclared reference to 'amount' at line 2, column 3", "variables are data"},
		{"field without data.", "kind == 'x'", Bool, false, "undeclared reference to 'kind' at column 1", "did you mean data.kind? the variables are"},
		{"typo of a variable", "dat.amount > 1", Bool, false, "undeclared reference to 'dat' at column 1", "did you mean data? the variables are"},
		{"index env has no data", "data.x", Map, true, "undeclared reference to 'data' at column 1", "only variable here is i"},
		{"bad overload", `id + 1`, Any, false, "found no matching overload for '_+_' applied to '(string, int)' at column 4", "JSON integers are int"},
		{"syntax: ends early", "data.amount >=", Bool, false, "syntax error: the expression ends where a value is expected at column 15", "CEL syntax"},
		{"syntax: single =", "data.a = 1", Bool, false, "syntax error: unexpected '=' at column 8", "compare with =="},
		{"syntax: open string", "data.a == 'x", Bool, false, "syntax error: a string is not closed at column 11", "end the string"},
		{"syntax: bad character", "data.a # 1", Bool, false, "syntax error: unexpected character '#' at column 8", "CEL syntax"},
		{"syntax: missing paren", "(data.a", Bool, false, "syntax error: missing ')' at the end at column 8", "CEL syntax"},
		{"syntax: doubled operator", "data.a == == 1", Bool, false, "syntax error: unexpected '==' where a value is expected at column 11", "CEL syntax"},
		{"syntax: and", "data.a and data.b", Bool, false, "syntax error: unexpected 'and' after a complete expression at column 8", "&&, ||, !"},
		{"syntax: stray paren", "data.a)", Bool, false, "syntax error: unexpected ')' after a complete expression at column 7", "CEL syntax"},
		{"syntax: ternary", "data.a ? 1", Any, false, "syntax error: the expression ends where ':' is expected at column 11", "CEL syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []Option
			if tt.index {
				opts = append(opts, WithIndex())
			}
			_, err := Compile(tt.src, tt.want, opts...)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%q) error = %v, want *Error", tt.src, err)
			}
			if ce.Error() != tt.message {
				t.Errorf("message\n got %q\nwant %q", ce.Error(), tt.message)
			}
			if !strings.Contains(ce.Hint, tt.hintPart) {
				t.Errorf("hint %q does not contain %q", ce.Hint, tt.hintPart)
			}
			fe := FieldError("cases[1].when", err)
			if fe.Path != "cases[1].when" || fe.Message != tt.message || fe.Hint != ce.Hint {
				t.Errorf("FieldError = %+v", fe)
			}
		})
	}
}

func TestCompileAcceptsDynResults(t *testing.T) {
	// A payload field has no static type: the check moves to evaluation.
	for _, want := range []Result{Bool, String, Int, Map, Any} {
		if _, err := Compile("data.x", want); err != nil {
			t.Errorf("Compile(data.x, %s): %v", want, err)
		}
	}
}

func TestCompileCaches(t *testing.T) {
	a, err := Compile("data.amount >= 1", Bool)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Compile("data.amount >= 1", Bool)
	c, _ := Compile("data.amount >= 1", Any)
	if a != b {
		t.Error("same source and result compiled twice")
	}
	if a == c {
		t.Error("different result types share a program")
	}
}

func TestEval(t *testing.T) {
	tests := []struct {
		name string
		src  string
		data string // payload; tradeJSON when empty
		want any    // Go value after ToGo
	}{
		{"int field compare", "data.amount >= 5000", "", true},
		{"int modulo", "data.id % 2", "", int64(1)},
		{"double field", "data.price * 2.0", `{"price": 1.25}`, 2.5},
		{"int vs double compare", "data.amount > 5000.5", "", true},
		{"int equals double", "data.amount == 5433.0", "", true},
		{"string ext", "data.account.upperAscii()", "", "ACCT-7"},
		{"string split", `data.account.split("-")[1]`, "", "7"},
		{"math ext", "math.greatest(data.id, 3, 100)", "", int64(100)},
		{"math abs", "math.abs(-data.amount)", "", int64(5433)},
		{"encoders ext", `base64.encode(b"hi")`, "", "aGk="},
		{"lists ext", "[3, 1, 2].sort()", "", []any{int64(1), int64(2), int64(3)}},
		{"sets ext", "sets.contains([1, 2, 3], [data.id % 3])", "", true},
		{"has present", "has(data.kind)", "", true},
		{"has absent", "has(data.missing)", "", false},
		{"optional default", "data.?missing.orValue(42)", "", int64(42)},
		{"id", "id", "", "ledger:7"},
		{"type source subject", `type + "/" + source + "/" + subject`, "", "payment/ledger/acct-7"},
		{"time", "time.getFullYear()", "", int64(2026)},
		{"time compare", `time < timestamp("2027-01-01T00:00:00Z")`, "", true},
		{"metadata", `metadata.region`, "", "eu"},
		{"metadata in", `"zone" in metadata`, "", false},
		{"nested", "data.user.tags[1]", `{"user":{"tags":["a","b"]}}`, "b"},
		{"null", "data.x == null", `{"x":null}`, true},
		{"whole payload", "data", `{"a":[1,2.5,"s",true,null]}`, map[string]any{"a": []any{int64(1), 2.5, "s", true, nil}}},
		{"map literal", `{"id": data.id, "big": data.amount > 5000}`, "", map[string]any{"id": int64(7), "big": true}},
		{"non-object payload", "data[1]", `[10, 20]`, int64(20)},
		{"bind", `cel.bind(a, data.amount, a > 10 && a < 10000)`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.src, Any)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			ev := tradeEvent()
			if tt.data != "" {
				ev.Data = []byte(tt.data)
			}
			got, err := p.EvalValue(ev)
			if err != nil {
				t.Fatalf("EvalValue: %v", err)
			}
			gotJSON, err1 := AppendJSON(nil, got)
			wantJSON, err2 := AppendJSON(nil, tt.want)
			if err1 != nil || err2 != nil {
				t.Fatalf("AppendJSON: %v %v", err1, err2)
			}
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("got %s (%T), want %s", gotJSON, got, wantJSON)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Result
		data string
		msg  string
	}{
		{"missing field", "data.missing > 1", Bool, "", `expression "data.missing > 1": no such key: missing (guard an optional field with has(data.x) or data.?x.orValue(default))`},
		// The parser's own words follow; they belong to flow.ParseJSON.
		{"bad json", "data.a == 1", Bool, `{"a":`, `expression "data.a == 1": event data: invalid JSON`},
		{"int and double arithmetic", "data.amount / 2.0", Any, "", `expression "data.amount / 2.0": no such overload (the operands' types do not go together: CEL does not mix int and double, convert with double(...) or int(...); nor strings and numbers, convert with string(...))`},
		{"division by zero", "data.id / 0", Any, "", `expression "data.id / 0": division by zero`},
		{"dyn not bool", "data.amount", Bool, "", `expression "data.amount" returned int, want bool`},
		{"dyn not string", "data.amount", String, "", `expression "data.amount" returned int, want string`},
		{"dyn not int", "data.kind", Int, "", `expression "data.kind" returned string, want int`},
		{"dyn not map", "data.kind", Map, "", `expression "data.kind" returned string, want map`},
		{"map with int keys", "{1: 2}", Map, "", `expression "{1: 2}": map keys must be strings to become JSON, got int key 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.src, tt.want)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			ev := tradeEvent()
			if tt.data != "" {
				ev.Data = []byte(tt.data)
			}
			switch tt.want {
			case Bool:
				_, err = p.EvalBool(ev)
			case String:
				_, err = p.EvalString(ev)
			case Int:
				_, err = p.EvalInt(ev)
			case Map:
				_, err = p.EvalMap(ev)
			default:
				_, err = p.Eval(ev)
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.msg) || tt.name != "bad json" && err.Error() != tt.msg {
				t.Errorf("error\n got %v\nwant %s", err, tt.msg)
			}
		})
	}
}

func TestEvalTyped(t *testing.T) {
	ev := tradeEvent()
	b, err := mustCompile(t, "data.amount >= 5000", Bool).EvalBool(ev)
	if err != nil || !b {
		t.Errorf("EvalBool = %v, %v", b, err)
	}
	s, err := mustCompile(t, "data.account", String).EvalString(ev)
	if err != nil || s != "acct-7" {
		t.Errorf("EvalString = %q, %v", s, err)
	}
	i, err := mustCompile(t, "data.id * 3", Int).EvalInt(ev)
	if err != nil || i != 21 {
		t.Errorf("EvalInt = %d, %v", i, err)
	}
	m, err := mustCompile(t, `{"k": data.kind}`, Map).EvalMap(ev)
	if err != nil || m["k"] != "trade" {
		t.Errorf("EvalMap = %v, %v", m, err)
	}
}

func TestEvalIndex(t *testing.T) {
	p := mustCompile(t, `{"id": i, "amount": (i * 7919) % 10000}`, Map, WithIndex())
	for _, tt := range []struct {
		i    int64
		want string
	}{{0, `{"amount":0,"id":0}`}, {3, `{"amount":3757,"id":3}`}, {1000, `{"amount":9000,"id":1000}`}} {
		m, err := p.EvalIndexMap(tt.i)
		if err != nil {
			t.Fatalf("EvalIndexMap(%d): %v", tt.i, err)
		}
		b, err := AppendJSON(nil, m)
		if err != nil || string(b) != tt.want {
			t.Errorf("i=%d: %s, %v; want %s", tt.i, b, err, tt.want)
		}
	}
	if _, err := p.Eval(tradeEvent()); err == nil {
		t.Error("Eval of an index program succeeded")
	}
	if _, err := mustCompile(t, "data.a", Any).EvalIndex(1); err == nil {
		t.Error("EvalIndex of an event program succeeded")
	}
}

// TestEvalConcurrent shares one program and one event between goroutines:
// the lazy parse and the evaluation must be race-free (run with -race).
func TestEvalConcurrent(t *testing.T) {
	p := mustCompile(t, "data.amount >= 5000 && data.kind == 'trade'", Bool)
	ev := tradeEvent()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				ok, err := p.EvalBool(ev)
				if err != nil || !ok {
					errs <- errors.Join(err, errors.New("want true"))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func mustCompile(t testing.TB, src string, want Result, opts ...Option) *Program {
	t.Helper()
	p, err := Compile(src, want, opts...)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	return p
}
