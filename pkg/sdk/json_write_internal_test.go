package sdk

import (
	"encoding/json"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

var jsonStringCases = []string{
	"", "plain", `quote " and \ backslash`, "ctl \x00\x01\x1f\x7f", "\n\r\t",
	"héllo ✓ 😀", "bad \xff\xfe utf8", "line\u2028sep\u2029", "<>&",
}

// TestJSONStringSameAsFlow pins the SDK's copy of the JSON string writer
// to flowctl's own, and both to encoding/json for valid input.
func TestJSONStringSameAsFlow(t *testing.T) {
	for _, s := range jsonStringCases {
		got, want := string(appendJSONString(nil, s)), string(flow.AppendJSONString(nil, s))
		if got != want {
			t.Errorf("%q: sdk writes %s, flow writes %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%q: %s is not JSON: %v", s, got, err)
		}
	}
}

func FuzzJSONStringSameAsFlow(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendJSONString(nil, s), flow.AppendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: sdk writes %s, flow writes %s", s, got, want)
		}
	})
}
