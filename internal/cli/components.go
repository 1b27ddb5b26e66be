package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/flow"
)

func init() { register("components", newComponentsCmd) }

func newComponentsCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "components [NAME]",
		Short: "List the built-in components, or show one's config fields",
		Long: `Without NAME, lists the built-in sources, processors and sinks with a one-line summary.
With NAME (file, or source.file to pick one role), prints the component's config fields —
type, default, whether required, what it does — and example configs.`,
		Example: `  flowctl components
  flowctl components filter
  flowctl components sink.file -o json
  flowctl components pull stellar-live-source@v1.0.0
  flowctl components ls --installed`,
		Args: cobra.MaximumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, s := range components.NewRegistry().All() {
				names = append(names, s.ID())
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				fmt.Fprintf(g.stderr, "flowctl components: -o %q: use text or json\n", output)
				return &exitError{code: 2}
			}
			reg := components.NewRegistry()
			specs := reg.All()
			if len(args) == 1 {
				specs = findComponents(reg, args[0])
				if len(specs) == 0 {
					fmt.Fprintf(g.stderr, "flowctl components: no built-in component %q%s — run \"flowctl components\" for the list\n",
						args[0], suggestComponent(reg, args[0]))
					return &exitError{code: 1}
				}
			}
			if output == "json" {
				return writeComponentsJSON(g.stdout, specs, len(args) == 1)
			}
			if len(args) == 1 {
				for i, s := range specs {
					if i > 0 {
						fmt.Fprintln(g.stdout)
					}
					writeComponentText(g.stdout, s)
				}
				return nil
			}
			writeComponentList(g.stdout, specs)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.AddCommand(newComponentsPullCmd(g), newComponentsLsCmd(g))
	return cmd
}

// findComponents resolves NAME: "source.file" names one spec, "file" every
// role's built-in of that name.
// The result follows the data: sources, then processors, then sinks.
func findComponents(reg *flow.Registry, name string) []*flow.ComponentSpec {
	var out []*flow.ComponentSpec
	for _, rt := range componentRoles {
		for _, s := range reg.All() {
			if s.Role == rt.role && (s.ID() == name || s.Name == name) {
				out = append(out, s)
			}
		}
	}
	return out
}

