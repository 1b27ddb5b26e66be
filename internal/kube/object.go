package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Meta names an object: what a document is, or what to get or delete.
type Meta struct {
	APIVersion string
	Kind       string
	// Namespace is "" for a cluster-scoped object, or for a document that
	// leaves it to the client's namespace.
	Namespace string
	Name      string
}

// String is "Kind name" or "Kind namespace/name".
func (m Meta) String() string {
	kind := m.Kind
	if kind == "" {
		kind = "object"
	}
	switch {
	case m.Name == "":
		return kind
	case m.Namespace == "":
		return kind + " " + m.Name
	default:
		return kind + " " + m.Namespace + "/" + m.Name
	}
}

// ReadMeta reads apiVersion, kind, metadata.name and metadata.namespace of
// one YAML (or JSON) document; apiVersion, kind and name are required.
func ReadMeta(doc []byte) (Meta, error) {
	var d struct {
		APIVersion any `yaml:"apiVersion"`
		Kind       any `yaml:"kind"`
		Metadata   struct {
			Name         any `yaml:"name"`
			Namespace    any `yaml:"namespace"`
			GenerateName any `yaml:"generateName"`
		} `yaml:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &d); err != nil {
		return Meta{}, fmt.Errorf("not a Kubernetes object: %v", err)
	}
	str := func(field string, v any) (string, error) {
		if v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s is not a string: %v", field, v)
		}
		return s, nil
	}
	var m Meta
	var err error
	fields := []struct {
		name string
		v    any
		to   *string
	}{
		{"apiVersion", d.APIVersion, &m.APIVersion},
		{"kind", d.Kind, &m.Kind},
		{"metadata.name", d.Metadata.Name, &m.Name},
		{"metadata.namespace", d.Metadata.Namespace, &m.Namespace},
	}
	for _, f := range fields {
		if *f.to, err = str(f.name, f.v); err != nil {
			return m, fmt.Errorf("%s: %w", m, err)
		}
	}
	var missing []string
	if m.APIVersion == "" {
		missing = append(missing, "apiVersion")
	}
	if m.Kind == "" {
		missing = append(missing, "kind")
	}
	if m.Name == "" {
		if d.Metadata.GenerateName != nil {
			return m, fmt.Errorf("%s: metadata.generateName cannot be applied: give metadata.name", m)
		}
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return m, fmt.Errorf("%s: no %s", m, strings.Join(missing, ", no "))
	}
	return m, nil
}

// Object is a Kubernetes object as the server returned it: Content is its
// JSON decoded into maps, slices, strings, bools, int64 and float64.
type Object struct {
	Meta
	Content map[string]any
}

// Field returns the value at a path of map keys (nil when absent), e.g.
// o.Field("spec", "replicas").
func (o *Object) Field(path ...string) any {
	var v any = o.Content
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// ResourceVersion is metadata.resourceVersion.
func (o *Object) ResourceVersion() string {
	s, _ := o.Field("metadata", "resourceVersion").(string)
	return s
}

// YAML renders the object as YAML, keys sorted.
func (o *Object) YAML() ([]byte, error) {
	return toYAML(o.Content)
}

func toYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// decodeObject decodes an object of the server's.
func decodeObject(data []byte, what string) (*Object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s: the server's answer: %w", what, err)
	}
	m, ok := numbers(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: the server's answer is not an object", what)
	}
	o := &Object{Content: m}
	o.APIVersion, _ = m["apiVersion"].(string)
	o.Kind, _ = m["kind"].(string)
	o.Name, _ = o.Field("metadata", "name").(string)
	o.Namespace, _ = o.Field("metadata", "namespace").(string)
	return o, nil
}

// numbers turns json.Numbers into int64 (or float64 when not integral),
// so YAML shows 2, not "2" or 2.0.
func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	}
	return v
}

// SplitDocuments splits a multi-document YAML stream at its "---" lines
// into documents, each the original text (so a server's or a parser's line
// numbers stay meaningful within it). Documents holding nothing but
// comments or blank lines are left out; each other document must parse as
// YAML and be a mapping.
func SplitDocuments(data []byte) ([][]byte, error) {
	var docs [][]byte
	var cur bytes.Buffer
	start, line := 1, 0 // the line cur starts at, the line read
	flush := func() error {
		doc := bytes.Clone(cur.Bytes())
		cur.Reset()
		var n yaml.Node
		if err := yaml.Unmarshal(doc, &n); err != nil {
			return fmt.Errorf("YAML document %d (line %d): %v", len(docs)+1, start, err)
		}
		if n.Kind == 0 || len(n.Content) == 0 {
			return nil // empty or comments only
		}
		body := n.Content[0]
		if body.Kind == yaml.ScalarNode && body.Tag == "!!null" {
			return nil
		}
		if body.Kind != yaml.MappingNode {
			return fmt.Errorf("YAML document %d (line %d): not a mapping (a Kubernetes object)", len(docs)+1, start)
		}
		docs = append(docs, doc)
		return nil
	}
	rest := data
	for len(rest) > 0 {
		var l []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i+1], rest[i+1:]
		} else {
			l, rest = rest, nil
		}
		line++
		t := bytes.TrimRight(l, "\r\n")
		switch {
		case bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) || bytes.HasPrefix(t, []byte("---\t")):
			if err := flush(); err != nil {
				return nil, err
			}
			start = line
			// "--- {a: 1}" or "--- # comment": the rest of the line
			// belongs to the new document.
			if after := bytes.TrimSpace(t[3:]); len(after) > 0 {
				cur.Write(after)
				cur.WriteByte('\n')
			}
		case bytes.Equal(t, []byte("...")):
			// The end of a document: what follows, until "---", is not
			// part of it.
			if err := flush(); err != nil {
				return nil, err
			}
			start = line + 1
		default:
			if cur.Len() == 0 {
				start = line
			}
			cur.Write(l)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}
