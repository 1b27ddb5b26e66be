package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// referenceParse is what ParseJSON must agree with: encoding/json with
// UseNumber, integers as int64, other numbers as float64.
func referenceParse(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the first value")
	}
	return normalize(v), nil
}

func normalize(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = normalize(x)
		}
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
	}
	return v
}

var jsonCases = []struct {
	name string
	in   string
	ok   bool
}{
	{"object", `{"id":1,"ts":"2026-01-01T00:00:00Z","account":"acct-1","amount":7919,"kind":"trade"}`, true},
	{"nested", `{"a":{"b":[1,2,{"c":null}]},"d":[],"e":{}}`, true},
	{"whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", true},
	{"literals", `[true,false,null]`, true},
	{"top-level scalar", `"just a string"`, true},
	{"top-level number", `42`, true},
	{"ints", `[0,-0,1,-1,9223372036854775807,-9223372036854775808,123456789012345678]`, true},
	{"int overflow becomes float", `[9223372036854775808,-9223372036854775809,123456789012345678901234567890]`, true},
	{"floats", `[0.5,-0.5,1e3,1E-3,1.5e+10,-0.0,2.2250738585072014e-308]`, true},
	{"float out of range", `[1e400,-1e400]`, true},
	{"escapes", `"a\"b\\c\/d\be\ff\ng\rh\ti"`, true},
	{"unicode escape", `"\u00e9\u4e2d\uD83D\uDE00"`, true},
	{"lone surrogate", `"\uD83Dx\uDE00"`, true},
	{"surrogate then non-surrogate escape", `"\uD83D\u0041"`, true},
	{"raw utf-8", `"héllo 中文 😀"`, true},
	{"invalid utf-8 replaced", "\"a\xffb\xc3\"", true},
	{"duplicate keys: last wins", `{"a":1,"a":2}`, true},
	{"empty", ``, false},
	{"only space", `   `, false},
	{"truncated object", `{"a":`, false},
	{"truncated string", `"abc`, false},
	{"trailing comma", `[1,2,]`, false},
	{"trailing data", `{} {}`, false},
	{"leading zero", `01`, false},
	{"bare minus", `-`, false},
	{"dot without digits", `1.`, false},
	{"exponent without digits", `1e`, false},
	{"control char", "\"a\nb\"", false},
	{"bad escape", `"\x"`, false},
	{"bad unicode escape", `"\u12G4"`, false},
	{"single quotes", `{'a':1}`, false},
	{"missing colon", `{"a" 1}`, false},
	{"unquoted key", `{a:1}`, false},
	{"bad literal", `tru`, false},
	{"NaN", `NaN`, false},
	{"plus sign", `+1`, false},
}

func TestParseJSON(t *testing.T) {
	for _, tc := range jsonCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseJSON([]byte(tc.in))
			want, werr := referenceParse([]byte(tc.in))
			if (werr == nil) != tc.ok {
				t.Fatalf("reference verdict %v disagrees with the table", werr)
			}
			if (err == nil) != tc.ok {
				t.Fatalf("ParseJSON(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			}
			if tc.ok && !reflect.DeepEqual(got, want) {
				t.Fatalf("ParseJSON(%q) = %#v, want %#v", tc.in, got, want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "invalid JSON") {
				t.Errorf("error %q should start with 'invalid JSON'", err)
			}
		})
	}
}

// TestParseJSONDoesNotAlias: ParseJSON copies, so the caller may reuse its
// buffer.
func TestParseJSONDoesNotAlias(t *testing.T) {
	buf := []byte(`{"k":"value"}`)
	v, err := ParseJSON(buf)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, `{"x":"XXXXX"}`)
	if m := v.(map[string]any); m["k"] != "value" {
		t.Fatalf("value changed with the buffer: %v", m)
	}
}

func TestParseJSONDeep(t *testing.T) {
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	if _, err := ParseJSON([]byte(deep)); err == nil {
		t.Fatal("nesting beyond the limit must fail")
	}
	ok := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	if _, err := ParseJSON([]byte(ok)); err != nil {
		t.Fatal(err)
	}
}

