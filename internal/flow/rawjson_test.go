package flow

import (
	"math"
	"testing"
)

func TestJSONMember(t *testing.T) {
	tests := []struct {
		name, data, key string
		status          MemberStatus
		value           string // the value's bytes when found
	}{
		{"found", `{"a":1,"b":"x"}`, "b", MemberFound, `"x"`},
		{"first", `{"a":1,"b":"x"}`, "a", MemberFound, `1`},
		{"missing", `{"a":1}`, "b", MemberMissing, ""},
		{"empty object", `{}`, "a", MemberMissing, ""},
		{"spaces", " { \"a\" : [1, {\"b\": 2}] ,\n\"b\" :\ttrue } ", "b", MemberFound, `true`},
		{"repeated key: last wins", `{"a":1,"a":2}`, "a", MemberFound, `2`},
		{"nested key not seen", `{"x":{"a":1}}`, "a", MemberMissing, ""},
		{"braces in strings", `{"x":"}{","a":null}`, "a", MemberFound, `null`},
		{"escaped key", `{"\u0061":1}`, "a", MemberUnsure, ""},
		{"escaped other key", `{"a":1,"b\"":2}`, "a", MemberUnsure, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.data)
			obj := SkipJSONSpace(data, 0)
			at, st := JSONMember(data, obj, tt.key)
			if st != tt.status {
				t.Fatalf("status %d, want %d", st, tt.status)
			}
			if st == MemberFound {
				if got := string(data[at:SkipJSONValue(data, at)]); got != tt.value {
					t.Errorf("value %s, want %s", got, tt.value)
				}
			}
		})
	}
}

// TestJSONNumberMatchesParser reads numbers both ways: the raw reader must
// give the parser's type and value.
func TestJSONNumberMatchesParser(t *testing.T) {
	for _, lit := range []string{
		"0", "-0", "7", "-7", "123456789012345678", "999999999999999999",
		"9223372036854775807", "-9223372036854775808", "9223372036854775808",
		"-9223372036854775809", "12345678901234567890123", "1.5", "-0.0", "1e3",
		"1E-3", "2.5e+10", "1e400", "-1e400",
	} {
		t.Run(lit, func(t *testing.T) {
			want, err := ParseJSON([]byte(lit))
			if err != nil {
				t.Fatal(err)
			}
			n, f, isInt, ok := JSONNumber([]byte(lit+","), 0)
			if !ok {
				t.Fatal("not read")
			}
			switch w := want.(type) {
			case int64:
				if !isInt || n != w {
					t.Errorf("got %d %v (int %v), parser int64 %d", n, f, isInt, w)
				}
			case float64:
				if isInt || math.Float64bits(f) != math.Float64bits(w) {
					t.Errorf("got %d %v (int %v), parser float64 %v", n, f, isInt, w)
				}
			}
		})
	}
}

func TestJSONString(t *testing.T) {
	tests := []struct {
		data string
		want string
		ok   bool
	}{
		{`"abc",`, "abc", true},
		{`""`, "", true},
		{`"ünï"`, "ünï", true},
		{`"a\"b"`, "", false},
		{`"a\u0041"`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			got, ok := JSONString([]byte(tt.data), 0)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %q %v, want %q %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStrictJSON(t *testing.T) {
	tests := []struct {
		data string
		want bool
	}{
		{`{"a":1}`, true},
		{`[1, "x"]`, true},
		{`{"a":1} x`, false},
		{`{"a":"\ud800"}`, false}, // a lone surrogate: read as U+FFFD
		{`{"a":1e999}`, false},
		{``, false},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			ev := &Event{Data: []byte(tt.data)}
			for range 2 { // the second answer comes from the cache
				if got := ev.StrictJSON(); got != tt.want {
					t.Fatalf("StrictJSON() = %v, want %v", got, tt.want)
				}
			}
			if c := ev.WithType("t"); c.view.strict.Load() != ev.view.strict.Load() {
				t.Error("WithType dropped the verdict")
			}
			if c := ev.WithData([]byte("x")); c.view.strict.Load() != 0 {
				t.Error("WithData kept the verdict of other bytes")
			}
		})
	}
}
