package spec_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// mustParse parses src and fails the test on any error diagnostic.
func mustParse(t *testing.T, src string, opts spec.Options) *spec.Pipeline {
	t.Helper()
	pl, diags := spec.Parse("p.yaml", []byte(src), opts)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors:\n%v", diags.Err())
	}
	return pl
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		name          string
		deadLetter    bool
		wantProcessor spec.OnError
	}{
		{"without dead letter", false, spec.OnError{Policy: "drop", MaxAttempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second}},
		{"with dead letter", true, spec.OnError{Policy: "dead_letter", MaxAttempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := `name: d
sources:
  - name: in
    type: file
    config: {path: in.jsonl}
processors:
  - name: p
    command: [./p]
    inputs: [in]
sinks:
  - name: out
    type: stdout
    inputs: [p]
`
			if tc.deadLetter {
				src += "dead_letter: {type: file, config: {path: dl.jsonl}}\n"
			}
			pl := mustParse(t, src, options(t))
			p := pl.Component("p")
			if p.Buffer != 1024 || p.Parallelism != 1 || !p.Ordered || p.Protocol != "auto" ||
				p.StartupTimeout != 10*time.Second || p.StopGrace != 10*time.Second || p.RestartPolicy != "on-failure" {
				t.Errorf("processor defaults: %+v", p)
			}
			if p.Runner != spec.RunProcess {
				t.Errorf("processor runner = %q, want process", p.Runner)
			}
			if p.OnError != tc.wantProcessor {
				t.Errorf("processor on_error = %+v, want %+v", p.OnError, tc.wantProcessor)
			}
			out := pl.Component("out")
			// A sink retries for ever (MaxAttempts 0) unless the file says.
			wantSink := spec.OnError{Policy: "retry", Then: "stop", MaxAttempts: 0, Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second}
			if out.OnError != wantSink {
				t.Errorf("sink on_error = %+v, want %+v", out.OnError, wantSink)
			}
			in := pl.Component("in")
			if in.Runner != spec.RunBuiltin {
				t.Errorf("source runner = %q, want builtin", in.Runner)
			}
			// Config defaults come from the file source's field spec.
			if in.Config["follow"] != false || in.Config["poll_interval"] != "250ms" || in.Config["path"] != "in.jsonl" {
				t.Errorf("source config = %v", in.Config)
			}
			if tc.deadLetter {
				dl := pl.DeadLetter
				if dl == nil || dl.Name != "dead_letter" || dl.Role != flow.RoleSink || dl.Runner != spec.RunBuiltin {
					t.Fatalf("dead letter = %+v", dl)
				}
			}
		})
	}
}

func TestOnErrorForms(t *testing.T) {
	pl := mustParse(t, `name: e
sources: [{name: in, type: stdin}]
processors:
  - name: a
    command: [./a]
    inputs: [in]
    on_error: {policy: retry, max_attempts: 5, backoff: 200ms, max_backoff: 5s}
  - name: b
    command: [./b]
    inputs: [a]
    on_error: stop
sinks:
  - name: out
    type: stdout
    inputs: [b]
    on_error: {then: drop}
`, options(t))
	want := map[string]spec.OnError{
		"a":   {Policy: "retry", MaxAttempts: 5, Backoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Second, Then: "drop"},
		"b":   {Policy: "stop", MaxAttempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second},
		"out": {Policy: "retry", MaxAttempts: 0, Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, Then: "drop"},
	}
	for name, w := range want {
		if got := pl.Component(name).OnError; got != w {
			t.Errorf("%s: on_error = %+v, want %+v", name, got, w)
		}
	}
}

// strip clears what legitimately differs between two spellings of one
// pipeline: the envelope markers and the positions.
func strip(pl *spec.Pipeline) {
	pl.File, pl.Envelope, pl.Legacy, pl.APIVersion, pl.Kind = "", false, false, "", ""
	all := pl.Components()
	if pl.DeadLetter != nil {
		all = append(all, pl.DeadLetter)
	}
	for _, c := range all {
		c.Pos, c.Positions = spec.Pos{}, nil
		for i := range c.Inputs {
			c.Inputs[i].Pos = spec.Pos{}
		}
	}
}

