package expr

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/flowctl/flowctl/internal/flow"
)

// ToGo converts a CEL value to the Go values of a parsed JSON payload:
// map[string]any, []any, string, int64, float64, bool and nil, plus uint64,
// []byte, time.Time and time.Duration, which AppendJSON writes as a number,
// base64, RFC 3339 and "1.5s" strings. An optional becomes its value or nil.
//
// A map or list that CEL read from the payload is returned as it is, not
// copied: never modify the result's contents.
func ToGo(v ref.Val) (any, error) {
	switch t := v.(type) {
	case types.Bool:
		return bool(t), nil
	case types.Int:
		return int64(t), nil
	case types.Uint:
		return uint64(t), nil
	case types.Double:
		return float64(t), nil
	case types.String:
		return string(t), nil
	case types.Bytes:
		return []byte(t), nil
	case types.Null:
		return nil, nil
	case types.Timestamp:
		return t.Time, nil
	case types.Duration:
		return t.Duration, nil
	case *types.Err:
		return nil, t
	case *types.Optional:
		if !t.HasValue() {
			return nil, nil
		}
		return ToGo(t.GetValue())
	case traits.Mapper:
		return mapToGo(t)
	case traits.Lister:
		return listToGo(t)
	}
	return nil, fmt.Errorf("cannot turn a CEL %s into JSON", v.Type().TypeName())
}

func mapToGo(m traits.Mapper) (any, error) {
	switch native := m.Value().(type) {
	case map[string]any:
		// Read from the payload: already JSON values.
		return native, nil
	case map[string]string:
		out := make(map[string]any, len(native))
		for k, v := range native {
			out[k] = v
		}
		return out, nil
	}
	out := make(map[string]any, int(m.Size().(types.Int)))
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		ks, ok := k.(types.String)
		if !ok {
			return nil, fmt.Errorf("map keys must be strings to become JSON, got %s key %v", k.Type().TypeName(), k.Value())
		}
		val, err := ToGo(m.Get(k))
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", string(ks), err)
		}
		out[string(ks)] = val
	}
	return out, nil
}

func listToGo(l traits.Lister) (any, error) {
	if native, ok := l.Value().([]any); ok {
		return native, nil
	}
	n := int(l.Size().(types.Int))
	out := make([]any, n)
	for i := range n {
		val, err := ToGo(l.Get(types.Int(i)))
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		out[i] = val
	}
	return out, nil
}

// JSON converts a CEL value to JSON bytes, as AppendValue does.
func JSON(v ref.Val) ([]byte, error) {
	return AppendValue(nil, v)
}

// AppendValue appends the JSON encoding of a CEL value to dst, with the
// same result as ToGo followed by AppendJSON but without building the Go
// values first: it is what the map processor and the generate source use
// per event.
func AppendValue(dst []byte, v ref.Val) ([]byte, error) {
	switch t := v.(type) {
	case types.Bool:
		return strconv.AppendBool(dst, bool(t)), nil
	case types.Int:
		return strconv.AppendInt(dst, int64(t), 10), nil
	case types.Uint:
		return strconv.AppendUint(dst, uint64(t), 10), nil
	case types.Double:
		return appendFloat(dst, float64(t))
	case types.String:
		return flow.AppendJSONString(dst, string(t)), nil
	case types.Null:
		return append(dst, "null"...), nil
	case *types.Err:
		return nil, t
	case *types.Optional:
		if !t.HasValue() {
			return append(dst, "null"...), nil
		}
		return AppendValue(dst, t.GetValue())
	case traits.Mapper:
		if native, ok := t.Value().(map[string]any); ok {
			return AppendJSON(dst, native)
		}
		return appendMapValue(dst, t)
	case traits.Lister:
		if native, ok := t.Value().([]any); ok {
			return AppendJSON(dst, native)
		}
		n := int(t.Size().(types.Int))
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendValue(dst, t.Get(types.Int(i))); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
		}
		return append(dst, ']'), nil
	}
	g, err := ToGo(v) // bytes, timestamps, durations, other maps
	if err != nil {
		return nil, err
	}
	return AppendJSON(dst, g)
}

// celMember is one entry of a map literal being written as JSON.
type celMember struct {
	key string
	val ref.Val
}

