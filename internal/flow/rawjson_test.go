package flow

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"strings"
	"testing"
	"unsafe"
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
		"1E-3", "2.5e+10", "1e400", "-1e400", "5433", "-5433", "12345678901234567e2", "123456789012345678.5",
		"1234567890123456789", "0.5", "17E1",
	} {
		for _, data := range []string{lit + ",", lit + "}", lit} {
			t.Run(data, func(t *testing.T) {
				want, err := ParseJSON([]byte(lit))
				if err != nil {
					t.Fatal(err)
				}
				n, f, isInt, ok := JSONNumber([]byte(data), 0)
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

// checkIndex checks StrictJSON's one pass against ValidateJSON, and its
// index against the parser: every member in order, and Find giving the
// value the parsed map keeps.
func checkIndex(t *testing.T, data []byte) {
	t.Helper()
	idx, ok := validateIndexed(data)
	if ok != (ValidateJSON(data) == nil) {
		t.Fatalf("validateIndexed(%q) ok = %v, ValidateJSON says %v", data, ok, ValidateJSON(data))
	}
	if idx == nil {
		return
	}
	v, err := ParseJSON(data)
	m, isObj := v.(map[string]any)
	if err != nil || !isObj {
		t.Fatalf("indexed %q, which parses to %T, %v", data, v, err)
	}
	for k := range idx.Len() {
		key, start, value, end := idx.Member(data, k)
		if data[start] != '"' || SkipJSONValue(data, value) != end {
			t.Fatalf("%q: member %d at %d, value %d..%d", data, k, start, value, end)
		}
		at, found := idx.Find(data, string(key))
		if !found {
			t.Fatalf("%q: Find(%q) missed", data, key)
		}
		// Indexed keys have no escapes, so they are plain keys.
		if at2, found2 := idx.FindPlain(data, string(key)); at2 != at || !found2 {
			t.Fatalf("%q: FindPlain(%q) = %d, %v; Find %d", data, key, at2, found2, at)
		}
		got, err := ParseJSON(data[at:SkipJSONValue(data, at)])
		if err != nil || !reflect.DeepEqual(got, m[string(key)]) {
			t.Fatalf("%q: Find(%q) reads %v (%v), the parser %v", data, key, got, err, m[string(key)])
		}
	}
	if idx.Len() < len(m) {
		t.Fatalf("%q: %d members indexed, the parser has %d keys", data, idx.Len(), len(m))
	}
}

func TestMemberIndex(t *testing.T) {
	tests := []struct {
		data    string
		indexed bool
		members int
	}{
		{`{"a":1,"b":"x"}`, true, 2},
		{` { "a" : [1, {"b": 2}] ,
"b" :	true } `, true, 2},
		{`{}`, true, 0},
		{`{"a:b" :1,"c"	:  "d:e\"","f":{"g:":"h"}}`, true, 3},
		{`{"a":1,"a":{"c":[]}}`, true, 2},
		{`{"\u0061":1}`, false, 0},
		{`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10}`, true, 10},
		{`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11}`, false, 0},
		{`[1]`, false, 0},
		{`{"a":1} x`, false, 0},
		{`{"a":"\ud800"}`, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			checkIndex(t, []byte(tt.data))
			ev := &Event{Data: []byte(tt.data)}
			idx := ev.Index()
			if (idx != nil) != tt.indexed || (idx != nil && idx.Len() != tt.members) {
				t.Fatalf("Index() = %+v, want indexed %v with %d members", idx, tt.indexed, tt.members)
			}
			if c := ev.WithType("t"); c.Index() != idx {
				t.Error("WithType dropped the index")
			}
		})
	}
	// A key that would need escapes cannot match the raw bytes of an
	// indexed object, whatever follows them.
	data := []byte(`{"a":"x","b\\":1}`)
	if idx := (&Event{Data: []byte(`{"a":"x"}`)}).Index(); idx == nil {
		t.Fatal("not indexed")
	} else if _, found := idx.Find([]byte(`{"a":"x"}`), `a":`); found {
		t.Error(`Find("a\":") matched the bytes of "a":"x"`)
	}
	if (&Event{Data: data}).Index() != nil {
		t.Error("an object with an escaped key was indexed")
	}
	for _, tc := range jsonCases {
		checkIndex(t, []byte(tc.in))
	}
	for _, tc := range strictCases {
		checkIndex(t, []byte(tc.in))
	}
}

// TestNonPlain checks the eight-bytes-at-a-time test of checkString
// against the byte table: every byte value in every position of a word of
// otherwise plain bytes, and a quote after it.
func TestNonPlain(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			for _, tail := range []byte{'a', '"'} {
				w := []byte("abcdefgh")
				w[pos] = byte(c)
				if pos < 7 {
					w[7] = tail
				}
				want := 8
				for i, b := range w {
					if !plainByte[b] {
						want = i
						break
					}
				}
				got := 8
				if m := nonPlain(binary.LittleEndian.Uint64(w)); m != 0 {
					got = bits.TrailingZeros64(m) >> 3
				}
				if got != want {
					t.Fatalf("nonPlain(%q) marks byte %d first, want %d", w, got, want)
				}
			}
		}
	}
}

func TestMemberIndexSize(t *testing.T) {
	if s := unsafe.Sizeof(MemberIndex{}); s > 64 {
		t.Errorf("MemberIndex is %d bytes; keep it within one 64-byte size class", s)
	}
	big := []byte(`{"a":"` + strings.Repeat("x", 1<<16) + `"}`)
	if ev := (&Event{Data: big}); !ev.StrictJSON() || ev.Index() != nil {
		t.Error("a payload beyond 16-bit offsets must be valid and not indexed")
	}
}

// TestNonDigit checks the eight-bytes-at-a-time digit test of plainIntEnd
// against a byte-by-byte one: every byte value in every position of a
// word of otherwise digits.
func TestNonDigit(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			w := []byte("01234567")
			w[pos] = byte(c)
			want := 8
			for i, b := range w {
				if b < '0' || b > '9' {
					want = i
					break
				}
			}
			got := 8
			if m := nonDigit(binary.LittleEndian.Uint64(w)); m != 0 {
				got = bits.TrailingZeros64(m) >> 3
			}
			if got != want {
				t.Fatalf("nonDigit(%q) marks byte %d first, want %d", w, got, want)
			}
		}
	}
}

