package components

import (
	"fmt"
	"math"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
)

// This file holds small helpers shared by the processors and the generate
// source. The spec package hands configs over with defaults applied and
// types checked (strings, int, float64 for number fields, []any,
// map[string]any), but constructors are also called directly by tests and
// other packages, so every accessor tolerates a missing key and reports a
// wrong type as a *flow.FieldError instead of panicking.

// sourceEventTypes is the OutputTypes hook of every built-in source: a
// source emits one type, its event_type, which defaults to the component's
// name.
func sourceEventTypes(name string, cfg flow.Config, _ []string) ([]string, bool) {
	if t, ok := cfg["event_type"].(string); ok && t != "" {
		return []string{t}, true
	}
	return []string{name}, true
}

// fieldErr builds the config error of the field at path.
func fieldErr(path, msg, hint string) *flow.FieldError {
	return &flow.FieldError{Path: path, Message: msg, Hint: hint}
}

// cfgString reads a string field; ok is false when it is absent.
func cfgString(cfg map[string]any, key string) (s string, ok bool, err error) {
	switch v := cfg[key].(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	default:
		return "", false, fieldErr(key, fmt.Sprintf("must be a string, got %T", v), "")
	}
}

// cfgInt reads a whole number, def when absent.
func cfgInt(cfg map[string]any, key string, def int) (int, error) {
	switch v := cfg[key].(type) {
	case nil:
		return def, nil
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, fieldErr(key, fmt.Sprintf("must be a whole number, got %v", v), "")
		}
		return int(v), nil
	default:
		return 0, fieldErr(key, fmt.Sprintf("must be a whole number, got %T", v), "")
	}
}

// cfgIntIn reads a whole number in [lo, hi], def when absent.
func cfgIntIn(cfg map[string]any, key string, def, lo, hi int) (int, error) {
	n, err := cfgInt(cfg, key, def)
	if err == nil && (n < lo || n > hi) {
		err = ioFieldErr(key, fmt.Sprintf("%d is out of range", n), fmt.Sprintf("use a value from %d to %d", lo, hi))
	}
	return n, err
}

// cfgPayloadFormat reads the format field of the message sources (kafka,
// nats): json (the default) or text, which it reports.
func cfgPayloadFormat(cfg map[string]any) (text bool, err error) {
	switch f := ioCfgString(cfg, "format", "json"); f {
	case "json":
		return false, nil
	case "text":
		return true, nil
	default:
		return false, ioFieldErr("format", fmt.Sprintf("unknown format %q", f), `use "json" or "text"`)
	}
}

// cfgNumber reads a number (int or float), def when absent.
func cfgNumber(cfg map[string]any, key string, def float64) (float64, error) {
	switch v := cfg[key].(type) {
	case nil:
		return def, nil
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fieldErr(key, fmt.Sprintf("must be a finite number, got %v", v), "")
		}
		return v, nil
	default:
		return 0, fieldErr(key, fmt.Sprintf("must be a number, got %T", v), "")
	}
}

// cfgList reads a list field, nil when absent.
func cfgList(cfg map[string]any, key string) ([]any, error) {
	switch v := cfg[key].(type) {
	case nil:
		return nil, nil
	case []any:
		return v, nil
	case []string:
		out := make([]any, len(v))
		for i, s := range v {
			out[i] = s
		}
		return out, nil
	default:
		return nil, fieldErr(key, fmt.Sprintf("must be a list, got %T", v), "")
	}
}

// cfgObject reads a mapping field, nil when absent.
func cfgObject(cfg map[string]any, key string) (map[string]any, error) {
	switch v := cfg[key].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return v, nil
	case flow.Config:
		return v, nil
	default:
		return nil, fieldErr(key, fmt.Sprintf("must be a mapping, got %T", v), "")
	}
}

// compileField compiles the CEL expression at path, turning a compile
// error into the field's config error.
func compileField(path, src string, want expr.Result, opts ...expr.Option) (*expr.Program, error) {
	p, err := expr.Compile(src, want, opts...)
	if err != nil {
		return nil, expr.FieldError(path, err)
	}
	return p, nil
}

// validateWith returns a Validate hook that runs a component's config
// parser, so that Validate and New share one parser and never disagree.
// Compiled expressions are cached by package expr, so New does not compile
// them again.
func validateWith[T any](parse func(cfg flow.Config) (T, error)) func(flow.Config) error {
	return func(cfg flow.Config) error {
		_, err := parse(cfg)
		return err
	}
}