func TestFlatAndEnvelopeGiveTheSamePipeline(t *testing.T) {
	load := func(dir string) *spec.Pipeline {
		t.Helper()
		path := filepath.Join("testdata", "valid", dir)
		pl, diags, err := spec.Load(filepath.Join(path, caseFile(t, path)), options(t))
		if err != nil || diags.HasErrors() {
			t.Fatalf("%s: %v %v", dir, err, diags.Err())
		}
		return pl
	}
	flat, env := load("linear"), load("linear-v1")
	if !env.Envelope || env.APIVersion != "flowctl/v1" || env.Kind != "Pipeline" || flat.Envelope {
		t.Errorf("envelope markers: flat %v, envelope %v %q %q", flat.Envelope, env.Envelope, env.APIVersion, env.Kind)
	}
	strip(flat)
	strip(env)
	if !reflect.DeepEqual(flat, env) {
		t.Errorf("flat and envelope differ:\nflat     %+v\nenvelope %+v", flat, env)
	}
	// The same flat pipeline written as JSON.
	js := `{"name": "payments", "description": "large payments, enriched",
 "sources": [{"name": "ledger", "type": "file", "config": {"path": "events.jsonl"}}],
 "processors": [{"name": "enrich", "command": ["python3", "enrich.py"], "protocol": "stdio", "inputs": ["ledger"]}],
 "sinks": [{"name": "out", "type": "file", "inputs": ["enrich"], "config": {"path": "out.jsonl"}}],
 "dead_letter": {"type": "file", "config": {"path": "failed.jsonl"}}}`
	pj, diags := spec.Parse("p.json", []byte(js), options(t))
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	strip(pj)
	if !reflect.DeepEqual(flat, pj) {
		t.Errorf("YAML and JSON differ:\nyaml %+v\njson %+v", flat, pj)
	}
}

func TestPositions(t *testing.T) {
	src := `name: pos
sources:
  - name: in
    type: stdin
processors:
  - name: kind
    type: route
    inputs:
      - in
    config:
      cases:
        - {type: a, when: "data.x > 1"}
        - type: b
          when: "data.x > 2"
sinks:
  - id: out
    type: stdout
    inputs: [{from: kind, types: [a, b]}]
`
	pl := mustParse(t, src, options(t))
	kind := pl.Component("kind")
	for key, want := range map[string]spec.Pos{
		"name":                 {Line: 6, Col: 11},
		"inputs[0]":            {Line: 9, Col: 9},
		"config.cases[0]":      {Line: 12, Col: 11},
		"config.cases[1].when": {Line: 14, Col: 17},
	} {
		if got := kind.Positions[key]; got != want {
			t.Errorf("kind.Positions[%q] = %v, want %v", key, got, want)
		}
	}
	if kind.Pos != (spec.Pos{Line: 6, Col: 5}) {
		t.Errorf("kind.Pos = %v", kind.Pos)
	}
	out := pl.Component("out")
	if got := out.Positions["name"]; got != (spec.Pos{Line: 16, Col: 9}) {
		t.Errorf("out.Positions[name] (written as id) = %v", got)
	}
	if got := out.Positions["inputs[0].types[1]"]; got != (spec.Pos{Line: 18, Col: 38}) {
		t.Errorf("out.Positions[inputs[0].types[1]] = %v", got)
	}
	if in := out.Inputs[0]; in.From != "kind" || !reflect.DeepEqual(in.Types, []string{"a", "b"}) || in.Pos != (spec.Pos{Line: 18, Col: 21}) {
		t.Errorf("out.Inputs[0] = %+v", in)
	}
}

