package spec_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// The package's own tests may define -update too (they share the test
// binary), so the flag is defined only when missing and read by name.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

func schemaUpdating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// schemaURL is where the tests register the generated schema with the
// compiler; it is never fetched.
const schemaURL = "mem:///pipeline.schema.json"

// compileSchema compiles Schema(reg) with a real JSON Schema validator; it
// fails the test when the output is not a valid draft 2020-12 schema.
func schemaCompile(t *testing.T, reg *flow.Registry, pointer string) *jsonschema.Schema {
	t.Helper()
	raw, err := spec.Schema(reg)
	if err != nil {
		t.Fatalf("Schema: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(schemaURL, doc); err != nil {
		t.Fatalf("AddResource: %v", err)
	}
	sch, err := c.Compile(schemaURL + pointer)
	if err != nil {
		t.Fatalf("compile the schema: %v", err)
	}
	return sch
}

// instance decodes a YAML (or JSON) pipeline file into the plain values a
// JSON validator sees, after the ${VAR:-default} substitution flowctl does
// before parsing, with schemaEnv as the environment (other variables
// without a default become "x").
func schemaInstance(t *testing.T, name string, data []byte) any {
	t.Helper()
	data = schemaSubstitute(data)
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: not YAML: %v", name, err)
	}
	j, err := json.Marshal(schemaPlain(v))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return inst
}

// schemaEnv is the environment of the valid test files (the same values
// the golden tests give them).
var schemaEnv = map[string]string{
	"OUT_DIR":   "/var/out",
	"BATCH":     "64",
	"LEVEL":     "info",
	"EMPTY_VAR": "",
}

var schemaVarRE = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

func schemaSubstitute(data []byte) []byte {
	return schemaVarRE.ReplaceAllFunc(data, func(m []byte) []byte {
		if string(m) == "$${" {
			return []byte("${")
		}
		sub := schemaVarRE.FindSubmatch(m)
		if v, ok := schemaEnv[string(sub[1])]; ok {
			return []byte(v)
		}
		if sub[2] != nil {
			return sub[3]
		}
		return []byte("x")
	})
}

// plain turns YAML's map[any]any into JSON-able maps.
func schemaPlain(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = schemaPlain(x)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = schemaPlain(x)
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = schemaPlain(x)
		}
	}
	return v
}

// TestSchemaGolden pins `flowctl schema`'s output for the built-in
// registry; run with -update after changing a spec on purpose.
func TestSchemaGolden(t *testing.T) {
	reg := components.NewRegistry()
	got, err := spec.Schema(reg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := spec.Schema(reg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, again) {
		t.Fatal("two calls of Schema gave different bytes")
	}
	path := filepath.Join("testdata", "schema", "pipeline.schema.json")
	if schemaUpdating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date: run go test ./internal/spec -run TestSchemaGolden -update and review the diff", path)
	}
}

// TestSchemaAcceptsValidFiles: every example and every valid test file
// passes the schema.
func TestSchemaAcceptsValidFiles(t *testing.T) {
	sch := schemaCompile(t, components.NewRegistry(), "")
	var files []string
	for _, pattern := range []string{
		"../../examples/*.yaml", "../../examples/*/*.yaml", "../../examples/*.json",
		"testdata/valid/*.yaml", "testdata/valid/*.yml", "testdata/valid/*.json",
		"testdata/valid/*/*.yaml", "testdata/valid/*/*.json",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no example or valid test file found")
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.yaml") {
			continue // a pipeline test (flowctl test), not a pipeline
		}
		if filepath.Base(f) == "sandbox.yaml" {
			continue // a sandbox file (flowctl sandbox), not a pipeline
		}
		t.Run(strings.TrimPrefix(f, "../../"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(schemaInstance(t, f, data)); err != nil {
				t.Errorf("the schema rejects a valid file:\n%v", err)
			}
		})
	}
}

