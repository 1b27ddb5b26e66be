package components

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/flow"
)

// Helpers shared by the processor and generate tests (prefixed "proc" so
// they do not clash with the I/O components' test helpers).

// procSpec looks a built-in up in a fresh registry, as the engine does.
func procSpec(t testing.TB, role flow.Role, name string) *flow.ComponentSpec {
	t.Helper()
	s, err := NewRegistry().Lookup(role, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// procNew validates cfg and builds the processor through its spec.
func procNew(t testing.TB, name string, cfg flow.Config) flow.Processor {
	t.Helper()
	s := procSpec(t, flow.RoleProcessor, name)
	if err := s.Validate(cfg); err != nil {
		t.Fatalf("Validate(%v): %v", cfg, err)
	}
	c, err := s.New(flow.BuildContext{Name: name + "1", Pipeline: "test", Config: cfg})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p, ok := c.(flow.Processor)
	if !ok {
		t.Fatalf("%s built a %T, not a flow.Processor", name, c)
	}
	return p
}

// procEvent is an event as a source would emit it.
func procEvent(id, typ, data string) *flow.Event {
	return &flow.Event{
		ID: id, Source: "src", Type: typ, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		DataContentType: "application/json", Data: []byte(data),
		Metadata: map[string]string{"region": "eu"},
	}
}

// procErrs flattens a Validate error into "path: message — hint" lines,
// checking that each is a *flow.FieldError.
func procErrs(t testing.TB, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []string
	for _, e := range errs {
		var fe *flow.FieldError
		if !errors.As(e, &fe) {
			t.Errorf("%v is a %T, not a *flow.FieldError", e, e)
			continue
		}
		out = append(out, fe.Error())
	}
	return out
}

// procCheckValidate runs a table of configs through a spec's Validate.
func procCheckValidate(t *testing.T, role flow.Role, name string, tests []procValidateCase) {
	t.Helper()
	s := procSpec(t, role, name)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := procErrs(t, s.Validate(tt.cfg))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Validate errors\n got %q\nwant %q", got, tt.want)
			}
			// New must agree with Validate.
			_, err := s.New(flow.BuildContext{Name: "c", Config: tt.cfg})
			if (err == nil) != (len(tt.want) == 0) {
				t.Errorf("New error = %v, Validate errors = %q", err, got)
			}
		})
	}
}

type procValidateCase struct {
	name string
	cfg  flow.Config
	want []string // FieldError strings, in order; none for a valid config
}

func TestFilterValidate(t *testing.T) {
	procCheckValidate(t, flow.RoleProcessor, "filter", []procValidateCase{
		{"valid", flow.Config{"expr": "data.amount >= 5000"}, nil},
		{"valid dyn", flow.Config{"expr": "data.flag"}, nil},
		{"missing", flow.Config{}, []string{`expr: is required — add a condition, for example expr: "data.amount >= 5000"`}},
		{"not bool", flow.Config{"expr": "data.amount + 1 > 2 ? 'a' : 'b'"}, []string{"expr: expression must return bool, got string — make it a condition, for example data.amount >= 5000 or has(data.user)"}},
		{"undeclared", flow.Config{"expr": "amount >= 5000"}, []string{"expr: undeclared reference to 'amount' at column 1 — did you mean data.amount? the variables are data, id, type, source, subject, time and metadata; payload fields are data.<field>"}},
		{"not a string", flow.Config{"expr": 5}, []string{"expr: must be a string, got int"}},
	})
}

func TestFilterProcess(t *testing.T) {
	p := procNew(t, "filter", flow.Config{"expr": "data.amount >= 5000 && metadata.region == 'eu'"})
	tests := []struct {
		name string
		data string
		keep bool
		err  string
	}{
		{"kept", `{"id":7,"amount":5433}`, true, ""},
		{"boundary kept", `{"amount":5000}`, true, ""},
		{"dropped", `{"amount":4999}`, false, ""},
		{"double compared with int", `{"amount":5000.5}`, true, ""},
		{"missing field", `{"id":1}`, false, `expression "data.amount >= 5000 && metadata.region == 'eu'": no such key: amount`},
		{"not json", `amount=5`, false, `event data: invalid JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := procEvent("src:1", "payment", tt.data)
			prefix := []*flow.Event{procEvent("other", "x", "{}")}
			out, err := p.Process(context.Background(), in, prefix)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.err)
				}
				if len(out) != 1 {
					t.Errorf("a failed event produced output: %d events", len(out))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out[0] != prefix[0] {
				t.Error("Process changed the events already in out")
			}
			if !tt.keep {
				if len(out) != 1 {
					t.Errorf("dropped event passed: %d events", len(out))
				}
				return
			}
			if len(out) != 2 || out[1] != in {
				t.Fatalf("out = %v, want the input event itself appended", out)
			}
			if string(out[1].Data) != tt.data {
				t.Errorf("data changed: %s", out[1].Data)
			}
		})
	}
}

// BenchmarkFilterW1 is the filter step of benchmark workload W1, parse of
// the fresh event included.
func BenchmarkFilterW1(b *testing.B) {
	p := procNew(b, "filter", flow.Config{"expr": "data.amount >= 5000"})
	data := []byte(`{"id":7,"ts":"2026-01-01T00:00:00Z","account":"acct-7","amount":5433,"kind":"trade"}`)
	out := make([]*flow.Event, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		in := &flow.Event{ID: "src:7", Data: data}
		var err error
		if out, err = p.Process(context.Background(), in, out[:0]); err != nil || len(out) != 1 {
			b.Fatal(err)
		}
	}
}

// TestExamplesValidate checks that every example shown to users of these
// components (flowctl components, the docs) is a config Validate accepts
// and New builds.
func TestExamplesValidate(t *testing.T) {
	for _, c := range []struct {
		role flow.Role
		name string
	}{
		{flow.RoleProcessor, "filter"}, {flow.RoleProcessor, "map"}, {flow.RoleProcessor, "route"},
		{flow.RoleProcessor, "dedupe"}, {flow.RoleProcessor, "rate_limit"}, {flow.RoleSource, "generate"},
	} {
		s := procSpec(t, c.role, c.name)
		if len(s.Examples) == 0 {
			t.Errorf("%s has no examples", s.ID())
		}
		for i, ex := range s.Examples {
			t.Run(fmt.Sprintf("%s/%d", s.ID(), i), func(t *testing.T) {
				var cfg flow.Config
				if err := yaml.Unmarshal([]byte(ex), &cfg); err != nil {
					t.Fatalf("example is not YAML: %v\n%s", err, ex)
				}
				if err := s.Validate(cfg); err != nil {
					t.Fatalf("example rejected: %v\n%s", err, ex)
				}
				if _, err := s.New(flow.BuildContext{Name: "x", Config: cfg}); err != nil {
					t.Fatalf("New: %v", err)
				}
			})
		}
	}
}
