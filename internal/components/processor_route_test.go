package components

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
)

func routeCases(pairs ...string) []any {
	var out []any
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, map[string]any{"type": pairs[i], "when": pairs[i+1]})
	}
	return out
}

func TestRouteValidate(t *testing.T) {
	procCheckValidate(t, flow.RoleProcessor, "route", []procValidateCase{
		{"valid", flow.Config{"cases": routeCases("large", "data.amount >= 5000"), "default": "small"}, nil},
		{"valid without default", flow.Config{"cases": routeCases("large", "data.amount >= 5000", "refund", "data.kind == 'refund'")}, nil},
		{"no cases", flow.Config{"cases": []any{}}, []string{`cases: needs at least one case — add - {type: large, when: "data.amount >= 5000"}`}},
		{"bad when", flow.Config{"cases": routeCases("a", "true", "b", "data.amount")}, nil},
		{"when not bool", flow.Config{"cases": routeCases("a", "true", "b", "1 + 1")}, []string{
			"cases[1].when: expression must return bool, got int — make it a condition, for example data.amount >= 5000 or has(data.user)",
		}},
		{"undeclared in when", flow.Config{"cases": routeCases("a", "true", "b", "kind == 'x'")}, []string{
			"cases[1].when: undeclared reference to 'kind' at column 1 — did you mean data.kind? the variables are data, id, type, source, subject, time and metadata; payload fields are data.<field>",
		}},
		{"missing parts", flow.Config{"cases": []any{map[string]any{"when": "true"}, map[string]any{"type": "x"}, "oops"}}, []string{
			"cases[0].type: is required — name the event type matching events get, for example type: large",
			`cases[1].when: is required — add a condition, for example when: "data.amount >= 5000"`,
			`cases[2]: must be a mapping with type and when, got string — write - {type: large, when: "data.amount >= 5000"}`,
		}},
	})
}

func TestRouteOutputTypes(t *testing.T) {
	s := procSpec(t, flow.RoleProcessor, "route")
	tests := []struct {
		name string
		cfg  flow.Config
		want []string
	}{
		{"cases and default", flow.Config{"cases": routeCases("large", "true", "refund", "false"), "default": "other"}, []string{"large", "refund", "other"}},
		{"no default", flow.Config{"cases": routeCases("large", "true")}, []string{"large"}},
		{"repeats removed", flow.Config{"cases": routeCases("a", "true", "b", "true", "a", "false"), "default": "b"}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.OutputTypes("r", tt.cfg, []string{"payment"})
			if !ok || !slices.Equal(got, tt.want) {
				t.Errorf("OutputTypes = %v, %v; want %v, true", got, ok, tt.want)
			}
		})
	}
}

func TestRouteProcess(t *testing.T) {
	withDefault := procNew(t, "route", flow.Config{
		"cases":   routeCases("large", "data.amount >= 5000", "refund", "data.kind == 'refund'", "large", "true"),
		"default": "small",
	})
	noDefault := procNew(t, "route", flow.Config{"cases": routeCases("large", "data.amount >= 5000", "refund", "data.kind == 'refund'")})
	tests := []struct {
		name string
		p    flow.Processor
		typ  string // input type
		data string
		want string // output type; "" = dropped
		err  string
	}{
		{"first case", withDefault, "payment", `{"amount":6000,"kind":"refund"}`, "large", ""},
		{"second case", withDefault, "payment", `{"amount":10,"kind":"refund"}`, "refund", ""},
		{"first match wins over a later true case", withDefault, "payment", `{"amount":10,"kind":"x"}`, "large", ""},
		{"default", noDefault, "payment", `{"amount":10,"kind":"x"}`, "", ""},
		{"already that type", noDefault, "large", `{"amount":6000}`, "large", ""},
		{"error in a case", noDefault, "payment", `{"amount":10}`, "", `case refund: expression "data.kind == 'refund'": no such key: kind`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := procEvent("src:1", tt.typ, tt.data)
			out, err := tt.p.Process(context.Background(), in, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(out) != 0 {
					t.Fatalf("unmatched event not dropped: %v", out[0].Type)
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("got %d events", len(out))
			}
			got := out[0]
			if got.Type != tt.want {
				t.Errorf("type %q, want %q", got.Type, tt.want)
			}
			if in.Type != tt.typ {
				t.Error("the input event was modified")
			}
			if &got.Data[0] != &in.Data[0] || got.ID != in.ID || got.Source != in.Source {
				t.Error("route must keep the data bytes and the other attributes")
			}
		})
	}
}