// TestSchemaRejects: documents a schema can tell are wrong. Each case
// names a piece of the validator's message, so a document rejected for an
// unrelated reason does not pass.
func TestSchemaRejects(t *testing.T) {
	sch := schemaCompile(t, components.NewRegistry(), "")
	const head = "name: p\nsources:\n  - name: s\n    type: generate\n    config: {count: 3}\n"
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"unknown top-level field", head + "sinkz: []\n", "additional properties 'sinkz' not allowed"},
		{"tests is not a list", head + "tests: {name: a}\n", "at '/tests': got object, want null or array"},
		{"unknown component field", "name: p\nsources:\n  - name: s\n    type: generate\n    bufer: 3\n", "additional properties 'bufer' not allowed"},
		{"buffer is a string", "name: p\nsources:\n  - name: s\n    type: generate\n    buffer: lots\n", "at '/sources/0/buffer': got string, want integer"},
		{"buffer below one", "name: p\nsources:\n  - name: s\n    type: generate\n    buffer: 0\n", "at '/sources/0/buffer': minimum"},
		{"parallelism is a list", head + "processors:\n  - name: f\n    type: filter\n    inputs: [s]\n    parallelism: [2]\n    config: {expr: 'true'}\n", "at '/processors/0/parallelism': got array, want integer"},
		{"bad on_error policy", head + "sinks:\n  - name: o\n    type: stdout\n    inputs: [s]\n    on_error: explode\n", "at '/sinks/0/on_error'"},
		{"bad on_error then", head + "sinks:\n  - name: o\n    type: stdout\n    inputs: [s]\n    on_error: {policy: retry, then: retry}\n", "at '/sinks/0/on_error/then'"},
		{"unknown on_error field", head + "sinks:\n  - name: o\n    type: stdout\n    inputs: [s]\n    on_error: {policy: retry, attempts: 3}\n", "additional properties 'attempts' not allowed"},
		{"bad backoff duration", head + "sinks:\n  - name: o\n    type: stdout\n    inputs: [s]\n    on_error: {policy: retry, backoff: soon}\n", "at '/sinks/0/on_error/backoff'"},
		{"bad protocol", "name: p\nsources:\n  - name: s\n    command: [./src]\n    protocol: carrier-pigeon\n", "at '/sources/0/protocol'"},
		{"bad restart policy", "name: p\nsources:\n  - name: s\n    image: src:1\n    restart_policy: sometimes\n", "at '/sources/0/restart_policy'"},
		{"unknown field in a filter's config", head + "processors:\n  - name: f\n    type: filter\n    inputs: [s]\n    config: {expr: 'true', exp: 'false'}\n", "at '/processors/0/config': additional properties 'exp' not allowed"},
		{"missing required config field", head + "processors:\n  - name: f\n    type: filter\n    inputs: [s]\n    config: {}\n", "at '/processors/0/config': missing property 'expr'"},
		{"missing config of a built-in that needs one", head + "processors:\n  - name: f\n    type: filter\n    inputs: [s]\n", "at '/processors/0': missing property 'config'"},
		{"config field of the wrong type", "name: p\nsources:\n  - name: s\n    type: generate\n    config: {count: many}\n", "at '/sources/0/config/count'"},
		{"unknown built-in", "name: p\nsources:\n  - name: s\n    type: fil\n    config: {path: x}\n", "at '/sources/0/type'"},
		{"sink built-in used as a source", "name: p\nsources:\n  - name: s\n    type: stdout\n", "at '/sources/0/type'"},
		{"component without a name", "name: p\nsources:\n  - type: generate\n", "missing property 'name'"},
		{"neither type, command nor image", "name: p\nsources:\n  - name: s\n    config: {}\n", "missing property 'type'"},
		{"source with inputs", head + "  - name: t\n    type: generate\n    inputs: [s]\n", "at '/sources/1/inputs'"},
		{"processor without inputs", head + "processors:\n  - name: f\n    type: filter\n    config: {expr: 'true'}\n", "at '/processors/0': missing property 'inputs'"},
		{"input entry without from", head + "sinks:\n  - name: o\n    type: stdout\n    inputs: [{types: [a]}]\n", "missing property 'from'"},
		{"dead letter with inputs", head + "dead_letter:\n  type: stdout\n  inputs: [s]\n", "at '/dead_letter/inputs'"},
		{"envelope with a wrong apiVersion", "apiVersion: flowctl/v2\nkind: Pipeline\nmetadata: {name: p}\nspec: {sources: []}\n", "at '/apiVersion'"},
		{"envelope without metadata name", "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {namespace: x}\nspec: {sources: []}\n", "at '/metadata': missing property 'name'"},
		{"envelope port not a number", "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  sources:\n    - id: s\n      image: src:1\n      ports: [{containerPort: http}]\n", "at '/spec/sources/0/ports/0/containerPort'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sch.Validate(schemaInstance(t, tt.name, []byte(tt.doc)))
			if err == nil {
				t.Fatalf("the schema accepts:\n%s", tt.doc)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("rejected, but not for %q:\n%v", tt.want, err)
			}
		})
	}
}