// suggestComponent returns `; did you mean "x"?` for the closest id or
// name, or "" when nothing is close.
func suggestComponent(reg *flow.Registry, name string) string {
	best, bestD := "", 3 // more than two edits is not a typo
	for _, s := range reg.All() {
		for _, c := range []string{s.Name, s.ID()} {
			if d := componentNameDistance(strings.ToLower(name), c); d < bestD {
				best, bestD = c, d
			}
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func componentNameDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

var componentRoles = []struct {
	role  flow.Role
	title string
}{
	{flow.RoleSource, "Sources"},
	{flow.RoleProcessor, "Processors"},
	{flow.RoleSink, "Sinks"},
}

// writeComponentList prints the built-ins grouped by role, one line each.
func writeComponentList(w io.Writer, specs []*flow.ComponentSpec) {
	for i, rt := range componentRoles {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s:\n", rt.title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		n := 0
		for _, s := range specs {
			if s.Role == rt.role {
				fmt.Fprintf(tw, "  %s\t%s\n", s.Name, componentSummaryLine(s.Summary))
				n++
			}
		}
		if n == 0 {
			fmt.Fprintln(tw, "  (none)")
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nRun \"flowctl components NAME\" for a component's config fields.")
}

// componentSummaryLine keeps the listing to one line per component.
func componentSummaryLine(s string) string {
	s = strings.TrimSpace(strings.SplitN(s, "\n", 2)[0])
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	return s
}

// writeComponentText prints one built-in: summary, fields (nested ones as
// dotted paths) and examples.
func writeComponentText(w io.Writer, s *flow.ComponentSpec) {
	fmt.Fprintf(w, "%s %q (type: %s)\n", s.Role, s.Name, s.Name)
	if s.Summary != "" {
		writeWrappedText(w, "  ", s.Summary)
	}
	if s.Delivery != "" {
		fmt.Fprintln(w, "\nAfter a crash:")
		writeWrappedText(w, "  ", s.Delivery)
	}
	fmt.Fprintln(w, "\nConfig fields:")
	if len(s.Fields) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	writeComponentFields(w, "", s.Fields)
	if len(s.Examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for i, ex := range s.Examples {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "  - name: my-%s\n    type: %s\n    config:\n", s.Name, s.Name)
			for _, line := range strings.Split(strings.TrimRight(ex, "\n"), "\n") {
				fmt.Fprintf(w, "      %s\n", line)
			}
		}
	}
}

func writeComponentFields(w io.Writer, prefix string, fields []flow.Field) {
	for _, f := range fields {
		path := prefix + f.Name
		var facts []string
		facts = append(facts, fieldTypeName(f))
		if f.Required {
			facts = append(facts, "required")
		}
		if f.Default != nil {
			facts = append(facts, "default "+fieldValueText(f.Default))
		}
		fmt.Fprintf(w, "  %s (%s)\n", path, strings.Join(facts, ", "))
		desc := f.Description
		if f.Type == flow.TypeCEL && f.CELResult != "" {
			desc = strings.TrimSpace(desc + " The expression returns " + f.CELResult + ".")
		}
		if desc != "" {
			writeWrappedText(w, "      ", desc)
		}
		if len(f.Enum) > 0 {
			fmt.Fprintf(w, "      one of: %s\n", strings.Join(f.Enum, ", "))
		}
		if f.Example != nil {
			fmt.Fprintf(w, "      example: %s\n", fieldValueText(f.Example))
		}
		switch {
		case f.Type == flow.TypeObject && len(f.Fields) > 0:
			writeComponentFields(w, path+".", f.Fields)
		case f.Type == flow.TypeArray && f.Items != nil && len(f.Items.Fields) > 0:
			writeComponentFields(w, path+"[].", f.Items.Fields)
		case f.Type == flow.TypeMap && f.Items != nil && len(f.Items.Fields) > 0:
			writeComponentFields(w, path+".*.", f.Items.Fields)
		}
	}
}

// fieldTypeName is a field's type as a reader says it: "list of object",
// "map of cel".
func fieldTypeName(f flow.Field) string {
	switch f.Type {
	case flow.TypeStrings:
		return "list of strings"
	case flow.TypeArray:
		if f.Items != nil {
			return "list of " + fieldTypeName(*f.Items)
		}
		return "list"
	case flow.TypeMap:
		if f.Items != nil {
			return "map of " + fieldTypeName(*f.Items)
		}
		return "map"
	case "":
		return string(flow.TypeAny)
	}
	return string(f.Type)
}

// fieldValueText prints a default or example as it would be written in YAML
// flow style (JSON is valid YAML).
func fieldValueText(v any) string {
	if d, ok := v.(time.Duration); ok {
		return d.String()
	}
	if s, ok := v.(string); ok {
		switch {
		case s != "" && !strings.ContainsAny(s, ":#{}[],&*!|>'\"%@`\n") && strings.TrimSpace(s) == s:
			return s
		case !strings.ContainsAny(s, "'\n"):
			// CEL examples hold double quotes; single quotes keep them
			// readable and are still valid YAML.
			return "'" + s + "'"
		}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// writeWrappedText writes text wrapped at 80 columns with indent before each
// line.
func writeWrappedText(w io.Writer, indent, text string) {
	const width = 80
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		fmt.Fprintln(w, line)
	}
}

// componentJSON is a built-in as `flowctl components -o json` prints it.
type componentJSON struct {
	ID       string      `json:"id"`
	Role     flow.Role   `json:"role"`
	Name     string      `json:"name"`
	Summary  string      `json:"summary"`
	Delivery string      `json:"delivery,omitempty"`
	Fields   []fieldJSON `json:"fields,omitempty"`
	Examples []string    `json:"examples,omitempty"`
}

type fieldJSON struct {
	Name        string         `json:"name,omitempty"`
	Type        flow.FieldType `json:"type"`
	Description string         `json:"description,omitempty"`
	Required    bool           `json:"required"`
	Default     any            `json:"default,omitempty"`
	Enum        []string       `json:"enum,omitempty"`
	Example     any            `json:"example,omitempty"`
	CELResult   string         `json:"cel_result,omitempty"`
	Fields      []fieldJSON    `json:"fields,omitempty"`
	Items       *fieldJSON     `json:"items,omitempty"`
}

func toFieldJSON(f flow.Field) fieldJSON {
	out := fieldJSON{
		Name: f.Name, Type: f.Type, Description: f.Description, Required: f.Required,
		Default: fieldJSONValue(f.Default), Enum: f.Enum, Example: fieldJSONValue(f.Example), CELResult: f.CELResult,
	}
	for _, sub := range f.Fields {
		out.Fields = append(out.Fields, toFieldJSON(sub))
	}
	if f.Items != nil {
		items := toFieldJSON(*f.Items)
		out.Items = &items
	}
	return out
}

func fieldJSONValue(v any) any {
	if d, ok := v.(time.Duration); ok {
		return d.String()
	}
	return v
}

// writeComponentsJSON prints the list (id, role, name, summary) or, for a
// named component, everything about it.
func writeComponentsJSON(w io.Writer, specs []*flow.ComponentSpec, detail bool) error {
	out := make([]componentJSON, 0, len(specs))
	for _, s := range specs {
		c := componentJSON{ID: s.ID(), Role: s.Role, Name: s.Name, Summary: s.Summary}
		if detail {
			for _, f := range s.Fields {
				c.Fields = append(c.Fields, toFieldJSON(f))
			}
			c.Examples = s.Examples
			c.Delivery = s.Delivery
		}
		out = append(out, c)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write components as JSON: %w", err)
	}
	return nil
}
