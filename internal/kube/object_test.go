package kube

import (
	"os/exec"
	"strings"
	"testing"
)

func TestSplitDocuments(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		err  string
	}{
		{"one", "kind: A\n", []string{"kind: A\n"}, ""},
		{"empty", "", nil, ""},
		{"comments only", "# nothing\n---\n# here\n\n", nil, ""},
		{"leading separator and empties", "---\nkind: A\n---\n---\n# c\n---\nkind: B\nx: 1\n", []string{"kind: A\n", "kind: B\nx: 1\n"}, ""},
		{"no trailing newline", "kind: A\n---\nkind: B", []string{"kind: A\n", "kind: B"}, ""},
		{"CRLF", "kind: A\r\n---\r\nkind: B\r\n", []string{"kind: A\r\n", "kind: B\r\n"}, ""},
		{"separator with comment", "kind: A\n--- # second\nkind: B\n", []string{"kind: A\n", "# second\nkind: B\n"}, ""},
		{"document end marker", "kind: A\n...\n---\nkind: B\n", []string{"kind: A\n", "kind: B\n"}, ""},
		{"--- inside a block scalar is indented", "kind: A\ndata:\n  f: |\n    a\n    ---\n    b\n", []string{"kind: A\ndata:\n  f: |\n    a\n    ---\n    b\n"}, ""},
		{"null document", "kind: A\n---\nnull\n---\n~\n", []string{"kind: A\n"}, ""},
		{"not a mapping", "kind: A\n---\n- a\n- b\n", nil, "YAML document 2 (line 3): not a mapping"},
		{"invalid", "kind: A\n---\n\nkind: [\n", nil, "YAML document 2 (line 3): yaml: line 2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := SplitDocuments([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("err = %v, want prefix %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range docs {
				got = append(got, string(d))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestReadMeta(t *testing.T) {
	tests := []struct {
		in   string
		want Meta
		err  string
	}{
		{"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\n", Meta{"apps/v1", "Deployment", "prod", "web"}, ""},
		{`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`, Meta{"v1", "ConfigMap", "", "c"}, ""},
		{"kind: ConfigMap\n", Meta{}, "ConfigMap: no apiVersion, no metadata.name"},
		{"apiVersion: v1\nmetadata: {name: x}\n", Meta{}, "object x: no kind"},
		{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 5}\n", Meta{}, "ConfigMap: metadata.name is not a string: 5"},
		{"- a\n", Meta{}, "not a Kubernetes object: yaml: unmarshal errors"},
	}
	for _, tt := range tests {
		m, err := ReadMeta([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("ReadMeta(%q) err = %v, want prefix %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || m != tt.want {
			t.Errorf("ReadMeta(%q) = %+v, %v; want %+v", tt.in, m, err, tt.want)
		}
	}
	if s := (Meta{Kind: "Deployment", Namespace: "ns", Name: "web"}).String(); s != "Deployment ns/web" {
		t.Errorf("String() = %q", s)
	}
}

// The package is linked into flowctl: it must stay light, the standard
// library and go.yaml.in/yaml/v3 only.
func TestLightDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/flowctl/flowctl/internal/kube" && p != "go.yaml.in/yaml/v3" {
			t.Errorf("internal/kube depends on %s: only the standard library and go.yaml.in/yaml/v3 are allowed", p)
		}
	}
}