// schemaDetectable are the cases of testdata/invalid whose mistakes are of
// shape, so the schema must reject them too, each with a piece of the
// validator's message that shows why. The others (args-quote, cycle,
// duplicate-name, syntax, unknown-input, unset-var: quoting, the graph,
// uniqueness, variables; missing-inputs-v1: a file of the earlier format
// is chained when no component has inputs, an error only when some do)
// need flowctl's own validation.
var schemaDetectable = map[string]string{
	"bad-enum":              "at '/sources/0/protocol': value must be one of",
	"bad-enum-v1":           "at '/spec/driver': value must be one of",
	"builtin-config":        "at '/sinks/0/config/format': value must be one of 'data', 'envelope'",
	"builtin-config-json":   "at '/sources/0/config/follow': got string, want boolean",
	"builtin-config-v1":     "at '/spec/sources/0/config': missing property 'path'",
	"dead-letter":           "at '/sinks/0/on_error/policy': value must be 'retry'",
	"dead-letter-v1":        "at '/spec/dead_letter/inputs': false schema",
	"empty":                 "at '': got null, want object",
	"legacy-builtin-config": "at '/source/params/count': got string, want integer",
	"legacy-mixed":          "additional properties 'sinks' not allowed",
	"legacy-no-source":      "at '': missing property 'source'",
	"legacy-unknown-field":  "at '/source': additional properties 'name' not allowed",
	"legacy-unknown-plugin": "at '/processors/0/plugin': value must be one of",
	"envelope":              "at '/apiVersion': value must be one of 'flowctl/v1', 'v1'",
	"missing-inputs":        "at '/processors/1': missing property 'inputs'",
	"missing-inputs-json":   "at '/sinks/0': missing property 'inputs'",
	"name-and-id":           "at '/sources/0': 'oneOf' failed, subschemas 0, 1 matched",
	"name-and-id-v1":        "at '/metadata': missing property 'name'",
	"no-runner":             "at '/sinks/0': missing property 'command'",
	"no-runner-v1":          "at '/spec/sources/0': missing property 'image'",
	"not-a-mapping":         "at '': got array, want object",
	"runner-conflict":       "at '/processors/0': 'not' failed",
	"runner-conflict-json":  "at '/sources/0': 'not' failed",
	"source-with-inputs":    "at '/sources/1/inputs': false schema",
	"source-with-inputs-v1": "at '/spec/sources/1/inputs': maxItems: got 1, want 0",
	"unknown-builtin":       "at '/sinks/0/type': value must be one of",
	"unknown-builtin-v1":    "at '/spec/sources/0/type': value must be one of",
	"unknown-field":         "additional properties 'descripton' not allowed",
	"unknown-field-json":    "additional properties 'bufer' not allowed",
	"unknown-field-v1":      "additional properties 'labls' not allowed",
	"wrong-type":            "at '/processors/0/parallelism': got number, want integer",
	"wrong-type-v1":         "at '/spec/sources/0/ports/0/containerPort': got string, want integer",
}

