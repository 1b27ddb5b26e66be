package spec_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/spec"
)

// TestLegacyGivesTheSamePipeline: the legacy shape reads into the pipeline
// the flat form would give with the source named "source", processors
// chained in file order and the sink named "sink".
func TestLegacyGivesTheSamePipeline(t *testing.T) {
	path := filepath.Join("testdata", "valid", "legacy", "pipeline.yaml")
	legacy, diags, err := spec.Load(path, options(t))
	if err != nil || diags.HasErrors() {
		t.Fatalf("%v %v", err, diags.Err())
	}
	if !legacy.Legacy || legacy.Envelope {
		t.Errorf("form markers: legacy %v, envelope %v", legacy.Legacy, legacy.Envelope)
	}
	if legacy.Name != "pipeline" {
		t.Errorf("name = %q, want the file's base name %q", legacy.Name, "pipeline")
	}
	flat := mustParse(t, `name: pipeline
sources:
  - name: source
    type: generate
    config:
      count: 10
      expr: '{"id": i, "amount": i * 1000}'
processors:
  - name: large
    type: filter
    inputs: [source]
    config:
      expr: "data.amount >= 5000"
  - name: cents
    type: map
    inputs: [large]
    config:
      set:
        amount_cents: "data.amount * 100"
sinks:
  - name: sink
    type: file
    inputs: [cents]
    config:
      path: ${OUT_DIR}/large.jsonl
`, options(t))
	strip(legacy)
	strip(flat)
	if !reflect.DeepEqual(legacy, flat) {
		t.Errorf("legacy and flat differ:\nlegacy %+v\nflat   %+v", legacy, flat)
	}
}

// TestLegacyNames: the pipeline is named after the file unless `name:` is
// set; the source and sink are named "source" and "sink".
func TestLegacyNames(t *testing.T) {
	const body = "version: 3\nsource: {type: generate, params: {count: 1, data: {a: 1}}}\nsink: {type: stdout}\n"
	tests := []struct {
		file, src, want string
	}{
		{"dir/old-flow.yml", body, "old-flow"},
		{"/abs/path/stellar.pipeline.yaml", body, "stellar.pipeline"},
		{"flow.json", `{"version": 1, "source": {"type": "generate", "params": {"count": 1, "data": {}}}, "sink": {"type": "drop"}}`, "flow"},
		{"dir/old-flow.yml", "name: chosen\n" + body, "chosen"},
		{spec.StdinName, body, "pipeline"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.want, func(t *testing.T) {
			pl, diags := spec.Parse(tt.file, []byte(tt.src), options(t))
			if diags.HasErrors() || len(diags) != 0 {
				t.Fatalf("diagnostics: %v", diags)
			}
			if pl.Name != tt.want {
				t.Errorf("name = %q, want %q", pl.Name, tt.want)
			}
			if len(pl.Sources) != 1 || pl.Sources[0].Name != "source" || len(pl.Sinks) != 1 || pl.Sinks[0].Name != "sink" {
				t.Fatalf("components: %+v", pl.Components())
			}
			// Without processors the sink reads from the source.
			if in := pl.Sinks[0].Inputs; len(in) != 1 || in[0].From != "source" {
				t.Errorf("sink inputs = %+v, want [source]", in)
			}
		})
	}
	opts := options(t)
	opts.Stdin = strings.NewReader(body)
	pl, diags, err := spec.Load("-", opts)
	if err != nil || len(diags) != 0 || pl.Name != "pipeline" {
		t.Errorf("Load(-) = %+v, %v, %v", pl, diags, err)
	}
}

// TestLegacyMistakes: mistakes of the legacy shape are reported where
// they are written, with the usual kinds of message.
func TestLegacyMistakes(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"version not a single value", "version: [1, 2]\nsource: {type: generate, params: {count: 1, data: {}}}\nsink: {type: stdout}\n",
			[]string{"p.yaml:1:10: version must be a single value, got a list"}},
		{"no sink", "source: {type: generate, params: {count: 1, data: {}}}\n",
			[]string{"p.yaml:1:1: warning: the pipeline has no sink: its events are not written anywhere — add `sink: {type: NAME, params: {...}}` naming a built-in sink (arrow, drop, duckdb, file, http, kafka, nats, parquet, postgres, sqlite, stdout)"}},
		{"source is a list", "source: [generate]\nprocessors: [{name: f, plugin: filter, params: {expr: 'true'}}]\nsink: {type: stdout}\n",
			[]string{"p.yaml:1:9: source must be a mapping, got a list — write it as `key: value` lines"}},
		{"source without type", "source: {params: {count: 1}}\nsink: {type: stdout}\n",
			[]string{`p.yaml:1:9: source "source" does not say what runs it — add ` + "`type:`" + ` naming a built-in source (file, generate, http, kafka, nats, postgres, stdin)`}},
		{"params not a mapping", "source: {type: generate, params: 3}\nsink: {type: stdout}\n",
			[]string{"p.yaml:1:34: params of source must be a mapping, got 3 — write it as `key: value` lines"}},
		{"processors not a list", "source: {type: generate, params: {count: 1, data: {}}}\nprocessors: {name: f}\nsink: {type: stdout}\n",
			[]string{"p.yaml:2:13: processors must be a list, got a mapping — write a list: `processors:` then `- name: ...` lines with `plugin:` and `params:`"}},
		{"processor named like the sink", "source: {type: generate, params: {count: 1, data: {}}}\nprocessors:\n  - {name: sink, plugin: filter, params: {expr: 'true'}}\nsink: {type: stdout}\n",
			[]string{`p.yaml:3:12: processors[0] is named "sink", the name the legacy shape gives its sink — give the processor another name`}},
		{"flat key in a legacy file", "source: {type: generate, params: {count: 1, data: {}}}\ndead_letter: {type: stdout}\nsink: {type: stdout}\n",
			[]string{"p.yaml:2:1: unknown field \"dead_letter\" in the pipeline — `dead_letter` belongs to the flat form"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := spec.Parse("p.yaml", []byte(tt.src), options(t))
			var got []string
			for _, d := range diags {
				got = append(got, d.String())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("diagnostic %d:\n got  %s\n want %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestLegacyNotDetected: a `source:` or `sink:` holding a list is a
// misspelt key of the flat form, and a lone `version:` does not make a
// file legacy.
func TestLegacyNotDetected(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"sink list", "name: p\nsources: [{name: s, type: generate, config: {count: 1, data: {}}}]\nsink: [{name: o, type: stdout, inputs: [s]}]\n",
			`p.yaml:3:1: unknown field "sink" in the pipeline — did you mean "sinks"?`},
		{"source list only", "name: p\nsource: [{name: s, type: generate}]\n",
			`p.yaml:2:1: unknown field "source" in the pipeline — did you mean "sources"?`},
		{"version in a flat file", "name: p\nversion: 1\nsources: [{name: s, type: generate, config: {count: 1, data: {}}}]\nsinks: [{name: o, type: stdout, inputs: [s]}]\n",
			`p.yaml:2:1: unknown field "version" in the pipeline`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, diags := spec.Parse("p.yaml", []byte(tt.src), options(t))
			if pl == nil || pl.Legacy {
				t.Fatalf("read as legacy: %+v", pl)
			}
			found := false
			for _, d := range diags {
				found = found || strings.HasPrefix(d.String(), tt.want)
			}
			if !found {
				t.Errorf("want a diagnostic starting %q, got:\n%v", tt.want, diags)
			}
		})
	}
}