func appendMapValue(dst []byte, m traits.Mapper) ([]byte, error) {
	if native, ok := m.Value().(map[ref.Val]ref.Val); ok {
		// A map literal ({"id": i, ...}): walk its Go map directly, with
		// no iterator and no key boxing for lookups.
		var small [16]celMember
		members := small[:0]
		for k, v := range native {
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map keys must be strings to become JSON, got %s key %v", k.Type().TypeName(), k.Value())
			}
			members = append(members, celMember{string(ks), v})
		}
		slices.SortFunc(members, func(a, b celMember) int { return strings.Compare(a.key, b.key) })
		dst = append(dst, '{')
		for i, mb := range members {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = flow.AppendJSONString(dst, mb.key)
			dst = append(dst, ':')
			var err error
			if dst, err = AppendValue(dst, mb.val); err != nil {
				return nil, fmt.Errorf("key %q: %w", mb.key, err)
			}
		}
		return append(dst, '}'), nil
	}
	var small [16]string
	keys := small[:0]
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		ks, ok := k.(types.String)
		if !ok {
			return nil, fmt.Errorf("map keys must be strings to become JSON, got %s key %v", k.Type().TypeName(), k.Value())
		}
		keys = append(keys, string(ks))
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = flow.AppendJSONString(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = AppendValue(dst, m.Get(types.String(k))); err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
	}
	return append(dst, '}'), nil
}

// AppendJSON appends the JSON encoding of v, a value as ToGo returns, to
// dst. Object keys are sorted, so the same value always gives the same
// bytes. A float64 with an integral value keeps a ".0" (7.0, not 7) so
// that it is read back as a double and an int64 as an int: types survive a
// hop through JSON.
func AppendJSON(dst []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, t), nil
	case int64:
		return strconv.AppendInt(dst, t, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(t), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(t), 10), nil
	case uint64:
		return strconv.AppendUint(dst, t, 10), nil
	case float64:
		return appendFloat(dst, t)
	case string:
		return flow.AppendJSONString(dst, t), nil
	case []byte:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, t)
		return append(dst, '"'), nil
	case time.Time:
		dst = append(dst, '"')
		dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"'), nil
	case time.Duration:
		dst = append(dst, '"')
		dst = strconv.AppendFloat(dst, t.Seconds(), 'f', -1, 64)
		return append(dst, 's', '"'), nil
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = flow.AppendJSONString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = AppendJSON(dst, t[k]); err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
		}
		return append(dst, '}'), nil
	case []any:
		dst = append(dst, '[')
		for i, x := range t {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendJSON(dst, x); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
		}
		return append(dst, ']'), nil
	}
	return nil, fmt.Errorf("cannot write a Go %T as JSON", v)
}

func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("cannot write %v as JSON: JSON has no NaN or infinity", f)
	}
	// Like encoding/json: plain notation for ordinary magnitudes, an
	// exponent for very small or very large ones.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	if out, ok := appendShortFloat(dst, f); ok {
		return out, nil
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 → 1e-7
		n := len(dst)
		if n-start >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst, nil
	}
	if !slices.Contains(dst[start:], '.') {
		dst = append(dst, '.', '0')
	}
	return dst, nil
}

// exactPow10 are the powers of ten a float64 holds exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// appendShortFloat writes f as appendFloat does, for the common doubles
// that are a decimal of at most 15 significant digits (12.34, 0.5), without
// strconv's general shortest-digits search; false, with dst unchanged,
// for the others.
//
// For k = 0, 1, 2, ... it takes d, the integer nearest f·10^k, and stops
// at the first k where d / 10^k == f. Both are exact float64s (d < 10^15
// < 2^53, k <= 22), so the division is correctly rounded: it equals f
// exactly when the decimal d·10^-k reads back as f, i.e. round-trips.
// Below 10^15 significant digits a float64's spacing is under a fifth of
// 10^-k, so at most one k-digit decimal round-trips and, when one does,
// f·10^k is so close to it that the rounded product still rounds to it.
// The first k that round-trips therefore gives the unique shortest
// decimal, which is what strconv's 'f' format with precision -1 prints
// (with ".0" added to an integer, as appendFloat does).
func appendShortFloat(dst []byte, f float64) ([]byte, bool) {
	a := math.Abs(f)
	if !(a >= 1e-6 && a < 1e15) { // also NaN
		return dst, false
	}
	for k := range len(exactPow10) {
		p := exactPow10[k]
		s := a * p
		if s >= 1e15 {
			return dst, false
		}
		// s >= 0: adding a half and truncating rounds to nearest; where
		// that differs from math.Round (s within an ulp of a half) no
		// k-digit decimal round-trips anyway.
		d := float64(uint64(s + 0.5))
		if d/p != a {
			continue
		}
		if f < 0 {
			dst = append(dst, '-')
		}
		var buf [24]byte
		digits := strconv.AppendUint(buf[:0], uint64(d), 10)
		if k == 0 {
			return append(append(dst, digits...), '.', '0'), true
		}
		if n := len(digits) - k; n > 0 {
			dst = append(dst, digits[:n]...)
			dst = append(dst, '.')
			return append(dst, digits[n:]...), true
		}
		dst = append(dst, '0', '.')
		for range k - len(digits) {
			dst = append(dst, '0')
		}
		return append(dst, digits...), true
	}
	return dst, false
}