// hookRegistry is a registry whose one processor validates through a hook
// returning joined FieldErrors, as built-ins do.
func hookRegistry() *flow.Registry {
	r := flow.NewRegistry()
	r.MustRegister(&flow.ComponentSpec{
		Role: flow.RoleSource, Name: "gen",
		Fields: []flow.Field{{Name: "count", Type: flow.TypeInt, Default: 10}},
		OutputTypes: func(name string, cfg flow.Config, in []string) ([]string, bool) {
			return []string{name}, true
		},
	})
	r.MustRegister(&flow.ComponentSpec{
		Role: flow.RoleProcessor, Name: "check",
		Fields: []flow.Field{
			{Name: "rate", Type: flow.TypeNumber, Default: 5},
			{Name: "rules", Type: flow.TypeArray, Items: &flow.Field{Type: flow.TypeObject, Fields: []flow.Field{
				{Name: "when", Type: flow.TypeCEL},
			}}},
		},
		Validate: func(cfg flow.Config) error {
			var errs []error
			if cfg["rate"].(float64) > 100 {
				errs = append(errs, &flow.FieldError{Path: "rate", Message: "is above 100", Hint: "lower it"})
			}
			rules, _ := cfg["rules"].([]any)
			for i, r := range rules {
				if r.(map[string]any)["when"] == "bad" {
					errs = append(errs, &flow.FieldError{Path: "rules[" + string(rune('0'+i)) + "].when", Message: "does not compile"})
				}
			}
			if cfg["rate"].(float64) > 400 {
				errs = append(errs, errors.New("whole config is odd"))
			}
			return errors.Join(errs...)
		},
	})
	r.MustRegister(&flow.ComponentSpec{Role: flow.RoleSink, Name: "discard"})
	return r
}