// TestEventValueConcurrent: many readers of one event see one parse.
func TestEventValueConcurrent(t *testing.T) {
	e := &Event{Data: []byte(`{"a":[1,2,3]}`)}
	var wg sync.WaitGroup
	results := make([]any, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = e.Value()
		}()
	}
	wg.Wait()
	first := reflect.ValueOf(results[0]).Pointer()
	for _, r := range results {
		if reflect.ValueOf(r).Pointer() != first {
			t.Fatal("value parsed more than once")
		}
	}
	c := e.WithType("x")
	if !c.Parsed() || reflect.ValueOf(must(c.Value())).Pointer() != first {
		t.Fatal("WithType must keep the parsed view")
	}
	if d := e.WithData([]byte(`1`)); d.Parsed() || must(d.Value()) != int64(1) {
		t.Fatal("WithData must start a new view")
	}
}

func must(v any, err error) any {
	if err != nil {
		panic(err)
	}
	return v
}

func FuzzParseJSON(f *testing.F) {
	for _, tc := range jsonCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseJSON(data)
		want, werr := referenceParse(data)
		if (err == nil) != (werr == nil) {
			t.Fatalf("ParseJSON(%q): error %v, encoding/json: %v", data, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseJSON(%q) = %#v, encoding/json %#v", data, got, want)
		}
	})
}

var benchLine = []byte(`{"id":123456,"ts":"2026-01-01T00:00:00Z","account":"acct-456","amount":7919,"kind":"trade"}`)

func BenchmarkParseJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseJSON(benchLine); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReferenceParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := referenceParse(benchLine); err != nil {
			b.Fatal(err)
		}
	}
}

// strictCases are valid for encoding/json but lose their meaning when
// read: ValidateJSON refuses them, saying why.
var strictCases = []struct {
	name, in, says string
}{
	{"invalid utf-8", "{\"name\":\"a\xffb\"}", "invalid UTF-8 byte 0xff in string"},
	{"truncated utf-8", "\"\xc3\"", "invalid UTF-8 byte 0xc3"},
	{"utf-8 encoded surrogate", "\"\xed\xa0\x80\"", "invalid UTF-8"},
	{"invalid utf-8 in a key", "{\"\xfe\":1}", "invalid UTF-8"},
	{"lone high surrogate", `"\uD83Dx"`, `\uD83D is half of a UTF-16 surrogate pair`},
	{"lone low surrogate", `"\uDE00"`, `\uDE00 is half`},
	{"surrogate then non-surrogate", `"\uD83D\u0041"`, `\uD83D is half`},
	{"exponent overflow", `{"amount":1e999}`, "number 1e999 is beyond the range of float64 (it would read as +Inf)"},
	{"negative overflow", `[-1.5e400]`, "it would read as -Inf"},
	{"huge integer", `{"amount":123456789012345678901234567890}`, "integer 123456789012345678901234567890 does not fit in int64 and is not exactly a float64"},
	{"negative huge integer", `-9223372036854775809`, "does not fit in int64"},
	{"400-digit integer", strings.Repeat("9", 400), "beyond the range of float64"},
}

