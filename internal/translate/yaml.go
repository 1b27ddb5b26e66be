package translate

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A small builder for YAML documents whose mappings come out with sorted
// keys, so generated files are the same byte for byte on every run.

// mapping is a YAML mapping under construction; comments are head
// comments written above a key.
type mapping struct {
	values   map[string]*yaml.Node
	comments map[string]string
}

func newMapping() *mapping {
	return &mapping{values: map[string]*yaml.Node{}, comments: map[string]string{}}
}

func (m *mapping) set(key string, v *yaml.Node) { m.values[key] = v }

func (m *mapping) setComment(key, comment string) { m.comments[key] = comment }

func (m *mapping) len() int { return len(m.values) }

// has reports whether key is set.
func (m *mapping) has(key string) bool { _, ok := m.values[key]; return ok }

// node renders the mapping with its keys sorted.
func (m *mapping) node() *yaml.Node {
	keys := make([]string, 0, len(m.values))
	for k := range m.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, k := range keys {
		kn := str(k)
		kn.HeadComment = m.comments[k]
		n.Content = append(n.Content, kn, m.values[k])
	}
	return n
}

// str is a string scalar. The encoder quotes what YAML 1.2 would read as
// another type ("1", "true"); we also quote YAML 1.1's booleans ("no",
// "on", "y"), which docker-compose 1.29 (PyYAML) reads as true or false.
func str(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch strings.ToLower(s) {
	case "y", "yes", "n", "no", "on", "off", "true", "false":
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

func integer(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

// strs is a sequence of strings; flow style keeps commands on one line.
func strs(flow bool, ss ...string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if flow {
		n.Style = yaml.FlowStyle
	}
	for _, s := range ss {
		n.Content = append(n.Content, str(s))
	}
	return n
}

func seq(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
}

// stringMap is a mapping of strings with sorted keys.
func stringMap(m map[string]string) *yaml.Node {
	mm := newMapping()
	for k, v := range m {
		mm.set(k, str(v))
	}
	return mm.node()
}

// encode writes doc with a head comment above it.
func encode(head string, doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	root := &yaml.Node{Kind: yaml.DocumentNode, HeadComment: head, Content: []*yaml.Node{doc}}
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	return buf.Bytes(), nil
}
