package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
)

// pipelineEdit is a validated new content for a pipeline file, not yet
// written.
type pipelineEdit struct {
	path    string
	data    []byte
	mode    os.FileMode
	summary string
}

// write replaces the file in one step (a temporary file renamed over it),
// so a reader never sees half of it.
func (e *pipelineEdit) write() error {
	tmp, err := os.CreateTemp(filepath.Dir(e.path), "."+filepath.Base(e.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", e.path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(e.data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", e.path, err)
	}
	if err := tmp.Chmod(e.mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", e.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", e.path, err)
	}
	if err := os.Rename(tmp.Name(), e.path); err != nil {
		return fmt.Errorf("write %s: %w", e.path, err)
	}
	return nil
}

// planAddToPipeline reads o.addTo, adds the component (whose skeleton
// goes to compDir) and rewires it, and validates the result with the
// pipeline validator. Nothing is written.
func planAddToPipeline(o newComponentOpts, compDir string) (*pipelineEdit, error) {
	switch {
	case o.role == "source" && o.after != "":
		return nil, fmt.Errorf("--after is for processors and sinks: a source reads from nothing; give --to COMPONENT, the component that should read from it")
	case o.role == "source" && o.to == "":
		return nil, fmt.Errorf("--add-to with a source needs --to COMPONENT: the processor or sink that should read from it")
	case o.role != "source" && o.to != "":
		return nil, fmt.Errorf("--to is for sources; a %s takes --after COMPONENT, the component it reads from", o.role)
	case o.role != "source" && o.after == "":
		return nil, fmt.Errorf("--add-to with a %s needs --after COMPONENT: the component it reads from", o.role)
	}
	abs, err := filepath.Abs(o.addTo)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("--add-to: %w", err)
	}
	raw, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("--add-to: %w", err)
	}
	rel, err := filepath.Rel(filepath.Dir(abs), compDir)
	if err != nil {
		rel = compDir
	}
	out, summary, err := addComponentToYAML(raw, o, filepath.ToSlash(rel))
	if err != nil {
		return nil, fmt.Errorf("--add-to %s: %w", o.addTo, err)
	}
	_, diags := spec.Parse(abs, out, spec.Options{Registry: components.NewRegistry()})
	if diags.HasErrors() {
		var b strings.Builder
		fmt.Fprintf(&b, "--add-to %s: the file would not be valid with %q added, so nothing was written:", o.addTo, o.name)
		for _, d := range diags {
			b.WriteString("\n  " + d.String())
		}
		return nil, fmt.Errorf("%s", b.String())
	}
	return &pipelineEdit{path: abs, data: out, mode: st.Mode().Perm(), summary: summary}, nil
}