func TestValidateJSON(t *testing.T) {
	for _, tc := range jsonCases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateJSON([]byte(tc.in))
			if tc.ok && (err != nil) != strictlyInvalid(tc.in) {
				t.Fatalf("ValidateJSON(%q) = %v; the reference says strictly invalid: %v", tc.in, err, strictlyInvalid(tc.in))
			}
			if !tc.ok && err == nil {
				t.Fatalf("ValidateJSON(%q) = nil; want an error", tc.in)
			}
			if err != nil && !errors.Is(err, ErrMalformedJSON) {
				t.Fatalf("error %v does not wrap ErrMalformedJSON", err)
			}
		})
	}
	for _, tc := range strictCases {
		t.Run("strict/"+tc.name, func(t *testing.T) {
			if !json.Valid([]byte(tc.in)) {
				t.Fatalf("encoding/json does not accept %q: not a strict-only case", tc.in)
			}
			err := ValidateJSON([]byte(tc.in))
			if !errors.Is(err, ErrMalformedJSON) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("ValidateJSON(%q) = %v; want an error saying %q", tc.in, err, tc.says)
			}
		})
	}
	for _, ok := range []string{
		`9223372036854775807`, `-9223372036854775808`, `9223372036854775808`, // 2^63: exactly a float64
		`18446744073709551616`, `1e308`, `-1.7976931348623157e308`, `1e-400`, `0.1`,
		`"\uD83D\uDE00"`, "\"héllo 中文 😀 \ufffd\"", `"\ufffd"`,
		strings.Repeat("1", 308) + ".5",
	} {
		if err := ValidateJSON([]byte(ok)); err != nil {
			t.Errorf("ValidateJSON(%q) = %v; want nil", ok, err)
		}
	}
}

// strictlyInvalid is the reference for what ValidateJSON refuses beyond
// encoding/json's grammar, built on encoding/json and math/big: invalid
// UTF-8, a \u escape of a surrogate that does not pair, a number that
// reads as ±Inf, an integer literal neither int64 nor exactly float64.
// in must be valid for encoding/json.
func strictlyInvalid(in string) bool {
	if !utf8.ValidString(in) || loneSurrogateEscape(in) {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(in))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		n, ok := tok.(json.Number)
		if !ok {
			continue
		}
		s := string(n)
		if !strings.ContainsAny(s, ".eE") {
			bi, _ := new(big.Int).SetString(s, 10)
			if bi.IsInt64() {
				continue
			}
			if _, acc := new(big.Float).SetInt(bi).Float64(); acc != big.Exact {
				return true
			}
			continue
		}
		if f, _ := strconv.ParseFloat(s, 64); math.IsInf(f, 0) {
			return true
		}
	}
}

// loneSurrogateEscape reports a \uD800–\uDFFF escape in in that is not
// the first half of a high-low pair or its second half.
func loneSurrogateEscape(in string) bool {
	var units []uint16
	flush := func() bool {
		for _, r := range utf16.Decode(units) {
			if r == utf8.RuneError {
				return true
			}
		}
		units = units[:0]
		return false
	}
	for i := 0; i < len(in); i++ {
		if in[i] != '\\' {
			continue
		}
		if i+1 < len(in) && in[i+1] == 'u' && i+6 <= len(in) {
			v, err := strconv.ParseUint(in[i+2:i+6], 16, 16)
			if err == nil {
				units = append(units, uint16(v))
				i += 5
				if i+2 < len(in) && in[i+1] == '\\' && in[i+2] == 'u' {
					continue // the next escape may pair with this one
				}
			}
		} else {
			i++ // skip the escaped character (it may be a backslash)
		}
		if len(units) > 0 && flush() {
			return true
		}
		units = units[:0]
	}
	return len(units) > 0 && flush()
}

func FuzzValidateJSON(f *testing.F) {
	for _, tc := range jsonCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range strictCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ValidateJSON(data)
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("ValidateJSON(%q) = nil; encoding/json says invalid", data)
			}
			return
		}
		if want := strictlyInvalid(string(data)); want != (err != nil) {
			t.Fatalf("ValidateJSON(%q) = %v; the reference says strictly invalid: %v", data, err, want)
		}
		if err == nil {
			if _, perr := ParseJSON(data); perr != nil {
				t.Fatalf("ValidateJSON(%q) = nil but ParseJSON: %v", data, perr)
			}
		}
		checkIndex(t, data)
	})
}

func BenchmarkValidateJSON(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchLine)))
	for b.Loop() {
		if err := ValidateJSON(benchLine); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReferenceValid(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchLine)))
	for b.Loop() {
		if !json.Valid(benchLine) {
			b.Fatal("invalid")
		}
	}
}
