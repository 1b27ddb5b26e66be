package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/components"
	flowctlnode "github.com/flowctl/flowctl/internal/node"
	"github.com/flowctl/flowctl/internal/spec"
)

// What these tests check, and what they cannot: no Nomad agent runs here
// (it is not open source from v1.7.0), so every job is decoded strictly
// into the api package's own types (an unknown or misspelt field fails),
// canonicalized as the api client does before sending it (which fills
// defaults but validates nothing), and held to the structural rules below.
// Whether a Nomad server accepts and schedules the job is not checked.

func translateNomad(t *testing.T, pl *spec.Pipeline) *Result {
	t.Helper()
	res, err := Translate(pl, Options{
		Target: Nomad, Image: "flowctl:test", SourceDir: ".",
		Registry: components.NewRegistry(),
		Now:      func() time.Time { return time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// decodeNomadJob decodes a job file as the Nomad HTTP API takes it,
// refusing any field api.Job does not have.
func decodeNomadJob(data []byte) (*api.Job, error) {
	var req struct{ Job *api.Job }
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	if req.Job == nil {
		return nil, fmt.Errorf("no Job")
	}
	// encoding/json matches names case-insensitively ("id" is taken for
	// "ID"): encoding the job again must give the same document, so every
	// name is spelt as Nomad spells it and nothing was lost.
	again, err := nomadJSON(req.Job)
	if err != nil {
		return nil, err
	}
	var a, b any
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(again, &b); err != nil {
		return nil, err
	}
	if !reflect.DeepEqual(a, b) {
		return nil, fmt.Errorf("the document is not what api.Job encodes back (a name spelt differently, or a field lost):\n%s", again)
	}
	return req.Job, nil
}

// TestTranslateNomadGolden compares the job file and the warnings of every
// example and acceptance case with testdata/golden (-update rewrites them)
// and checks a second run gives the same bytes.
func TestTranslateNomadGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			pl := load(t, tc.file)
			res := translateNomad(t, pl)
			again := translateNomad(t, pl)
			if !bytes.Equal(res.Main().Data, again.Main().Data) || !bytes.Equal(warningsText(res), warningsText(again)) {
				t.Fatal("two translations of the same file differ")
			}
			if want := dnsName(pl.Name, maxDNSLabel) + NomadFileSuffix; res.Main().Name != want || len(res.Files) != 1 {
				t.Errorf("files %v, want just %s", res.Files, want)
			}
			golden(t, filepath.Join("testdata", "golden", tc.name+".nomad.json"), res.Main().Data)
			golden(t, filepath.Join("testdata", "golden", tc.name+".nomad.warnings.txt"), warningsText(res))
		})
	}
}

// TestTranslateNomadGoldensDecode decodes every golden job file on disk
// strictly into api.Job, canonicalizes it and checks its structure.
func TestTranslateNomadGoldensDecode(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.nomad.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The goldens of examples that need an optional part this build
	// lacks are checked by the build that has it.
	files = slices.DeleteFunc(files, func(f string) bool {
		part := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "example-"), ".nomad.json")
		return (part == "duckdb" || part == "arrow") && !slices.Contains(components.OptionalParts(), part)
	})
	if len(files) != len(goldenCases(t)) {
		t.Fatalf("%d golden job files for %d cases", len(files), len(goldenCases(t)))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			job, err := decodeNomadJob(data)
			if err != nil {
				t.Fatalf("api.Job rejects %s: %v", f, err)
			}
			checkNomadJob(t, job)
			job.Canonicalize()
			if *job.Type != "service" || *job.Name != *job.ID {
				t.Errorf("canonical job: type %q name %q id %q", *job.Type, *job.Name, *job.ID)
			}
		})
	}
}

// TestTranslateNomadJob checks each job against its pipeline: a group per
// component with its replicas, the node's arguments, the pipeline file
// rendered byte for byte by its template, peers rendered from Nomad's
// services into what --peer takes.
func TestTranslateNomadJob(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			pl := load(t, tc.file)
			res := translateNomad(t, pl)
			job, err := decodeNomadJob(res.Main().Data)
			if err != nil {
				t.Fatal(err)
			}
			checkNomadJob(t, job)
			checkNomadAgainstPipeline(t, pl, job)
		})
	}
}

