package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/flow"
)

// TestComponentsList: every built-in is listed once, under its role's
// heading, with its summary. (The listing follows the specs, which change
// with the components, so it is checked against them, not a golden file.)
func TestComponentsList(t *testing.T) {
	code, out, errOut := runFlowctl(t, "", "components")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	sections := map[flow.Role]string{}
	headings := []struct {
		role  flow.Role
		title string
	}{{flow.RoleSource, "Sources:\n"}, {flow.RoleProcessor, "\nProcessors:\n"}, {flow.RoleSink, "\nSinks:\n"}}
	rest := out
	for i, h := range headings {
		start := strings.Index(rest, h.title)
		if start < 0 {
			t.Fatalf("no %q heading in:\n%s", h.title, out)
		}
		rest = rest[start+len(h.title):]
		end := len(rest)
		if i+1 < len(headings) {
			end = strings.Index(rest, headings[i+1].title)
		}
		sections[h.role] = rest[:end]
	}
	reg := components.NewRegistry()
	if len(reg.All()) == 0 {
		t.Fatal("the registry holds no built-in")
	}
	for _, s := range reg.All() {
		line := "  " + s.Name + " "
		sec := sections[s.Role]
		i := strings.Index(sec, line)
		if i < 0 {
			t.Errorf("%s is not listed under its role:\n%s", s.ID(), sec)
			continue
		}
		row := sec[i:]
		row = row[:strings.IndexByte(row, '\n')]
		if !strings.Contains(row, componentSummaryLine(s.Summary)) {
			t.Errorf("%s's row lacks its summary: %q", s.ID(), row)
		}
	}
	if !strings.Contains(out, `Run "flowctl components NAME"`) {
		t.Error("the listing does not say how to see a component's fields")
	}
}

// TestComponentsDetail: a name prints every field with its type, whether
// it is required, its default, and the examples.
func TestComponentsDetail(t *testing.T) {
	reg := components.NewRegistry()
	for _, s := range reg.All() {
		t.Run(s.ID(), func(t *testing.T) {
			code, out, errOut := runFlowctl(t, "", "components", s.ID())
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr: %s", code, errOut)
			}
			if !strings.HasPrefix(out, string(s.Role)+" \""+s.Name+"\"") {
				t.Errorf("output does not start with the component:\n%s", out)
			}
			var walk func(prefix string, fields []flow.Field)
			walk = func(prefix string, fields []flow.Field) {
				for _, f := range fields {
					head := "  " + prefix + f.Name + " (" + fieldTypeName(f)
					i := strings.Index(out, head)
					if i < 0 {
						t.Errorf("field %s%s missing or without its type %q:\n%s", prefix, f.Name, fieldTypeName(f), out)
						continue
					}
					line := out[i : i+strings.IndexByte(out[i:], '\n')]
					if f.Required && !strings.Contains(line, "required") {
						t.Errorf("%q does not say required", line)
					}
					if f.Default != nil && !strings.Contains(line, "default "+fieldValueText(f.Default)) {
						t.Errorf("%q does not show the default %v", line, f.Default)
					}
					switch {
					case f.Type == flow.TypeObject:
						walk(prefix+f.Name+".", f.Fields)
					case f.Type == flow.TypeArray && f.Items != nil:
						walk(prefix+f.Name+"[].", f.Items.Fields)
					}
				}
			}
			walk("", s.Fields)
			if len(s.Examples) > 0 && !strings.Contains(out, "Examples:\n") {
				t.Errorf("examples missing:\n%s", out)
			}
			for _, ex := range s.Examples {
				first := strings.SplitN(ex, "\n", 2)[0]
				if !strings.Contains(out, "      "+first+"\n") {
					t.Errorf("example line %q missing:\n%s", first, out)
				}
			}
		})
	}
}

func TestComponentsByBareName(t *testing.T) {
	reg := components.NewRegistry()
	for _, s := range reg.All() {
		code, out, _ := runFlowctl(t, "", "components", s.Name)
		if code != 0 {
			t.Fatalf("components %s: exit %d", s.Name, code)
		}
		if !strings.Contains(out, string(s.Role)+" \""+s.Name+"\"") {
			t.Errorf("components %s does not show %s", s.Name, s.ID())
		}
	}
	// "file" is both a source and a sink: both are shown, source first.
	_, out, _ := runFlowctl(t, "", "components", "file")
	src, snk := strings.Index(out, `source "file"`), strings.Index(out, `sink "file"`)
	if src < 0 || snk < 0 || src > snk {
		t.Errorf("components file: want the source then the sink, got:\n%s", out)
	}
}

func TestComponentsJSON(t *testing.T) {
	reg := components.NewRegistry()
	code, out, errOut := runFlowctl(t, "", "components", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var list []componentJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(list) != len(reg.All()) {
		t.Errorf("%d components listed, registry has %d", len(list), len(reg.All()))
	}
	for i, s := range reg.All() {
		c := list[i]
		if c.ID != s.ID() || c.Role != s.Role || c.Name != s.Name || c.Summary != s.Summary || c.Fields != nil {
			t.Errorf("entry %d = %+v, want %s without fields", i, c, s.ID())
		}
	}

	code, out, errOut = runFlowctl(t, "", "components", "processor.filter", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var detail []map[string]any
	if err := json.Unmarshal([]byte(out), &detail); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(detail) != 1 || detail[0]["id"] != "processor.filter" {
		t.Fatalf("want processor.filter alone, got %v", detail)
	}
	fields, _ := detail[0]["fields"].([]any)
	expr, _ := fields[0].(map[string]any)
	if expr["name"] != "expr" || expr["type"] != "cel" || expr["required"] != true || expr["cel_result"] != "bool" {
		t.Errorf("filter's expr field = %v", expr)
	}
	if ex, _ := detail[0]["examples"].([]any); len(ex) == 0 {
		t.Error("filter's examples are missing")
	}
}

func TestComponentsErrors(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"components", "fitler"}, 1, `no built-in component "fitler"; did you mean "filter"? — run "flowctl components" for the list`},
		{[]string{"components", "source.stdout"}, 1, `no built-in component "source.stdout"`},
		{[]string{"components", "nothing-like-it"}, 1, `no built-in component "nothing-like-it" — run`},
		{[]string{"components", "-o", "yaml"}, 2, `-o "yaml": use text or json`},
		{[]string{"components", "a", "b"}, 1, "accepts at most 1 arg"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runFlowctl(t, "", tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if out != "" {
				t.Errorf("stdout should be empty, got %q", out)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, tt.stderr)
			}
		})
	}
}

func TestFieldValueText(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"250ms", "250ms"},
		{"data.amount >= 5000", "'data.amount >= 5000'"},
		{`{"id": i}`, `'{"id": i}'`},
		{"it's", `"it's"`},
		{"", "''"},
		{3, "3"},
		{false, "false"},
		{[]string{"a", "b"}, `["a","b"]`},
		{map[string]any{"kind": "ping"}, `{"kind":"ping"}`},
	}
	for _, tt := range tests {
		if got := fieldValueText(tt.in); got != tt.want {
			t.Errorf("fieldValueText(%#v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
