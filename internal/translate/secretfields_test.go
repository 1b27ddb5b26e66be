package translate

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hashicorp/go-envparse"
	"github.com/hashicorp/nomad/api"
	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/spec"
)

// onePipeline writes a pipeline around one component entry of role
// (YAML, a list item named c) into dir and loads it.
func onePipeline(t *testing.T, dir, role, comp string) *spec.Pipeline {
	t.Helper()
	gen := "  - name: in\n    type: generate\n    config: {count: 1, data: {id: 1}}\n"
	out := "  - name: out\n    type: stdout\n    inputs: [c]\n"
	var doc string
	switch role {
	case "source":
		doc = "sources:\n" + comp + "sinks:\n" + out
	case "processor":
		doc = "sources:\n" + gen + "processors:\n" + comp + "sinks:\n" + out
	case "sink":
		doc = "sources:\n" + gen + "sinks:\n" + comp
	}
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte("name: t\n"+doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return load(t, file)
}

// TestSecretFieldsPlan covers which files and variables of a built-in's
// config are carried into its container, and the warnings about those
// that are not.
func TestSecretFieldsPlan(t *testing.T) {
	cases := []struct {
		name, role, comp string
		tls              bool
		files            []string // "field rel target"
		envs             []string // "field NAME required"
		warn             string   // a warning that must be given ("" none)
	}{
		{name: "kafka tls and sasl files", role: "source",
			comp:  "  - name: c\n    type: kafka\n    config: {brokers: [k:9093], topics: [t], tls: {ca_file: certs/ca.pem, cert_file: ./certs/c.pem, key_file: certs/../certs/c.key}, sasl: {mechanism: PLAIN, user: u, password_file: pw.txt}}\n",
			files: []string{"tls.ca_file certs/ca.pem /etc/flowctl/certs/ca.pem", "tls.cert_file certs/c.pem /etc/flowctl/certs/c.pem", "tls.key_file certs/c.key /etc/flowctl/certs/c.key", "sasl.password_file pw.txt /etc/flowctl/pw.txt"}},
		{name: "kafka sasl default variable", role: "sink",
			comp: "  - name: c\n    type: kafka\n    inputs: [in]\n    config: {brokers: [k:9093], topic: t, sasl: {mechanism: SCRAM-SHA-256, user: u}}\n",
			envs: []string{"sasl.password_env KAFKA_PASSWORD true"}},
		{name: "kafka sasl named variable", role: "sink",
			comp: "  - name: c\n    type: kafka\n    inputs: [in]\n    config: {brokers: [k:9093], topic: t, sasl: {mechanism: PLAIN, user: u, password_env: PW}}\n",
			envs: []string{"sasl.password_env PW true"}},
		{name: "kafka variable given in env", role: "sink",
			comp: "  - name: c\n    type: kafka\n    inputs: [in]\n    env: {PW: not-secret}\n    config: {brokers: [k:9093], topic: t, sasl: {mechanism: PLAIN, user: u, password_env: PW}}\n"},
		{name: "kafka variable given by a secret", role: "sink",
			comp: "  - name: c\n    type: kafka\n    inputs: [in]\n    secrets: [{name: pw, env: PW}]\n    config: {brokers: [k:9093], topic: t, sasl: {mechanism: PLAIN, user: u, password_env: PW}}\n"},
		{name: "kafka without tls or sasl", role: "source",
			comp: "  - name: c\n    type: kafka\n    config: {brokers: [k:9092], topics: [t], tls: {}}\n"},
		{name: "the same file twice", role: "source",
			comp:  "  - name: c\n    type: kafka\n    config: {brokers: [k:9093], topics: [t], tls: {ca_file: bundle.pem, cert_file: bundle.pem, key_file: bundle.pem}}\n",
			files: []string{"tls.ca_file bundle.pem /etc/flowctl/bundle.pem"}},
		{name: "absolute path in no volume", role: "source",
			comp: "  - name: c\n    type: kafka\n    config: {brokers: [k:9093], topics: [t], tls: {ca_file: /etc/kafka/ca.pem}}\n",
			warn: `source "c" reads /etc/kafka/ca.pem (config.tls.ca_file), which is in no volume or secret of the component: the container does not have it`},
		{name: "absolute path in a volume", role: "source",
			comp: "  - name: c\n    type: kafka\n    volumes: [{host_path: /srv/kafka, container_path: /etc/kafka}]\n    config: {brokers: [k:9093], topics: [t], tls: {ca_file: /etc/kafka/ca.pem}}\n"},
		{name: "absolute path of a secret", role: "processor",
			comp: "  - name: c\n    type: llm\n    inputs: [in]\n    secrets: [{name: openai, host_path: key.txt}]\n    config: {model: m, prompt: '\"x\"', api_key_file: /run/secrets/openai}\n"},
		{name: "relative path a secret of the component provides", role: "source",
			comp: "  - name: c\n    type: kafka\n    secrets: [{name: ca, host_path: other/ca.pem, container_path: /etc/flowctl/certs/ca.pem}]\n    config: {brokers: [k:9093], topics: [t], tls: {ca_file: certs/ca.pem}}\n"},
		{name: "relative path under a volume of the component", role: "source",
			comp: "  - name: c\n    type: kafka\n    volumes: [{host_path: /srv/certs, container_path: /etc/flowctl/certs}]\n    config: {brokers: [k:9093], topics: [t], tls: {ca_file: certs/ca.pem}}\n"},
		{name: "path outside the pipeline's directory", role: "source",
			comp: "  - name: c\n    type: kafka\n    config: {brokers: [k:9093], topics: [t], sasl: {mechanism: PLAIN, user: u, password_file: ../pw.txt}}\n",
			warn: `source "c" reads ../pw.txt (config.sasl.password_file), outside the pipeline file's directory: it is not mounted, so the container does not have it`},
		{name: "file where the node's certificates are", role: "source", tls: true,
			comp: "  - name: c\n    type: kafka\n    config: {brokers: [k:9093], topics: [t], tls: {ca_file: tls/ca.pem}}\n",
			warn: `source "c" reads tls/ca.pem (config.tls.ca_file), which would be mounted at /etc/flowctl/tls/ca.pem, where the node's own files are: it is not mounted`},
		{name: "tls directory without --tls", role: "source",
			comp:  "  - name: c\n    type: kafka\n    config: {brokers: [k:9093], topics: [t], tls: {ca_file: tls/ca.pem}}\n",
			files: []string{"tls.ca_file tls/ca.pem /etc/flowctl/tls/ca.pem"}},
		{name: "llm on api.openai.com", role: "processor",
			comp: "  - name: c\n    type: llm\n    inputs: [in]\n    config: {model: m, prompt: '\"x\"'}\n",
			envs: []string{"api_key_env OPENAI_API_KEY true"}},
		{name: "llm on a local server", role: "processor",
			comp: "  - name: c\n    type: llm\n    inputs: [in]\n    config: {url: 'http://127.0.0.1:11434/v1', model: m, prompt: '\"x\"', api_key_env: LOCAL_KEY}\n",
			envs: []string{"api_key_env LOCAL_KEY false"}},
		{name: "llm key file", role: "processor",
			comp:  "  - name: c\n    type: llm\n    inputs: [in]\n    config: {model: m, prompt: '\"x\"', api_key_file: keys/openai}\n",
			files: []string{"api_key_file keys/openai /etc/flowctl/keys/openai"}},
		{name: "nats credentials", role: "sink",
			comp:  "  - name: c\n    type: nats\n    inputs: [in]\n    config: {subject: s, credentials: nats/user.creds}\n",
			files: []string{"credentials nats/user.creds /etc/flowctl/nats/user.creds"}},
		{name: "an image component's config is its own", role: "sink",
			comp: "  - name: c\n    image: example/kafka-sink:1\n    inputs: [in]\n    config: {credentials: nats/user.creds, sasl: {password_env: X}}\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl := onePipeline(t, t.TempDir(), tc.role, tc.comp)
			opts := caseOptions(DockerCompose, tc.tls)
			p, err := newPlan(pl, opts)
			if err != nil {
				t.Fatal(err)
			}
			n := p.byComponent["c"]
			var files, envs []string
			for _, f := range n.secretFiles {
				files = append(files, f.field+" "+f.rel+" "+f.target)
			}
			for _, e := range n.secretEnvs {
				envs = append(envs, fmt.Sprintf("%s %s %v", e.field, e.name, e.required))
			}
			if !slices.Equal(files, tc.files) {
				t.Errorf("files %q, want %q", files, tc.files)
			}
			if !slices.Equal(envs, tc.envs) {
				t.Errorf("variables %q, want %q", envs, tc.envs)
			}
			var reads []string
			for _, d := range p.warnings {
				if strings.Contains(d.Message, " reads ") {
					reads = append(reads, d.String())
				}
			}
			switch {
			case tc.warn == "" && len(reads) > 0:
				t.Errorf("unexpected warnings:\n%s", strings.Join(reads, "\n"))
			case tc.warn != "" && (len(reads) != 1 || !strings.Contains(reads[0], tc.warn)):
				t.Errorf("warnings:\n%s\nwant one with %q", strings.Join(reads, "\n"), tc.warn)
			}
			// Each file is where the component, loading the pipeline file
			// from pipelineDir, resolves the value as written.
			for _, f := range n.secretFiles {
				if want := path.Join(path.Dir(p.pipelinePath()), configString(n.c.Config, f.field)); f.target != want {
					t.Errorf("%s mounted at %s; the component reads %s", f.field, f.target, want)
				}
			}
		})
	}
}