// TestValidateIntoShapes puts the values validateInto checks itself (and
// the ones it hands to the general checks) at every offset against the
// eight-byte words it reads, before other members, the end of the object
// and the end of the data, and compares its verdict and index with
// ValidateJSON and the parser.
func TestValidateIntoShapes(t *testing.T) {
	values := []string{
		`0`, `-0`, `7`, `-`, `-x`, `01`, `-01`, `00`, `1.`, `1.5`, `-1.5e3`, `1e5`, `1E+5`, `2e`,
		`12345678`, `123456789`, `-123456789012345678`, `123456789012345678`,
		`1234567890123456789`, `9223372036854775807`, `9223372036854775808`, `12345678901234567890123`,
		`""`, `"a"`, `"abcdefg"`, `"abcdefgh"`, `"abcdefghijklmnop"`, "\"a\x7fb\"", "\"a\x1fb\"",
		"\"caf\xc3\xa9\"", "\"caf\xc3\"", `"a\"b"`, `"a\\"`, `"\u00e9"`, `"\ud800"`, `"abc`, `"abcdefghijk`,
		`true`, `false`, `null`, `tru`, `{}`, `{"x":[1,{"y":"z"}]}`, `[]`, `[1,2`, `x`,
	}
	keys := []string{`"k"`, `"key4"`, `"abcdefgh"`, `"abcdefghi"`, `"\u006b"`, "\"k\xc3\xa9\"", "\"k\x01\"", `k`}
	for _, v := range values {
		for _, k := range keys {
			for _, shape := range []string{"{%s:%s}", "{%s:%s,\"z\":1}", "{ %s : %s }", "{%s:%s} ", "{\"a\":\"bcd\",%s:%s}", "{%s:%s", "{%s:%s,}", "{%s:%s}}", "[%s,%s]"} {
				checkIndex(t, []byte(fmt.Sprintf(shape, k, v)))
			}
		}
	}
	// Data ending inside a value, at every length.
	full := `{"id":123456789,"ts":"2026-01-01T00:00:00Z","n":-12.5e-3,"ok":true}`
	for n := range len(full) + 1 {
		checkIndex(t, []byte(full[:n]))
	}
}