func checkNomadJob(t *testing.T, job *api.Job) {
	t.Helper()
	if job.ID == nil || *job.ID == "" || job.Type == nil || *job.Type != "service" || len(job.Datacenters) == 0 {
		t.Fatalf("job header: %+v", job)
	}
	if len(job.TaskGroups) == 0 {
		t.Fatal("no groups")
	}
	groups := map[string]bool{}
	services := map[string]bool{}
	for _, g := range job.TaskGroups {
		name := *g.Name
		if groups[name] {
			t.Errorf("group %q twice", name)
		}
		groups[name] = true
		if g.Count == nil || *g.Count < 0 {
			t.Errorf("group %q count %v", name, g.Count)
		}
		labels := map[string]bool{}
		for _, n := range g.Networks {
			if n.Mode != "bridge" {
				t.Errorf("group %q network mode %q", name, n.Mode)
			}
			for _, p := range append(append([]api.Port{}, n.DynamicPorts...), n.ReservedPorts...) {
				if p.Label == "" || labels[p.Label] {
					t.Errorf("group %q: port label %q empty or twice", name, p.Label)
				}
				labels[p.Label] = true
				if p.To <= 0 || p.To > 65535 || p.Value < 0 || p.Value > 65535 {
					t.Errorf("group %q: port %+v", name, p)
				}
			}
			for _, p := range n.ReservedPorts {
				if p.Value == 0 {
					t.Errorf("group %q: reserved port %q is 0", name, p.Label)
				}
			}
		}
		if len(g.Services) == 0 {
			t.Errorf("group %q registers no service", name)
		}
		for _, s := range g.Services {
			if s.Provider != "nomad" || !labels[s.PortLabel] || services[s.Name] || len(s.Name) > maxDNSLabel {
				t.Errorf("group %q service %+v: provider, port label (have %v), name", name, s, labels)
			}
			services[s.Name] = true
			for _, c := range s.Checks {
				if c.Type != "http" || c.Path != "/healthz" || !labels[c.PortLabel] || c.Interval <= 0 || c.Timeout <= 0 {
					t.Errorf("group %q check %+v", name, c)
				}
			}
		}
		node := false
		for _, task := range g.Tasks {
			if task.Driver != "docker" {
				t.Errorf("group %q task %q driver %q", name, task.Name, task.Driver)
			}
			if img, _ := task.Config["image"].(string); img == "" {
				t.Errorf("group %q task %q has no image", name, task.Name)
			}
			if task.Name == nomadNodeTask {
				node = true
			}
			dests := map[string]bool{}
			for _, tpl := range task.Templates {
				if tpl.DestPath == nil || *tpl.DestPath == "" || dests[*tpl.DestPath] {
					t.Errorf("group %q task %q: template destination %v empty or twice", name, task.Name, tpl.DestPath)
					continue
				}
				dests[*tpl.DestPath] = true
				if tpl.EmbeddedTmpl == nil {
					t.Errorf("group %q task %q: template %s has no data", name, task.Name, *tpl.DestPath)
				}
			}
			vols, _ := task.Config["volumes"].([]any)
			for _, v := range vols {
				src, _, _ := strings.Cut(v.(string), ":")
				if strings.HasPrefix(src, "local/") || strings.HasPrefix(src, "secrets/") {
					if !dests[src] {
						t.Errorf("group %q task %q mounts %s, which no template renders", name, task.Name, src)
					}
				}
			}
		}
		if !node {
			t.Errorf("group %q has no %q task", name, nomadNodeTask)
		}
	}
}

// nomadStubService stands for what Nomad's nomadService gives a template.
type nomadStubService struct {
	Address string
	Port    int
}

