package pipetest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/flow"
)

// yamlList reads a YAML list as a test file's events would be.
func yamlList(t *testing.T, src string) []any {
	t.Helper()
	var v []any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func gotOf(datas ...string) []got {
	var out []got
	for i, d := range datas {
		out = append(out, newGot(&flow.Event{ID: "e" + string(rune('1'+i)), Type: "t", Data: []byte(d)}))
	}
	return out
}

func TestPipelineTestMatchEvents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		want    string
		have    []string
		subset  bool
		ordered bool
		ok      bool
		report  string // in the failure report
	}{
		{"exact equal", `[{a: 1}, {b: [1, "x"]}]`, []string{`{"a":1}`, `{"b":[1,"x"]}`}, false, true, true, ""},
		{"numbers by value", `[{a: 1.0, b: 100}]`, []string{`{"a":1,"b":1e2}`}, false, true, true, ""},
		{"exact extra key", `[{a: 1}]`, []string{`{"a":1,"b":2}`}, false, true, false, `+ {"a":1,"b":2}`},
		{"exact missing event", `[{a: 1}, {a: 2}]`, []string{`{"a":1}`}, false, true, false, `- {"a":2}`},
		{"exact extra event", `[{a: 1}]`, []string{`{"a":1}`, `{"a":2}`}, false, true, false, "1 event expected, got 2 events"},
		{"order matters", `[{a: 2}, {a: 1}]`, []string{`{"a":1}`, `{"a":2}`}, false, true, false, "in order"},
		{"order ignored", `[{a: 2}, {a: 1}]`, []string{`{"a":1}`, `{"a":2}`}, false, false, true, ""},
		{"multiset counts", `[{a: 1}, {a: 1}]`, []string{`{"a":1}`, `{"a":2}`}, false, false, false, `+ {"a":2}`},
		{"subset", `[{a: 1, n: {x: 1}}]`, []string{`{"a":1,"b":2,"n":{"x":1,"y":2}}`}, true, true, true, ""},
		{"subset differs, diff projected", `[{a: 1}]`, []string{`{"a":3,"b":2}`}, true, true, false, `+ {"a":3}`},
		// Greedy pairing would take {a:1,b:1} for {a:1} and leave {b:1}
		// nothing: the matching is a real one.
		{"subset any order needs matching", `[{a: 1}, {b: 1}]`, []string{`{"a":1,"b":1}`, `{"a":1}`}, true, false, true, ""},
		{"envelope attrs", `[{id: e1, type: t, data: {a: 1}}]`, []string{`{"a":1}`}, false, true, true, ""},
		{"envelope attrs differ", `[{id: e9, data: {a: 1}}]`, []string{`{"a":1}`}, false, true, false, `+ {"data":{"a":1},"id":"e1"}`},
		{"not json", `["plain text"]`, []string{`plain text`}, false, true, true, ""},
		{"none expected", `[]`, []string{`{"a":1}`}, false, true, false, "0 events expected, got 1 event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []expected
			for _, v := range yamlList(t, tc.want) {
				x, err := parseExpected(v)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, x)
			}
			rep := checkEvents("out", want, gotOf(tc.have...), tc.subset, tc.ordered)
			if (len(rep) == 0) != tc.ok {
				t.Fatalf("ok = %v, want %v:\n%s", len(rep) == 0, tc.ok, strings.Join(rep, "\n"))
			}
			if tc.report != "" && !strings.Contains(strings.Join(rep, "\n"), tc.report) {
				t.Errorf("report lacks %q:\n%s", tc.report, strings.Join(rep, "\n"))
			}
		})
	}
}

func TestPipelineTestMatchWhere(t *testing.T) {
	have := gotOf(`{"a":1}`, `{"a":5}`, `{"b":1}`)
	three, two := 3, 2
	for _, tc := range []struct {
		name   string
		where  []string
		count  *int
		report []string
	}{
		{"all hold", []string{"data.a > 0 || has(data.b)"}, &three, nil},
		{"count differs", nil, &two, []string{"count: want 2, got 3"}},
		{"some fail", []string{"data.a < 3"}, nil, []string{`2 of 3 events`, `false: {"a":5}`, "no such key"}},
		{"does not compile", []string{"data.a +"}, nil, []string{`where "data.a +"`}},
		{"not a bool", []string{"data.a"}, nil, []string{`where "data.a"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := strings.Join(checkWhere("out", tc.where, tc.count, have), "\n")
			if (rep == "") != (tc.report == nil) {
				t.Fatalf("report %q", rep)
			}
			for _, w := range tc.report {
				if !strings.Contains(rep, w) {
					t.Errorf("report lacks %q:\n%s", w, rep)
				}
			}
		})
	}
}

func TestPipelineTestMatchDeadLetters(t *testing.T) {
	dl := func(comp, msg, data string) got {
		d := flow.NewDeadLetter(comp, errors.New(msg), 1, &flow.Event{ID: "x", Type: "t", Data: []byte(data)})
		b, _ := json.Marshal(d)
		return newGot(&flow.Event{Type: flow.DeadLetterType, Data: b})
	}
	have := []got{dl("big", "no such key: amount", `{"n":1,"m":2}`), dl("map", "boom 42", `"text"`)}
	for _, tc := range []struct {
		name   string
		want   []DeadLetterExpect
		report []string
	}{
		{"all by reason", []DeadLetterExpect{{Reason: "boom"}, {Reason: "amount"}}, nil},
		{"regex, component, data", []DeadLetterExpect{{Reason: `/^boom \d+$/`, Component: "map"}, {Reason: "", Data: map[string]any{"n": 1}}}, nil},
		{"missing one", []DeadLetterExpect{{Reason: "amount"}}, []string{`+ unexpected: component "map", reason "boom 42"`}},
		{"wrong data", []DeadLetterExpect{{Reason: "amount", Data: map[string]any{"n": 2}}, {Reason: "boom"}}, []string{`- missing: reason "amount", data {"n":2}`}},
		{"wrong component", []DeadLetterExpect{{Reason: "amount", Component: "map"}, {Reason: "boom"}}, []string{`component "map"`}},
		{"bad regex", []DeadLetterExpect{{Reason: "/(/"}}, []string{"dead_letters[0].reason"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := strings.Join(checkDeadLetters(tc.want, have), "\n")
			if (rep == "") != (tc.report == nil) {
				t.Fatalf("report %q", rep)
			}
			for _, w := range tc.report {
				if !strings.Contains(rep, w) {
					t.Errorf("report lacks %q:\n%s", w, rep)
				}
			}
		})
	}
}

func TestPipelineTestDiff(t *testing.T) {
	got := strings.Join(diffLines([]string{"a", "b", "c"}, []string{"a", "x", "c", "d"}), "\n")
	want := "--- expected\n+++ got\n  a\n- b\n+ x\n  c\n+ d"
	if got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
}