func TestSchemaRejectsInvalidFiles(t *testing.T) {
	sch := schemaCompile(t, components.NewRegistry(), "")
	for name, want := range schemaDetectable {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "invalid", name)
			files, err := filepath.Glob(filepath.Join(dir, "pipeline.*"))
			if err != nil || len(files) != 1 {
				t.Fatalf("%s: want one pipeline file, found %v (%v)", dir, files, err)
			}
			data, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			err = sch.Validate(schemaInstance(t, name, data))
			if err == nil {
				t.Fatalf("the schema accepts %s", name)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("rejected, but not for %q:\n%v", want, err)
			}
		})
	}
}

// TestSchemaSpecExamples: every built-in's own config examples fit the
// config schema generated from its fields, so the specs and the schema
// agree.
func TestSchemaSpecExamples(t *testing.T) {
	reg := components.NewRegistry()
	for _, s := range reg.All() {
		if len(s.Examples) == 0 {
			t.Errorf("%s has no config example", s.ID())
			continue
		}
		sch := schemaCompile(t, reg, "#/$defs/config."+s.ID())
		for i, ex := range s.Examples {
			if err := sch.Validate(schemaInstance(t, s.ID(), []byte(ex))); err != nil {
				t.Errorf("%s example %d does not fit its schema:\n%s\n%v", s.ID(), i+1, ex, err)
			}
		}
	}
}

// TestSchemaFieldTypes maps every field type of a made-up built-in and
// checks configs against it.
func TestSchemaFieldTypes(t *testing.T) {
	reg := flow.NewRegistry()
	reg.MustRegister(&flow.ComponentSpec{
		Role: flow.RoleProcessor, Name: "every", Summary: "Has a field of every type.",
		Fields: []flow.Field{
			{Name: "s", Type: flow.TypeString, Required: true, Enum: []string{"a", "b"}},
			{Name: "i", Type: flow.TypeInt, Default: 3},
			{Name: "n", Type: flow.TypeNumber},
			{Name: "b", Type: flow.TypeBool},
			{Name: "d", Type: flow.TypeDuration, Default: "1s"},
			{Name: "c", Type: flow.TypeCEL, CELResult: "bool", Description: "A condition."},
			{Name: "l", Type: flow.TypeStrings, Enum: []string{"x", "y"}},
			{Name: "o", Type: flow.TypeObject, Fields: []flow.Field{{Name: "k", Type: flow.TypeInt, Required: true}}},
			{Name: "free", Type: flow.TypeObject},
			{Name: "a", Type: flow.TypeArray, Items: &flow.Field{Type: flow.TypeObject, Fields: []flow.Field{{Name: "when", Type: flow.TypeCEL}}}},
			{Name: "m", Type: flow.TypeMap, Items: &flow.Field{Type: flow.TypeCEL}},
			{Name: "any", Type: flow.TypeAny},
		},
	})
	sch := schemaCompile(t, reg, "#/$defs/config.processor.every")
	tests := []struct {
		name string
		cfg  string
		ok   bool
	}{
		{"minimal", "s: a", true},
		{"everything", "s: b\ni: 2\nn: 1.5\nb: true\nd: 1m30s\nc: 'x > 1'\nl: [x, y]\no: {k: 1}\nfree: {z: 1}\na: [{when: 'true'}]\nm: {f: 'data.x'}\nany: [1, a]", true},
		{"missing required", "i: 2", false},
		{"not in enum", "s: c", false},
		{"int given a fraction", "s: a\ni: 1.5", false},
		{"number given a string", "s: a\nn: one", false},
		{"bool given a string", "s: a\nb: 'yes'", false},
		{"duration without unit", "s: a\nd: '10'", false},
		{"cel given a number", "s: a\nc: 3", false},
		{"strings item not in enum", "s: a\nl: [z]", false},
		{"nested unknown field", "s: a\no: {k: 1, j: 2}", false},
		{"nested missing required", "s: a\no: {}", false},
		{"array item unknown field", "s: a\na: [{then: x}]", false},
		{"map value of the wrong type", "s: a\nm: {f: 1}", false},
		{"unknown field", "s: a\nzz: 1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sch.Validate(schemaInstance(t, tt.name, []byte(tt.cfg)))
			if (err == nil) != tt.ok {
				t.Errorf("valid = %v, want %v (%v)", err == nil, tt.ok, err)
			}
		})
	}
}