func checkNomadAgainstPipeline(t *testing.T, pl *spec.Pipeline, job *api.Job) {
	t.Helper()
	comps := pl.Components()
	if pl.DeadLetter != nil {
		comps = append(comps, pl.DeadLetter)
	}
	if len(job.TaskGroups) != len(comps) {
		t.Fatalf("%d groups for %d components", len(job.TaskGroups), len(comps))
	}
	file, err := os.ReadFile(pl.File)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range comps {
		g := job.TaskGroups[i]
		if *g.Name != dnsName(c.Name, maxDNSLabel) {
			t.Fatalf("group %d is %q, want %q", i, *g.Name, c.Name)
		}
		replicas := 1
		if _, set := c.Positions["replicas"]; set {
			replicas = c.Replicas
		}
		if *g.Count != replicas {
			t.Errorf("group %q count %d, want %d", *g.Name, *g.Count, replicas)
		}
		nodeTask := g.Tasks[0]
		args := toStrings(nodeTask.Config["args"])
		joined := strings.Join(args, " ")
		if !strings.HasPrefix(joined, "node -f "+pipelineDir+"/"+filepath.Base(pl.File)+" --component "+c.Name+" --http 0.0.0.0:9090") || !strings.Contains(joined, "--insecure") {
			t.Errorf("group %q args %q", *g.Name, joined)
		}
		wantTasks := 1
		if c.Runner == spec.RunContainer {
			wantTasks = 2
			side := g.Tasks[1]
			if side.Config["image"] != c.Image || side.Lifecycle == nil || side.Lifecycle.Hook != "prestart" || !side.Lifecycle.Sidecar {
				t.Errorf("group %q sidecar %+v", *g.Name, side)
			}
			if !strings.Contains(joined, fmt.Sprintf("--peer %s=127.0.0.1:", c.Name)) {
				t.Errorf("group %q args %q do not reach the image on loopback", *g.Name, joined)
			}
		}
		if len(g.Tasks) != wantTasks {
			t.Errorf("group %q has %d tasks, want %d", *g.Name, len(g.Tasks), wantTasks)
		}
		// The pipeline file template renders the file byte for byte.
		tpl := nodeTask.Templates[0]
		out := renderNomadTemplate(t, tpl, nil)
		if out != string(file) {
			t.Errorf("group %q: the pipeline template renders\n%s\nwant\n%s", *g.Name, out, file)
		}
		// Peers: every ${VAR} of an argument is set by the env template,
		// and what it renders is what --peer takes.
		env := map[string]string{}
		for _, tp := range nodeTask.Templates[1:] {
			if tp.Envvars == nil || !*tp.Envvars || *tp.DestPath == nomadSecretsEnv {
				continue // the secrets' variables: TestSecretFieldsNomad
			}
			for _, svc := range [][]nomadStubService{nil, {{"10.0.0.1", 23001}, {"10.0.0.2", 23002}}} {
				rendered := renderNomadTemplate(t, tp, svc)
				for _, line := range strings.Split(strings.TrimSpace(rendered), "\n") {
					k, v, ok := strings.Cut(line, "=")
					if !ok {
						t.Fatalf("env template line %q", line)
					}
					env[k] = v
					if len(svc) == 2 && v != "10.0.0.1:23001,10.0.0.2:23002" {
						t.Errorf("group %q: %s=%s with two instances", *g.Name, k, v)
					}
				}
			}
		}
		for i, a := range args {
			if !strings.Contains(a, "${") {
				continue
			}
			if i == 0 || args[i-1] != "--peer" {
				t.Errorf("group %q: argument %q interpolates outside --peer", *g.Name, a)
				continue
			}
			name, ref, _ := strings.Cut(a, "=")
			v, ok := env[strings.TrimSuffix(strings.TrimPrefix(ref, "${"), "}")]
			if !ok {
				t.Errorf("group %q: %s is set by no template", *g.Name, ref)
				continue
			}
			if _, _, err := flowctlnode.ParsePeer(name + "=" + v); err != nil {
				t.Errorf("group %q: rendered peer: %v", *g.Name, err)
			}
		}
		code := nodeTask
		if c.Runner == spec.RunContainer {
			code = g.Tasks[1]
		}
		for k, v := range c.Env {
			if code.Env[k] != v {
				t.Errorf("group %q task %q env %s=%q, want %q", *g.Name, code.Name, k, code.Env[k], v)
			}
		}
		secretTemplates := 0
		for _, tp := range code.Templates {
			if strings.HasPrefix(*tp.DestPath, "secrets/") {
				secretTemplates++
				if !strings.Contains(*tp.EmbeddedTmpl, "nomadVar") {
					t.Errorf("group %q: secret template %q", *g.Name, *tp.EmbeddedTmpl)
				}
			}
		}
		// One per secret and per file a built-in reads a secret from, and
		// one env template for the variables it reads them from.
		n := secretPlan(t, pl)[c.Name]
		want := len(c.Secrets) + len(n.secretFiles)
		if len(n.secretEnvs) > 0 {
			want++
		}
		if secretTemplates != want {
			t.Errorf("group %q task %q: %d secret templates, want %d", *g.Name, code.Name, secretTemplates, want)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// renderNomadTemplate runs a template's data through Go's text/template,
// as Nomad's consul-template does, with nomadService stubbed.
func renderNomadTemplate(t *testing.T, tpl *api.Template, services []nomadStubService) string {
	t.Helper()
	tm := template.New("t").Funcs(template.FuncMap{
		"nomadService": func(string) []nomadStubService { return services },
	})
	if tpl.LeftDelim != nil {
		tm = tm.Delims(*tpl.LeftDelim, *tpl.RightDelim)
	}
	tm, err := tm.Parse(*tpl.EmbeddedTmpl)
	if err != nil {
		t.Fatalf("template %s: %v", *tpl.DestPath, err)
	}
	var b strings.Builder
	if err := tm.Execute(&b, nil); err != nil {
		t.Fatalf("template %s: %v", *tpl.DestPath, err)
	}
	return b.String()
}

// TestTranslateNomadDecodeRejects shows the strict decoding has teeth.
func TestTranslateNomadDecodeRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown job field":  `{"Job": {"ID": "x", "Replicas": 2}}`,
		"lower-case fields":  `{"Job": {"id": "x", "task_groups": []}}`,
		"wrong type":         `{"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Count": "two"}]}}`,
		"unknown task field": `{"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Image": "i"}]}]}}`,
		"no job":             `{"job": {"ID": "x"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeNomadJob([]byte(doc)); err == nil {
				t.Fatalf("took %s", doc)
			}
		})
	}
}

// TestTranslateNomadOptions covers what only options change: the
// substituted file apply passes, a file that uses the delimiters, --tls.
func TestTranslateNomadOptions(t *testing.T) {
	pl := load(t, "testdata/cases/env.yaml")
	data := []byte("name: env # [[flowctl-literal {{ .x }} ${HOME}\n")
	res, err := Translate(pl, Options{Target: Nomad, Image: "i", PipelineData: data})
	if err != nil {
		t.Fatal(err)
	}
	job, err := decodeNomadJob(res.Main().Data)
	if err != nil {
		t.Fatal(err)
	}
	tpl := job.TaskGroups[0].Tasks[0].Templates[0]
	if *tpl.LeftDelim != "[[flowctl-literal-1" {
		t.Errorf("left delimiter %q: the file holds the first choice", *tpl.LeftDelim)
	}
	if got := renderNomadTemplate(t, tpl, nil); got != string(data) {
		t.Errorf("rendered %q, want %q", got, data)
	}
	if _, err := Translate(pl, Options{Target: Nomad, Image: "i", TLS: true}); err == nil || !strings.Contains(err.Error(), "--tls is not supported with --to nomad") {
		t.Errorf("--tls: %v", err)
	}
}

func TestTranslateNomadQuantities(t *testing.T) {
	cpus := []struct {
		in   string
		want int
	}{{"100m", 100}, {"1", 1000}, {"1.5", 1500}, {"1m", 1}, {"0.0001", 1}, {"lots", 0}, {"0", 0}}
	for _, c := range cpus {
		got, err := nomadCPU(c.in)
		if (err != nil) != (c.want == 0) || got != c.want {
			t.Errorf("nomadCPU(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	mems := []struct {
		in    string
		want  int
		exact bool
	}{{"512Mi", 512, true}, {"1Gi", 1024, true}, {"1G", 954, false}, {"64Ki", 1, false}, {"1.5Gi", 1536, true}, {"1048576", 1, true}, {"12XB", 0, false}, {"0", 0, false}}
	for _, c := range mems {
		got, exact, err := nomadMemoryMB(c.in)
		if (err != nil) != (c.want == 0) || got != c.want || exact != c.exact {
			t.Errorf("nomadMemoryMB(%q) = %d, %v, %v; want %d, %v", c.in, got, exact, err, c.want, c.exact)
		}
	}
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{"a=@secrets/x.txt": "a=@secrets/x.txt", "a b": "'a b'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestTranslateNomadFileVariables: a ${VAR} without a default reaches
// every node task through an env template over the task's own Nomad
// variable (the job holds no value), the task waits for it, and the
// nomad var put of the task's warning lists it next to its secrets; a
// variable with a default, the container's own HOSTNAME, Nomad's own
// NOMAD_ALLOC_INDEX, a variable the
// component's env: sets and an image component's own task are left alone.
// apply's substituted file passes none.
func TestTranslateNomadFileVariables(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vars.yaml")
	if err := os.WriteFile(file, []byte(`name: vars
sources:
  - name: gen
    type: generate
    config: {count: ${COUNT}, data: {host: "${HOSTNAME}", tier: "${TIER:-free}", key: "${LOCAL_KEY}", prefix: "${PREFIX}", alloc: "${NOMAD_ALLOC_INDEX}"}}
processors:
  - name: enrich
    image: ghcr.io/example/enrich:1
    inputs: [gen]
    ports: [{name: grpc, containerPort: 50051}]
    env: {PREFIX: p-}
  - name: ask
    type: llm
    inputs: [enrich]
    config: {url: 'http://127.0.0.1:11434/v1', model: m, prompt: '"x"', api_key_env: LOCAL_KEY}
sinks:
  - name: out
    type: stdout
    inputs: [ask]
    env: {COUNT: "3"}
    secrets: [{name: token, host_path: token.txt}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"COUNT": "5", "HOSTNAME": "laptop", "NOMAD_ALLOC_INDEX": "0", "LOCAL_KEY": "k3y-marker", "PREFIX": "prefix-marker"}
	pl := loadEnv(t, file, env)
	// envOf is what each task's env template sets: each name, and whether
	// the task waits for the variable (a line nomadVarExists does not
	// guard), as rendered with the variable holding every item.
	envOf := func(t *testing.T, job *api.Job) map[string]map[string]bool {
		t.Helper()
		out := map[string]map[string]bool{}
		for _, g := range job.TaskGroups {
			for _, task := range g.Tasks {
				key := *g.Name + "/" + task.Name
				for _, tp := range task.Templates {
					if *tp.DestPath != nomadSecretsEnv {
						continue
					}
					if tp.Envvars == nil || !*tp.Envvars {
						t.Errorf("%s: %s is not an env template", key, nomadSecretsEnv)
					}
					varPath := "nomad/jobs/vars/" + key
					got := map[string]bool{}
					for _, line := range strings.Split(strings.TrimSpace(*tp.EmbeddedTmpl), "\n") {
						rendered := renderSecretsEnv(t, &api.Template{EmbeddedTmpl: &line, DestPath: tp.DestPath}, varPath, map[string]string{"COUNT": trickySecret, "LOCAL_KEY": trickySecret, "PREFIX": trickySecret})
						env := parseNomadEnv(t, rendered)
						if len(env) != 1 {
							t.Errorf("%s: line %q renders %q", key, line, rendered)
						}
						for name, v := range env {
							if v != trickySecret {
								t.Errorf("%s: line %q renders %q, which Nomad reads as %q", key, line, rendered, v)
							}
							got[name] = !strings.Contains(line, "nomadVarExists")
						}
					}
					out[key] = got
				}
			}
		}
		return out
	}

	res := translateNomad(t, pl)
	for _, marker := range []string{"k3y-marker", "prefix-marker"} {
		if bytes.Contains(res.Main().Data, []byte(marker)) {
			t.Fatalf("a variable's value (%s) is in the job", marker)
		}
	}
	job, err := decodeNomadJob(res.Main().Data)
	if err != nil {
		t.Fatal(err)
	}
	checkNomadJob(t, job)
	want := map[string]map[string]bool{
		"gen/node":    {"COUNT": true, "LOCAL_KEY": true, "PREFIX": true},
		"enrich/node": {"COUNT": true, "LOCAL_KEY": true, "PREFIX": true}, // env: is the image's
		"ask/node":    {"COUNT": true, "LOCAL_KEY": true, "PREFIX": true}, // the file needs the key api_key_env can do without
		"out/node":    {"LOCAL_KEY": true, "PREFIX": true},                // its env: sets COUNT
	}
	if got := envOf(t, job); !reflect.DeepEqual(got, want) {
		t.Errorf("env templates (name: waits)\n%v\nwant\n%v", got, want)
	}
	for _, g := range job.TaskGroups {
		for _, task := range g.Tasks {
			if *g.Name == "out" && task.Env["COUNT"] != "3" {
				t.Errorf("out/node env %v: env: sets COUNT=3", task.Env)
			}
			if *g.Name == "enrich" && task.Name == nomadComponentTask && task.Env["PREFIX"] != "p-" {
				t.Errorf("enrich/component env %v", task.Env)
			}
		}
	}
	text := string(warningsText(res))
	for _, w := range []string{
		`vars.yaml:4:11: warning: task "node" of source "gen" reads ${COUNT}, ${LOCAL_KEY}, ${PREFIX}, which it expands the pipeline file with, from the Nomad variable nomad/jobs/vars/gen/node (the job holds no value); the task waits until it exists — store them before running the job, with the values they have here: nomad var put nomad/jobs/vars/gen/node COUNT=VALUE LOCAL_KEY=VALUE PREFIX=VALUE`,
		`nomad var put nomad/jobs/vars/enrich/node COUNT=VALUE LOCAL_KEY=VALUE PREFIX=VALUE`,
		`warning: processor "ask" reads its secrets and ${COUNT}, ${LOCAL_KEY}, ${PREFIX}, which it expands the pipeline file with, from the Nomad variable nomad/jobs/vars/ask/node (the job holds no value); the task waits until it exists`,
		`nomad var put nomad/jobs/vars/ask/node LOCAL_KEY=VALUE COUNT=VALUE PREFIX=VALUE`,
		`nomad var put nomad/jobs/vars/out/node token=@token.txt LOCAL_KEY=VALUE PREFIX=VALUE`,
	} {
		if !strings.Contains(text, w) {
			t.Errorf("no warning with\n%s\nin\n%s", w, text)
		}
	}
	var expanded []string
	for _, d := range res.Warnings {
		if strings.Contains(d.Message, "is expanded by each node") {
			expanded = append(expanded, fmt.Sprintf("%d:%d %s", d.Line, d.Col, d.Message[:strings.Index(d.Message, " ")]))
		}
	}
	if want := []string{"5:21 ${COUNT}", "5:88 ${LOCAL_KEY}", "5:112 ${PREFIX}"}; !slices.Equal(expanded, want) {
		t.Errorf("variable warnings %q, want %q", expanded, want)
	}
	if strings.Contains(text, "nomad/jobs/vars/enrich/component") {
		t.Errorf("the image's own task reads a Nomad variable:\n%s", text)
	}

	// apply substitutes the file here: nothing is passed, and the key
	// api_key_env can do without does not hold the task up.
	data, diags := spec.Substitute(file, mustRead(t, file), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	applied, err := Translate(pl, Options{Target: Nomad, Image: "flowctl:test", PipelineData: data, Registry: components.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	job, err = decodeNomadJob(applied.Main().Data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := envOf(t, job), map[string]map[string]bool{"ask/node": {"LOCAL_KEY": false}}; !reflect.DeepEqual(got, want) {
		t.Errorf("apply: env templates %v, want %v", got, want)
	}
	if text := string(warningsText(applied)); strings.Contains(text, "is expanded by each node") || strings.Contains(text, "PREFIX=VALUE") {
		t.Errorf("apply: variables listed:\n%s", text)
	}
}
