package external

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

// stdioLineCases are lines a stdio component may write, and some it
// should not; fast says whether parseStdioLine reads them by hand (the
// others go to json.Unmarshal).
var stdioLineCases = []struct {
	name, line string
	fast       bool
}{
	{"short form", `{"seq":7,"data":{"amount":5000,"kind":"FEE","amount_usd":50},"done":true}`, true},
	{"short form with spaces", " { \"seq\" : 7 ,\t\"data\" : [1, {\"a\":\"}\"}] , \"done\" : true }\n", true},
	{"output without done", `{"seq":1,"data":"x"}`, true},
	{"done only", `{"seq":9,"done":true}`, true},
	{"largest seq", `{"seq":18446744073709551615,"done":true}`, false}, // beyond int64: not strict JSON
	{"error", `{"seq":2,"error":"bad \"amount\"\n","permanent":true}`, true},
	{"long form", `{"seq":3,"event":{"id":"a","type":"t","time":"2026-01-01T00:00:00Z","data":{"x":1},"metadata":{"k":"v"}},"done":true}`, true},
	{"event with base64 data", `{"seq":3,"event":{"data_base64":"aGk="},"done":false}`, true},
	{"nulls", `{"seq":null,"event":null,"data":null,"done":null,"error":null,"permanent":null}`, true},
	{"unknown members", `{"x":{"seq":9,"done":true},"seq":4,"y":[{"data":1}],"done":true,"z":"\"seq\""}`, true},
	{"empty object", `{}`, true},
	{"key in another case", `{"SEQ":5,"Done":true}`, false},
	{"key folding to ascii", `{"ſeq":5,"done":true}`, false},
	{"escaped key", `{"\u0073eq":5,"done":true}`, false},
	{"repeated key", `{"seq":5,"seq":6,"done":true}`, false},
	{"repeated event merges", `{"seq":5,"event":{"id":"a"},"event":{"type":"b"}}`, false},
	{"seq with a fraction", `{"seq":5.0,"done":true}`, false},
	{"seq with an exponent", `{"seq":5e1,"done":true}`, false},
	{"negative seq", `{"seq":-5,"done":true}`, false},
	{"seq too large", `{"seq":18446744073709551616,"done":true}`, false},
	{"seq as a string", `{"seq":"5","done":true}`, false},
	{"done as a number", `{"seq":5,"done":1}`, false},
	{"error as a number", `{"seq":5,"error":1}`, false},
	{"event as an array", `{"seq":5,"event":[]}`, false},
	{"event with a bad time", `{"seq":5,"event":{"time":"yesterday"}}`, false},
	{"null line", `null`, false},
	{"array", `[1,2]`, false},
	{"not JSON", `{"seq":5,"done":true`, false},
	{"trailing garbage", `{"seq":5,"done":true} x`, false},
	{"invalid data", `{"seq":5,"data":{bad},"done":true}`, false},
	{"invalid UTF-8 in data", "{\"seq\":5,\"data\":\"\xff\",\"done\":true}", false},
	{"number beyond float64", `{"seq":5,"data":1e999,"done":true}`, false},
	{"nested as deep as encoding/json allows", `{"seq":5,"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`, true},
	{"nested deeper than encoding/json allows", `{"seq":5,"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, false},
}

// checkStdioLine fails when parseStdioLine and json.Unmarshal read line
// differently: one refuses it and the other not, or they decode it to
// different values.
func checkStdioLine(t *testing.T, line []byte) {
	t.Helper()
	var want, got stdioLine
	werr := json.Unmarshal(line, &want)
	gerr := parseStdioLine(line, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: json.Unmarshal: %v; parseStdioLine: %v", line, werr, gerr)
	}
	if werr != nil {
		return // the line is ignored either way
	}
	if !reflect.DeepEqual(got.Seq, want.Seq) || !reflect.DeepEqual(got.Event, want.Event) ||
		!bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil) ||
		got.Done != want.Done || !reflect.DeepEqual(got.Error, want.Error) || got.Permanent != want.Permanent {
		t.Fatalf("%q:\nparseStdioLine %s\njson.Unmarshal %s", line, showStdioLine(got), showStdioLine(want))
	}
}

func showStdioLine(l stdioLine) string {
	b, _ := json.Marshal(struct {
		Seq       *uint64
		Event     *wireEvent
		Data      *string
		Done      bool
		Error     *string
		Permanent bool
	}{l.Seq, l.Event, dataString(l.Data), l.Done, l.Error, l.Permanent})
	return string(b)
}

func dataString(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func TestParseStdioLine(t *testing.T) {
	for _, c := range stdioLineCases {
		t.Run(c.name, func(t *testing.T) {
			checkStdioLine(t, []byte(c.line))
			var l stdioLine
			fast := flow.ValidateJSON([]byte(c.line)) == nil && parseStdioMembers([]byte(c.line), &l)
			if fast != c.fast {
				t.Errorf("read by hand: %v, want %v", fast, c.fast)
			}
		})
	}
}

// FuzzParseStdioLine compares parseStdioLine with json.Unmarshal, the
// decoder it stands in for.
//
//	go test -run XXX -fuzz FuzzParseStdioLine ./internal/external/
func FuzzParseStdioLine(f *testing.F) {
	for _, c := range stdioLineCases {
		f.Add([]byte(c.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkStdioLine(t, line)
	})
}

// BenchmarkStdioParseLine reads W1 answers in the short form, by hand and
// with json.Unmarshal.
//
//	go test -run XXX -bench StdioParseLine -benchmem ./internal/external/
func BenchmarkStdioParseLine(b *testing.B) {
	line := []byte(`{"seq":123456,"data":{"id":42,"ts":"2026-01-01T00:00:00Z","account":"acct-42","amount":5000,"kind":"FEE","amount_usd":50},"done":true}` + "\n")
	for _, c := range []struct {
		name  string
		parse func([]byte, *stdioLine) error
	}{
		{"hand", parseStdioLine},
		{"json.Unmarshal", func(b []byte, l *stdioLine) error { return json.Unmarshal(b, l) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for range b.N {
				var l stdioLine
				if err := c.parse(line, &l); err != nil || l.Seq == nil || !l.Done {
					b.Fatal(err)
				}
			}
		})
	}
}