// addComponentToYAML edits a pipeline file through yaml.v3's node tree, so
// that comments and the order of everything else stay as they were. dir is
// the component's directory relative to the file's. It returns the new
// file and a one-line summary of what changed.
func addComponentToYAML(raw []byte, o newComponentOpts, dir string) ([]byte, string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, "", fmt.Errorf("read it as YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, "", fmt.Errorf("it is not a pipeline file (a YAML mapping with sources, processors and sinks)")
	}
	body := doc.Content[0]
	if s := mapValue(body, "spec"); s != nil && s.Kind == yaml.MappingNode {
		body = s // the flowctl/v1 envelope wraps the same fields
	}
	if mapValue(body, "source") != nil || mapValue(body, "sink") != nil {
		return nil, "", fmt.Errorf("it is in the earlier flowctl's legacy shape (source:, sink:); --add-to edits the flat form or the flowctl/v1 envelope: add the component by hand, as the README shows")
	}
	sections := []string{"sources", "processors", "sinks"}
	entries := map[string][]*yaml.Node{}
	for _, s := range sections {
		if seq := mapValue(body, s); seq != nil && seq.Kind == yaml.SequenceNode {
			entries[s] = seq.Content
		}
	}
	find := func(name string, in ...string) (string, *yaml.Node) {
		for _, s := range in {
			for _, e := range entries[s] {
				if componentEntryName(e) == name {
					return s, e
				}
			}
		}
		return "", nil
	}
	if s, _ := find(o.name, sections...); s != "" {
		return nil, "", fmt.Errorf("it already has a component named %q (in %s): choose another NAME", o.name, s)
	}
	names := func(in ...string) string {
		var out []string
		for _, s := range in {
			for _, e := range entries[s] {
				out = append(out, componentEntryName(e))
			}
		}
		if len(out) == 0 {
			return "none"
		}
		return strings.Join(out, ", ")
	}

	var summary string
	switch o.role {
	case "source":
		_, to := find(o.to, "processors", "sinks")
		if to == nil {
			return nil, "", fmt.Errorf("--to %q: no processor or sink of that name (there are: %s)", o.to, names("processors", "sinks"))
		}
		inputs := mapValue(to, "inputs")
		switch {
		case inputs == nil:
			to.Content = append(to.Content, scalarNode("inputs"), &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle, Content: []*yaml.Node{scalarNode(o.name)}})
		case inputs.Kind == yaml.SequenceNode:
			inputs.Content = append(inputs.Content, scalarNode(o.name))
		case inputs.Kind == yaml.ScalarNode:
			old := *inputs
			*inputs = yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle, Content: []*yaml.Node{&old, scalarNode(o.name)}}
		default:
			return nil, "", fmt.Errorf("--to %q: its inputs are neither a list nor a name", o.to)
		}
		summary = fmt.Sprintf("a new source; %s now reads from it too", o.to)
	default:
		if s, _ := find(o.after, "sinks"); s != "" {
			return nil, "", fmt.Errorf("--after %q is a sink, which has no output to read: name a source or processor (there are: %s)", o.after, names("sources", "processors"))
		}
		if _, e := find(o.after, "sources", "processors"); e == nil {
			return nil, "", fmt.Errorf("--after %q: no source or processor of that name (there are: %s)", o.after, names("sources", "processors"))
		}
		summary = fmt.Sprintf("reads from %s", o.after)
		if o.role == "processor" {
			var moved []string
			for _, s := range []string{"processors", "sinks"} {
				for _, e := range entries[s] {
					if renameInput(mapValue(e, "inputs"), o.after, o.name) {
						moved = append(moved, componentEntryName(e))
					}
				}
			}
			if len(moved) > 0 {
				summary += fmt.Sprintf("; %s now read(s) from %s instead of %s", strings.Join(moved, ", "), o.name, o.after)
			}
		}
	}

	// The new entry, parsed from the same snippet the README shows, keeps
	// its flow-style lists.
	var snippet yaml.Node
	if err := yaml.Unmarshal([]byte(componentSnippet(o, dir, o.after)), &snippet); err != nil {
		return nil, "", fmt.Errorf("new entry: %w (this is a bug in flowctl)", err)
	}
	entry := snippet.Content[0].Content[1].Content[0]
	section := o.role + "s"
	if seq := mapValue(body, section); seq != nil && seq.Kind == yaml.SequenceNode {
		seq.Content = append(seq.Content, entry)
	} else if seq != nil && !(seq.Kind == yaml.ScalarNode && (seq.Tag == "!!null" || seq.Value == "")) {
		return nil, "", fmt.Errorf("its %s is not a list", section)
	} else {
		list := &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{entry}}
		if seq != nil {
			*seq = *list
		} else {
			insertSection(body, section, list)
		}
	}

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, "", err
	}
	if err := enc.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), summary, nil
}

// insertSection adds key: value to the mapping m in pipeline order
// (sources, processors, sinks): before the first later section present,
// else at the end.
func insertSection(m *yaml.Node, key string, value *yaml.Node) {
	later := map[string][]string{"sources": {"processors", "sinks", "dead_letter"}, "processors": {"sinks", "dead_letter"}, "sinks": {"dead_letter"}}[key]
	at := len(m.Content)
	for i := 0; i+1 < len(m.Content); i += 2 {
		for _, l := range later {
			if m.Content[i].Value == l && i < at {
				at = i
			}
		}
	}
	m.Content = append(m.Content[:at], append([]*yaml.Node{scalarNode(key), value}, m.Content[at:]...)...)
}

// renameInput makes inputs read from to where they read from from: a name,
// a list of names, or {from, types} entries. It reports whether anything
// changed.
func renameInput(inputs *yaml.Node, from, to string) bool {
	if inputs == nil {
		return false
	}
	switch inputs.Kind {
	case yaml.ScalarNode:
		if inputs.Value == from {
			inputs.Value = to
			return true
		}
	case yaml.SequenceNode:
		changed := false
		for _, in := range inputs.Content {
			switch in.Kind {
			case yaml.ScalarNode:
				if in.Value == from {
					in.Value, changed = to, true
				}
			case yaml.MappingNode:
				if f := mapValue(in, "from"); f != nil && f.Value == from {
					f.Value, changed = to, true
				}
			}
		}
		return changed
	}
	return false
}

// componentEntryName is a component entry's name (or id, the earlier
// format's spelling of the same field).
func componentEntryName(e *yaml.Node) string {
	if v := mapValue(e, "name"); v != nil {
		return v.Value
	}
	if v := mapValue(e, "id"); v != nil {
		return v.Value
	}
	return ""
}

// mapValue is the value of key in the mapping m, nil if absent.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalarNode(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}