func TestValidateHookErrorsGetPositions(t *testing.T) {
	src := `name: hooks
sources: [{name: g, type: gen}]
processors:
  - name: c
    type: check
    inputs: [g]
    config:
      rate: 500
      rules:
        - when: ok
        - when: bad
sinks: [{name: out, type: discard, inputs: [c]}]
`
	_, diags := spec.Parse("p.yaml", []byte(src), spec.Options{Registry: hookRegistry()})
	var got []string
	for _, d := range diags {
		got = append(got, d.String())
	}
	want := []string{
		"p.yaml:7:5: processor \"c\": invalid config: whole config is odd — `flowctl components` lists the fields of the built-in processor \"check\"",
		`p.yaml:8:13: processor "c": config.rate: is above 100 — lower it`,
		`p.yaml:11:17: processor "c": config.rules[1].when: does not compile`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestConfigShapes(t *testing.T) {
	pl := mustParse(t, `name: shapes
sources: [{name: g, type: gen, config: {count: 3}}]
processors: [{name: c, type: check, inputs: [g], config: {rate: 7, rules: [{when: ok}]}}]
sinks: [{name: out, type: discard, inputs: [c]}]
`, spec.Options{Registry: hookRegistry()})
	c := pl.Component("c").Config
	if c["rate"] != float64(7) {
		t.Errorf("a number field holds %T %v, want float64 7", c["rate"], c["rate"])
	}
	if !reflect.DeepEqual(c["rules"], []any{map[string]any{"when": "ok"}}) {
		t.Errorf("rules = %#v", c["rules"])
	}
	if g := pl.Component("g").Config; g["count"] != 3 {
		t.Errorf("an int field holds %T %v", g["count"], g["count"])
	}
}

func TestSubstitution(t *testing.T) {
	env := map[string]string{"DIR": "/a/long/directory", "N": "5", "MULTI": "a\nb"}
	opts := spec.Options{Registry: hookRegistry(), LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	for _, tc := range []struct {
		name, line string
		check      func(t *testing.T, pl *spec.Pipeline, diags spec.Diagnostics)
	}{
		{"number stays a number", "config: {count: ${N}}", func(t *testing.T, pl *spec.Pipeline, diags spec.Diagnostics) {
			if n := pl.Component("g").Config["count"]; n != 5 {
				t.Errorf("count = %T %v", n, n)
			}
		}},
		{"default", "config: {count: ${MISSING:-7}}", func(t *testing.T, pl *spec.Pipeline, diags spec.Diagnostics) {
			if n := pl.Component("g").Config["count"]; n != 7 {
				t.Errorf("count = %v", n)
			}
		}},
		{"unset names the variable at its column", `config: {count: 1}, env: {A: "${DIR}", B: "${NOPE}"}`, func(t *testing.T, pl *spec.Pipeline, diags spec.Diagnostics) {
			want := "p.yaml:2:75: environment variable NOPE is not set — set it, or give a default: ${NOPE:-value}"
			if len(diags) != 1 || diags[0].String() != want {
				t.Errorf("diags = %v, want %s", diags, want)
			}
		}},
		{"columns after a substitution stay true", `env: {A: "${DIR}"}, config: {count: x}`, func(t *testing.T, pl *spec.Pipeline, diags spec.Diagnostics) {
			if len(diags) != 1 || diags[0].Line != 2 || diags[0].Col != 68 {
				t.Errorf("diags = %v, want one at 2:68", diags)
			}
		}},
		{"escaped dollar", `env: {A: "$${DIR}"}`, func(t *testing.T, pl *spec.Pipeline, diags spec.Diagnostics) {
			if a := pl.Component("g").Env["A"]; a != "${DIR}" {
				t.Errorf("A = %q", a)
			}
		}},
		{"a line break would shift lines", `env: {A: "${MULTI}"}`, func(t *testing.T, pl *spec.Pipeline, diags spec.Diagnostics) {
			if len(diags) != 1 || !strings.Contains(diags[0].Message, "line break") {
				t.Errorf("diags = %v", diags)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "name: s\nsources: [{name: g, type: gen, " + tc.line + "}]\n" +
				"sinks: [{name: out, type: discard, inputs: [g]}]\n"
			pl, diags := spec.Parse("p.yaml", []byte(src), opts)
			tc.check(t, pl, diags)
		})
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		args string
		want []string
	}{
		{`[--a, "b c"]`, []string{"--a", "b c"}},
		{`"--name 'two words' plain"`, []string{"--name", "two words", "plain"}},
		{`'--x "a \"q\" b" c\ d'`, []string{"--x", `a "q" b`, "c d"}},
		{`--one`, []string{"--one"}},
	} {
		src := "name: a\nsources: [{name: s, command: [./s], args: " + tc.args + "}]\nsinks: [{name: o, type: stdout, inputs: [s]}]\n"
		pl := mustParse(t, src, options(t))
		if got := pl.Component("s").Args; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("args %s = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestRunner(t *testing.T) {
	for _, tc := range []struct {
		name, envelope, fields string
		want                   spec.Runner
		wantType               string
	}{
		{"built-in", "", "type: stdin", spec.RunBuiltin, "stdin"},
		{"process", "", "command: [./x]", spec.RunProcess, ""},
		{"container", "", "image: x", spec.RunContainer, ""},
		{"container with entrypoint", "", "image: x, command: [/bin/x]", spec.RunContainer, ""},
		{"remote", "", "url: http://127.0.0.1:9000", spec.RunRemote, ""},
		{"earlier format label", "v1", "type: source, image: x", spec.RunContainer, "source"},
		{"earlier format built-in", "v1", "type: stdin", spec.RunBuiltin, "stdin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "sources: [{name: s, " + tc.fields + "}]\nsinks: [{name: o, type: stdout, inputs: [s]}]\n"
			src := "name: r\n" + body
			if tc.envelope != "" {
				src = "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: r}\nspec:\n  " + strings.ReplaceAll(strings.TrimSpace(body), "\n", "\n  ") + "\n"
			}
			pl := mustParse(t, src, options(t))
			s := pl.Component("s")
			if s.Runner != tc.want || s.Type != tc.wantType {
				t.Errorf("runner %q type %q, want %q %q", s.Runner, s.Type, tc.want, tc.wantType)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	src := "name: l\nsources: [{name: s, type: stdin}]\nsinks: [{name: o, type: stdout, inputs: [s]}]\n"
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pl, diags, err := spec.Load(path, options(t))
	if err != nil || len(diags) != 0 || pl.File != path || pl.Name != "l" {
		t.Errorf("Load(file) = %v, %v, %v", pl, diags, err)
	}
	opts := options(t)
	opts.Stdin = strings.NewReader(src)
	pl, diags, err = spec.Load("-", opts)
	if err != nil || len(diags) != 0 || pl.File != "" || len(pl.Components()) != 2 {
		t.Errorf("Load(-) = %v, %v, %v", pl, diags, err)
	}
	opts.Stdin = strings.NewReader("name: [")
	_, diags, _ = spec.Load("-", opts)
	if len(diags) == 0 || diags[0].File != spec.StdinName {
		t.Errorf("stdin diagnostics = %v", diags)
	}
	if _, _, err := spec.Load(filepath.Join(t.TempDir(), "missing.yaml"), options(t)); err == nil {
		t.Error("Load of a missing file gave no error")
	}
}

// FuzzParse checks that no input makes the parser panic, seeded with every
// golden case.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*", "pipeline.*"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(filepath.Base(file), data)
	}
	f.Add("x.yaml", []byte("a: &a [*a]\n"))
	f.Add("x.yaml", []byte("name: ${"))
	opts := options(f)
	hooks := spec.Options{Registry: hookRegistry(), LookupEnv: opts.LookupEnv}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		for _, o := range []spec.Options{opts, hooks} {
			pl, diags := spec.Parse(name, data, o)
			if !diags.HasErrors() && pl == nil {
				t.Fatalf("no error and no pipeline for %q", data)
			}
			for i := 1; i < len(diags); i++ {
				if diags[i].Line < diags[i-1].Line {
					t.Fatalf("diagnostics not sorted: %v", diags)
				}
			}
		}
	})
}

// TestAliasBomb checks that aliases expanding into each other (a
// "billion laughs" file) end in an error, not in minutes of work.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: bomb\nsources:\n  - name: s\n    command: [./s]\n    config:\n      l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("      l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("sinks: [{name: o, type: stdout, inputs: [s]}]\n")
	start := time.Now()
	_, diags := spec.Parse("p.yaml", []byte(b.String()), options(t))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Parse took %v", d)
	}
	if !diags.HasErrors() || !strings.Contains(diags.Err().Error(), "too many values") {
		t.Errorf("diagnostics = %v", diags)
	}
}

// TestColumns checks that columns stay those of the file when the text was
// rewritten before parsing, and that they count characters, not bytes.
func TestColumns(t *testing.T) {
	env := map[string]string{"LONG": "a-much-longer-value"}
	opts := options(t)
	opts.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		name, file, src, want string
	}{
		{"non-ASCII before a variable", "p.yaml",
			"name: x\nsources: [{name: é, command: [\"${NOPE}\"]}]\nsinks: [{name: o, type: stdout, inputs: [é]}]\n",
			"p.yaml:2:32: environment variable NOPE is not set"},
		{"escaped slash in JSON", "p.json",
			`{"name": "a\/b", "sources": [{"name": "s", "type": "stdin", "buffer": "x"}], "sinks": [{"name": "o", "type": "stdout", "inputs": ["s"]}]}`,
			`p.json:1:71: source "s": buffer must be an integer, got "x"`},
		{"JSON syntax error after non-ASCII", "p.json",
			"{\"name\": \"é\", \"sources\": [}\n",
			"p.json:1:27: syntax error: invalid character '}' looking for beginning of value"},
		{"variable and slash on one line", "p.json",
			`{"name": "${LONG}\/x", "sources": [{"name": "s", "type": "stdin", "buffer": "x"}], "sinks": [{"name": "o", "type": "stdout", "inputs": ["s"]}]}`,
			`p.json:1:77: source "s": buffer must be an integer, got "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := spec.Parse(tc.file, []byte(tc.src), opts)
			if len(diags) == 0 || !strings.HasPrefix(diags[0].String(), tc.want) {
				t.Errorf("diagnostics %v, want one starting %q", diags, tc.want)
			}
		})
	}
	// A YAML flow mapping starts with `{` too, but is not JSON.
	pl, diags := spec.Parse("p.yaml", []byte("{name: f, sources: [{name: s, type: stdin}], sinks: [{name: o, type: stdout, inputs: [s]}]}\n"), opts)
	if diags.HasErrors() || pl.Name != "f" {
		t.Errorf("flow-style YAML: %v", diags)
	}
}

// TestEarlierFormatFieldsCarried checks that every field of the earlier
// flowctl/v1 format reaches the Pipeline.
func TestEarlierFormatFieldsCarried(t *testing.T) {
	pl, diags, err := spec.Load(filepath.Join("testdata", "valid", "v1-images", "pipeline.yaml"), options(t))
	if err != nil || diags.HasErrors() {
		t.Fatal(err, diags.Err())
	}
	if pl.Name != "stellar-ttp" || pl.Namespace != "payments" || pl.Labels["team"] != "data" || pl.Annotations["owner"] != "ops" ||
		pl.Description == "" || pl.Driver != "docker" || pl.Config["log_level"] != "debug" {
		t.Errorf("pipeline fields: %+v", pl)
	}
	if len(pl.Pipelines) != 2 || pl.Pipelines[1].Name != "report" || !reflect.DeepEqual(pl.Pipelines[1].DependsOn, []string{"ingest"}) {
		t.Errorf("pipelines: %+v", pl.Pipelines)
	}
	src := pl.Component("ledger-source")
	want := &spec.Component{
		Name: "ledger-source", Role: flow.RoleSource, Runner: spec.RunContainer, Type: "source",
		Image: "example/ledger-source:latest", Command: []string{"/app/source"},
		Args:             []string{"--network", "testnet", "--start-ledger", "100"},
		OutputEventTypes: []string{"stellar.ledger"},
		Env:              map[string]string{"NETWORK": "testnet", "START": "100"},
		Ports:            []spec.Port{{Name: "grpc", ContainerPort: 50051, HostPort: 50051, Protocol: "TCP"}},
		HealthCheck:      "/health", HealthPort: 8088, RestartPolicy: "unless-stopped",
		Resources: spec.Resources{Requests: spec.ResourceList{CPU: "0.5", Memory: "256Mi"}, Limits: spec.ResourceList{CPU: "1", Memory: "512Mi"}},
	}
	got := *src
	got.Pos, got.Positions, got.Buffer, got.Parallelism, got.Ordered, got.OnError = spec.Pos{}, nil, 0, 0, false, spec.OnError{}
	got.Protocol, got.StartupTimeout, got.StopGrace = "", 0, 0
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("source:\n got %+v\nwant %+v", &got, want)
	}
	ttp := pl.Component("ttp")
	if ttp.Replicas != 2 || !reflect.DeepEqual(ttp.InputEventTypes, []string{"stellar.ledger"}) ||
		!reflect.DeepEqual(ttp.Inputs[0].Types, []string{"stellar.ledger"}) ||
		!reflect.DeepEqual(ttp.Volumes, []spec.Volume{{Name: "data", MountPath: "/data", HostPath: "/srv/data", ReadOnly: true}}) ||
		!reflect.DeepEqual(ttp.Secrets, []spec.Secret{{Name: "key", HostPath: "/etc/key", ContainerPath: "/run/key", Env: "API_KEY", Mode: "0400", Required: true}}) {
		t.Errorf("processor: %+v", ttp)
	}
	if store := pl.Component("store"); store.Config["dsn"] != "postgres://db/ttp" || store.Type != "consumer" {
		t.Errorf("sink: %+v", store)
	}
}
