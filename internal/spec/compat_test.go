package spec_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
)

// TestCompatGolden parses every case under testdata/compat — files written
// for the earlier flowctl, and the same constructs in the flat form — and
// compares the diagnostics and the pipeline they give with want.txt
// (refresh with -update). A case named flat-* must have errors: the flat
// form stays strict. Any other case is valid unless its name says invalid.
func TestCompatGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "compat", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no cases under testdata/compat")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			name := caseFile(t, dir)
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			pl, diags := spec.Parse(name, data, options(t))
			var b strings.Builder
			for _, d := range diags {
				b.WriteString(d.String())
				b.WriteByte('\n')
			}
			if pl != nil && !diags.HasErrors() {
				b.WriteString("--- pipeline\n")
				b.WriteString(dumpPipeline(pl))
			}
			got := b.String()
			wantPath := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(wantPath, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s\n--- got\n%s--- want\n%s", wantPath, got, want)
			}
			base := filepath.Base(dir)
			wantErrors := strings.HasPrefix(base, "flat-") || strings.Contains(base, "invalid")
			if diags.HasErrors() != wantErrors {
				t.Errorf("errors: %v, want %v:\n%s", diags.HasErrors(), wantErrors, got)
			}
			if !wantErrors && (pl == nil || len(pl.Components()) == 0) {
				t.Errorf("a valid case gave no usable pipeline")
			}
		})
	}
}

// dumpPipeline writes the parts of a pipeline the compatibility rules
// decide, one line per component, so a golden file shows what a file
// became.
func dumpPipeline(pl *spec.Pipeline) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name=%s apiVersion=%s envelope=%v legacy=%v driver=%s\n", pl.Name, pl.APIVersion, pl.Envelope, pl.Legacy, pl.Driver)
	for _, c := range pl.Components() {
		b.WriteString(dumpComponent(c))
	}
	if pl.DeadLetter != nil {
		b.WriteString(dumpComponent(pl.DeadLetter))
	}
	for _, r := range pl.Pipelines {
		fmt.Fprintf(&b, "pipelines: %s depends_on=%v\n", r.Name, r.DependsOn)
		if r.Component != nil {
			b.WriteString("  " + dumpComponent(r.Component))
		}
	}
	return b.String()
}

func dumpComponent(c *spec.Component) string {
	var f []string
	add := func(k string, v any) { f = append(f, fmt.Sprintf("%s=%v", k, v)) }
	add("runner", c.Runner)
	if c.Type != "" {
		add("type", c.Type)
	}
	if c.Image != "" {
		add("image", c.Image)
	}
	if len(c.Command) > 0 {
		add("command", c.Command)
	}
	if len(c.Inputs) > 0 {
		var ins []string
		for _, in := range c.Inputs {
			s := in.From
			if len(in.Types) > 0 {
				s += "{" + strings.Join(in.Types, ",") + "}"
			}
			ins = append(ins, s)
		}
		add("inputs", "["+strings.Join(ins, " ")+"]")
	}
	if len(c.InputEventTypes) > 0 {
		add("input_event_types", c.InputEventTypes)
	}
	if len(c.OutputEventTypes) > 0 {
		add("output_event_types", c.OutputEventTypes)
	}
	if c.HealthCheck != "" {
		add("health_check", c.HealthCheck)
	}
	if c.HealthPort != 0 {
		add("health_port", c.HealthPort)
	}
	add("restart_policy", c.RestartPolicy)
	if len(c.DependsOn) > 0 {
		add("depends_on", c.DependsOn)
	}
	if len(c.Env) > 0 {
		keys := make([]string, 0, len(c.Env))
		for k := range c.Env {
			keys = append(keys, k+"="+c.Env[k])
		}
		sort.Strings(keys)
		add("env", keys)
	}
	for i, p := range c.Ports {
		add(fmt.Sprintf("ports[%d]", i), fmt.Sprintf("%s:%d:%d", p.Name, p.ContainerPort, p.HostPort))
	}
	for i, v := range c.Volumes {
		add(fmt.Sprintf("volumes[%d]", i), fmt.Sprintf("%+v", v))
	}
	for i, s := range c.Secrets {
		add(fmt.Sprintf("secrets[%d]", i), fmt.Sprintf("host_path=%s container_path=%s", s.HostPath, s.ContainerPath))
	}
	if c.Replicas != 0 {
		add("replicas", c.Replicas)
	}
	return fmt.Sprintf("%s %s: %s\n", c.Role, c.Name, strings.Join(f, " "))
}

// TestSchemaCompat: the schema takes what the loader reads from files of
// the earlier format (aliases, apiVersion v1, driver dag, pipelines entries
// with component fields, no inputs, no sink) and still rejects those
// constructs in the flat form. Fields the loader ignores with a warning
// are not part of the format, and the schema flags them.
func TestSchemaCompat(t *testing.T) {
	sch := schemaCompile(t, components.NewRegistry(), "")
	for _, tc := range []struct {
		dir  string
		want string // "" accepts; else a piece of the validator's message
	}{
		{"apiversion-v1", ""},
		{"camel-aliases", ""},
		{"chain-file-order", ""},
		{"chain-two-sources", ""},
		{"driver-dag", ""},
		{"legacy-no-sink", ""},
		{"no-sink", ""},
		{"pipelines-entries", ""},
		{"ignored-fields", "'health_endpoint'"},
		{"driver-unknown-invalid", "at '/spec/driver'"},
		{"flat-strict", "at '/driver'"},
		{"flat-no-inputs", "missing property 'inputs'"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", "compat", tc.dir)
			data, err := os.ReadFile(filepath.Join(dir, caseFile(t, dir)))
			if err != nil {
				t.Fatal(err)
			}
			err = sch.Validate(schemaInstance(t, tc.dir, data))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("the schema rejects a file flowctl reads:\n%v", err)
			case tc.want != "" && err == nil:
				t.Errorf("the schema accepts it")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("rejected, but not for %q:\n%v", tc.want, err)
			}
		})
	}
	// The camelCase spellings, one by one, in the flat form.
	for _, alias := range []string{"inputEventTypes: [a]", "healthPort: 8080", "restartPolicy: always", "volumes: [{name: v, hostPath: /x}]"} {
		doc := "name: p\nsources:\n  - name: s\n    image: s:1\n    " + alias + "\n"
		if err := sch.Validate(schemaInstance(t, alias, []byte(doc))); err == nil {
			t.Errorf("the schema accepts %q in the flat form", alias)
		}
	}
}