// secretCase copies testdata/cases/connector-secrets.yaml into a
// directory with every file it names holding a marker, so a test can see
// that no file's content reaches the output.
func secretCase(t *testing.T) (*spec.Pipeline, string, string) {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/cases/connector-secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "connector-secrets.yaml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	const marker = "NOT-IN-THE-OUTPUT-7f3a"
	for _, f := range []string{"certs/ca.pem", "certs/client.pem", "certs/client.key", "secrets/kafka-password", "secrets/openai.txt"} {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(marker+" "+f+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return load(t, file), dir, marker
}

// wantSecretFiles are the files of connector-secrets.yaml carried into
// containers, by component: the config value as written, its field.
var wantSecretFiles = map[string][][2]string{
	"orders":  {{"certs/ca.pem", "tls.ca_file"}, {"certs/client.pem", "tls.cert_file"}, {"certs/client.key", "tls.key_file"}, {"secrets/kafka-password", "sasl.password_file"}},
	"publish": {{"./certs/ca.pem", "tls.ca_file"}},
}

// wantSecretEnvs are its variables, by component: name and whether the
// component needs it to open.
var wantSecretEnvs = map[string]map[string]bool{
	"label":   {"OPENAI_API_KEY": true},
	"local":   {"LOCAL_LLM_KEY": false},
	"publish": {"KAFKA_PASSWORD": true},
}

// checkSecretWarnings checks the warnings every target gives about the
// files that do not reach a container.
func checkSecretWarnings(t *testing.T, res *Result) {
	t.Helper()
	text := string(warningsText(res))
	for _, w := range []string{
		`source "events" reads ../shared/nats.creds (config.credentials), outside the pipeline file's directory`,
		`sink "audit" reads /etc/nats/audit.creds (config.credentials), which is in no volume or secret of the component`,
	} {
		if !strings.Contains(text, w) {
			t.Errorf("no warning %q in\n%s", w, text)
		}
	}
	if strings.Contains(text, "/run/secrets/openai (config.api_key_file)") {
		t.Errorf("a warning about api_key_file, which a secret of the component provides:\n%s", text)
	}
}

// TestSecretFieldsCompose checks, as compose-go reads the Compose file,
// that each file is a file secret of the service mounted where the
// component reads it, from the file next to the pipeline, that each
// variable is passed on without a value, and that no content leaks.
func TestSecretFieldsCompose(t *testing.T) {
	pl, dir, marker := secretCase(t)
	opts := caseOptions(DockerCompose, false)
	opts.SourceDir = dir // the pipeline's directory as seen from the output
	res, err := Translate(pl, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkSecretWarnings(t, res)
	if bytes.Contains(res.Main().Data, []byte(marker)) {
		t.Fatal("a secret's content is in the Compose file")
	}
	out := t.TempDir()
	if err := res.WriteDir(out); err != nil {
		t.Fatal(err)
	}
	proj, err := loadCompose(t, out, res.Main().Data)
	if err != nil {
		t.Fatalf("compose-go: %v\n%s", err, res.Main().Data)
	}
	for comp, files := range wantSecretFiles {
		svc := proj.Services[comp]
		for _, f := range files {
			target := path.Join(pipelineDir, f[0])
			found := false
			for _, s := range svc.Secrets {
				if s.Target != target {
					continue
				}
				found = true
				if got, want := proj.Secrets[s.Source].File, filepath.Join(dir, filepath.FromSlash(path.Clean(f[0]))); got != want {
					t.Errorf("service %s: secret %s at %s is the file %s, want %s", comp, s.Source, target, got, want)
				}
				if b, err := os.ReadFile(proj.Secrets[s.Source].File); err != nil || !bytes.Contains(b, []byte(marker)) {
					t.Errorf("service %s: secret %s: %v", comp, s.Source, err)
				}
			}
			if !found {
				t.Errorf("service %s: no secret at %s (config.%s: %s); it has %+v", comp, target, f[1], f[0], svc.Secrets)
			}
		}
	}
	for comp, envs := range wantSecretEnvs {
		for name := range envs {
			v, ok := proj.Services[comp].Environment[name]
			if !ok || v != nil {
				t.Errorf("service %s: environment %s = %v (set %v), want a key without a value", comp, name, v, ok)
			}
		}
	}
	if len(proj.Services["orders"].Secrets) != 4 || len(proj.Services["publish"].Secrets) != 1 || proj.Services["orders"].Secrets[0].Source != proj.Services["publish"].Secrets[0].Source {
		t.Errorf("the CA is not one secret shared by orders and publish: %+v / %+v", proj.Services["orders"].Secrets, proj.Services["publish"].Secrets)
	}
}

// TestSecretFieldsKubernetes checks each file is a read-only Secret
// volume (one key, subPath) where the component reads it, listed by
// KubernetesSecrets with the file next to the pipeline, that each
// variable comes from PIPELINE-env (optional only where the component
// does without), and that no content leaks.
func TestSecretFieldsKubernetes(t *testing.T) {
	pl, dir, marker := secretCase(t)
	opts := caseOptions(Kubernetes, false)
	opts.HostDir = dir
	res, err := Translate(pl, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkSecretWarnings(t, res)
	if bytes.Contains(res.Main().Data, []byte(marker)) {
		t.Fatal("a secret's content is in the manifest")
	}
	m, err := decodeManifest(res.Main().Data)
	if err != nil {
		t.Fatal(err)
	}
	sources, err := KubernetesSecrets(pl, opts)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]SecretSource{}
	for _, s := range sources {
		byKey[s.Name+"/"+s.Key] = s
	}
	pods := map[string]workload{}
	for _, w := range m.workloads() {
		pods[w.name] = w
	}
	for comp, files := range wantSecretFiles {
		pod := pods[comp].template.Spec
		for _, f := range files {
			target := path.Join(pipelineDir, f[0])
			found := false
			for _, vm := range pod.Containers[0].VolumeMounts {
				if vm.MountPath != target {
					continue
				}
				found = true
				var secret string
				for _, v := range pod.Volumes {
					if v.Name == vm.Name && v.Secret != nil {
						secret = v.Secret.SecretName
					}
				}
				src, ok := byKey[secret+"/"+vm.SubPath]
				if !vm.ReadOnly || !ok || src.File != filepath.ToSlash(filepath.Join(dir, filepath.FromSlash(path.Clean(f[0])))) {
					t.Errorf("%s: %s is mounted from Secret %q key %q (read-only %v), which KubernetesSecrets gives as %+v", comp, target, secret, vm.SubPath, vm.ReadOnly, src)
				}
			}
			if !found {
				t.Errorf("%s: nothing is mounted at %s (config.%s: %s)", comp, target, f[1], f[0])
			}
		}
	}
	for comp, envs := range wantSecretEnvs {
		for name, required := range envs {
			found := false
			for _, e := range pods[comp].template.Spec.Containers[0].Env {
				if e.Name != name {
					continue
				}
				found = true
				ref := e.ValueFrom.SecretKeyRef
				optional := ref.Optional != nil && *ref.Optional
				src, listed := byKey[ref.Name+"/"+ref.Key]
				if e.Value != "" || ref.Name != "connector-secrets-env" || ref.Key != name || optional == required || !listed || src.Env != name || src.Optional == required {
					t.Errorf("%s: env %s from %+v (optional %v), listed as %+v; want key %s of connector-secrets-env, required %v", comp, name, ref, optional, src, name, required)
				}
			}
			if !found {
				t.Errorf("%s: no env %s", comp, name)
			}
		}
	}
	// A ${VAR} of the file, with a default, stays optional.
	if s := byKey["connector-secrets-env/KAFKA_USER"]; !s.Optional || s.Env != "KAFKA_USER" {
		t.Errorf("KAFKA_USER listed as %+v", s)
	}
}

// TestSecretFieldsNomad checks each file is rendered from the task's
// Nomad variable and mounted read-only where the component reads it, and
// each variable rendered into the task's environment, waiting for the
// Nomad variable only when the component needs it.
func TestSecretFieldsNomad(t *testing.T) {
	pl, _, marker := secretCase(t)
	res := translateNomad(t, pl)
	checkSecretWarnings(t, res)
	if bytes.Contains(res.Main().Data, []byte(marker)) {
		t.Fatal("a secret's content is in the job")
	}
	job, err := decodeNomadJob(res.Main().Data)
	if err != nil {
		t.Fatal(err)
	}
	checkNomadJob(t, job)
	tasks := map[string]int{}
	for i, g := range job.TaskGroups {
		tasks[*g.Name] = i
	}
	for comp, files := range wantSecretFiles {
		task := job.TaskGroups[tasks[comp]].Tasks[0]
		vols := toStrings(task.Config["volumes"])
		for _, f := range files {
			target := path.Join(pipelineDir, f[0])
			var src string
			for _, v := range vols {
				if s, ok := strings.CutSuffix(v, ":"+target+":ro"); ok {
					src = s
				}
			}
			rendered := false
			for _, tp := range task.Templates {
				rendered = rendered || (src != "" && *tp.DestPath == src && strings.Contains(*tp.EmbeddedTmpl, "nomadVar \"nomad/jobs/connector-secrets/"+comp+"/node\""))
			}
			if !rendered {
				t.Errorf("%s: %s (config.%s) is not mounted read-only from a template of the task's variable: volumes %q", comp, target, f[1], vols)
			}
		}
	}
	for comp, envs := range wantSecretEnvs {
		task := job.TaskGroups[tasks[comp]].Tasks[0]
		for name, required := range envs {
			found := false
			for _, tp := range task.Templates {
				if tp.Envvars == nil || !*tp.Envvars || *tp.DestPath != nomadSecretsEnv || !strings.Contains(*tp.EmbeddedTmpl, name+"={{ (index . ") {
					continue
				}
				found = true
				if waits := !strings.Contains(*tp.EmbeddedTmpl, "nomadVarExists"); waits != required {
					t.Errorf("%s: env template %q: waits for the variable %v, want %v", comp, *tp.EmbeddedTmpl, waits, required)
				}
				// Rendered as consul-template would, with the variable
				// there and (for one the component does without) absent.
				varPath := "nomad/jobs/connector-secrets/" + comp + "/node"
				got := renderSecretsEnv(t, tp, varPath, map[string]string{name: trickySecret})
				if env := parseNomadEnv(t, got); len(env) != 1 || env[name] != trickySecret {
					t.Errorf("%s: env template renders %q, which Nomad reads as %q", comp, got, env)
				}
				if !required {
					if got := renderSecretsEnv(t, tp, varPath, nil); len(parseNomadEnv(t, got)) != 0 {
						t.Errorf("%s: without the variable the env template renders %q", comp, got)
					}
				}
			}
			if !found {
				t.Errorf("%s: no env template sets %s", comp, name)
			}
		}
	}
	if !strings.Contains(string(warningsText(res)), "nomad var put nomad/jobs/connector-secrets/orders/node certs_ca.pem=@certs/ca.pem certs_client.pem=@certs/client.pem certs_client.key=@certs/client.key secrets_kafka-password=@secrets/kafka-password") {
		t.Errorf("no nomad var put for orders' files in\n%s", warningsText(res))
	}
}

// renderSecretsEnv renders a template with Go's text/template, as
// Nomad's consul-template does, with the Nomad variable at varPath
// holding items (nil: there is no variable; nomadVar would block, so it
// fails the test). Items are what consul-template's nomadVar gives: a
// struct with the Key and Value, printed as its Value; toJSON is its
// toJSON.
func renderSecretsEnv(t *testing.T, tpl *api.Template, varPath string, items map[string]string) string {
	t.Helper()
	var vars map[string]nomadVarItem
	if items != nil {
		vars = map[string]nomadVarItem{}
		for k, v := range items {
			vars[k] = nomadVarItem{Key: k, Value: v}
		}
	}
	tm, err := template.New("t").Funcs(template.FuncMap{
		"nomadVarExists": func(p string) bool { return p == varPath && items != nil },
		"nomadVar": func(p string) map[string]nomadVarItem {
			if p != varPath || items == nil {
				t.Errorf("%s: nomadVar %q would wait for a variable that does not exist", *tpl.DestPath, p)
			}
			return vars
		},
		"toJSON": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(bytes.TrimSpace(b)), err
		},
	}).Parse(*tpl.EmbeddedTmpl)
	if err != nil {
		t.Fatalf("template %s: %v", *tpl.DestPath, err)
	}
	var b strings.Builder
	if err := tm.Execute(&b, nil); err != nil {
		t.Fatalf("template %s: %v", *tpl.DestPath, err)
	}
	return b.String()
}

// nomadVarItem is an item of consul-template's nomadVar.
type nomadVarItem struct{ Key, Value string }

func (v nomadVarItem) String() string { return v.Value }

// parseNomadEnv reads a rendered env template as Nomad does, with
// go-envparse.
func parseNomadEnv(t *testing.T, rendered string) map[string]string {
	t.Helper()
	env, err := envparse.Parse(strings.NewReader(rendered))
	if err != nil {
		t.Fatalf("Nomad cannot read the env template it rendered, %q: %v", rendered, err)
	}
	return env
}

// trickySecret is a value that an env file holds only when quoted: a #,
// quotes, a backslash, spaces at both ends, a newline, what JSON escapes
// for HTML and a character beyond ASCII.
const trickySecret = " p#ss w'o\"rd\\ <&> \u00e9\n2 "

// composeProject translates the secret case for Compose into deploy/
// next to the pipeline file (SourceDir ".."), as `flowctl translate -o
// deploy` leaves it, and returns that directory.
func composeProject(t *testing.T, image string) (dir, deploy, marker string) {
	t.Helper()
	pl, dir, marker := secretCase(t)
	opts := caseOptions(DockerCompose, false)
	opts.Image, opts.SourceDir = image, ".."
	res, err := Translate(pl, opts)
	if err != nil {
		t.Fatal(err)
	}
	deploy = filepath.Join(dir, "deploy")
	if err := res.WriteDir(deploy); err != nil {
		t.Fatal(err)
	}
	return dir, deploy, marker
}

// envWithout is this process's environment without the given variables,
// plus extra.
func envWithout(drop []string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, name) {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// TestSecretFieldsDockerComposeConfig has docker-compose 1.29 itself
// resolve the Compose file (`docker-compose config`, no daemon needed):
// each secret's file is the one next to the pipeline file and its target
// the path the component resolves its config value to; a variable set
// where docker-compose runs reaches the service, an unset one does not.
func TestSecretFieldsDockerComposeConfig(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed")
	}
	dir, deploy, _ := composeProject(t, "flowctl:test")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-p", "flowctlsecrets", "config")
	cmd.Dir = deploy
	cmd.Env = envWithout([]string{"KAFKA_PASSWORD", "OPENAI_API_KEY", "LOCAL_LLM_KEY"}, "DOCKER_HOST=unix:///nonexistent", "KAFKA_PASSWORD=from-the-shell")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var cfg struct {
		Services map[string]struct {
			Environment map[string]*string
			Secrets     []struct{ Source, Target string }
		}
		Secrets map[string]struct{ File string }
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for comp, files := range wantSecretFiles {
		for _, f := range files {
			target := path.Join(pipelineDir, f[0])
			found := false
			for _, s := range cfg.Services[comp].Secrets {
				if s.Target == target {
					found = true
					if got, want := cfg.Secrets[s.Source].File, filepath.Join(dir, filepath.FromSlash(path.Clean(f[0]))); got != want {
						t.Errorf("%s: %s comes from %s, want %s", comp, target, got, want)
					}
				}
			}
			if !found {
				t.Errorf("%s: no secret at %s (config.%s: %s) in\n%s", comp, target, f[1], f[0], out)
			}
		}
	}
	if v := cfg.Services["publish"].Environment["KAFKA_PASSWORD"]; v == nil || *v != "from-the-shell" {
		t.Errorf("publish: KAFKA_PASSWORD = %v, want the shell's value", v)
	}
	if v := cfg.Services["label"].Environment["OPENAI_API_KEY"]; v != nil {
		t.Errorf("label: OPENAI_API_KEY = %q although the shell has none", *v)
	}
}

// TestSecretFieldsUnderDocker creates the translated services with Docker
// (docker-compose up --no-start: nothing runs, so the image is a FROM
// scratch one built here) and reads back from each container what its
// component would read: the file at the path its config value resolves
// to, read-only, with the host file's content, and the variable in its
// environment when the shell running docker-compose has it.
func TestSecretFieldsUnderDocker(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("mounts host paths as Linux sees them")
	}
	for _, c := range [][]string{{"docker", "info"}, {"docker-compose", "version"}} {
		if out, err := runBounded(t, "", nil, c[0], c[1:]...); err != nil {
			t.Skipf("%s fails, so no containers can be created here: %v %s", strings.Join(c, " "), err, out)
		}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "flowctlsecrets" + hex.EncodeToString(rnd[:])
	image := name + ":test"
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY Dockerfile /Dockerfile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runBounded(t, ctxDir, nil, "docker", "build", "-q", "-t", image, "."); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = runBounded(t, "", nil, "docker", "rmi", "-f", image) })
	_, deploy, marker := composeProject(t, image)
	env := envWithout([]string{"KAFKA_PASSWORD", "OPENAI_API_KEY", "LOCAL_LLM_KEY"}, "KAFKA_PASSWORD=from-the-shell")
	t.Cleanup(func() {
		if out, err := runBounded(t, deploy, env, "docker-compose", "-p", name, "down", "-v", "--remove-orphans", "-t", "1"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	if out, err := runBounded(t, deploy, env, "docker-compose", "-p", name, "up", "--no-start"); err != nil {
		t.Fatalf("docker-compose up --no-start: %v\n%s", err, out)
	}
	container := func(service string) string {
		out, err := runBounded(t, "", nil, "docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+name, "--filter", "label=com.docker.compose.service="+service)
		if err != nil || len(strings.Fields(out)) != 1 {
			t.Fatalf("container of %s: %v %q", service, err, out)
		}
		return strings.TrimSpace(out)
	}
	for comp, files := range wantSecretFiles {
		id := container(comp)
		out, err := runBounded(t, "", nil, "docker", "inspect", "--format", "{{json .Mounts}}", id)
		if err != nil {
			t.Fatalf("docker inspect: %v\n%s", err, out)
		}
		var mounts []struct {
			Destination string
			RW          bool
		}
		if err := json.Unmarshal([]byte(out), &mounts); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, f := range files {
			target := path.Join(pipelineDir, f[0])
			for _, m := range mounts {
				if m.Destination == target && m.RW {
					t.Errorf("%s: %s is mounted read-write", comp, target)
				}
			}
			tarball, err := runBounded(t, "", nil, "docker", "cp", id+":"+target, "-")
			if err != nil {
				t.Errorf("%s: docker cp %s: %v\n%s", comp, target, err, tarball)
				continue
			}
			tr := tar.NewReader(strings.NewReader(tarball))
			if _, err := tr.Next(); err != nil {
				t.Fatalf("%s: %s: %v", comp, target, err)
			}
			content, err := io.ReadAll(tr)
			if err != nil || string(content) != marker+" "+path.Clean(f[0])+"\n" {
				t.Errorf("%s: %s (config.%s: %s) holds %q (%v), want the host file's content", comp, target, f[1], f[0], content, err)
			}
		}
	}
	for comp, envs := range wantSecretEnvs {
		out, err := runBounded(t, "", nil, "docker", "inspect", "--format", "{{json .Config.Env}}", container(comp))
		if err != nil {
			t.Fatalf("docker inspect: %v\n%s", err, out)
		}
		var got []string
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for name := range envs {
			want := ""
			if name == "KAFKA_PASSWORD" {
				want = name + "=from-the-shell"
			}
			has := ""
			for _, kv := range got {
				if strings.HasPrefix(kv, name+"=") {
					has = kv
				}
			}
			if has != want {
				t.Errorf("%s: environment has %q, want %q (the shell running docker-compose sets only KAFKA_PASSWORD)", comp, has, want)
			}
		}
	}
}

// runBounded runs a command for at most three minutes and returns its
// standard output, and its standard error too when it fails.
func runBounded(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}
