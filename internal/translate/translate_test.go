package translate

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCase is a pipeline file translated with fixed options.
type goldenCase struct {
	name string
	file string
}

// goldenCases are every example and every acceptance case of testdata/cases.
func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	var out []goldenCase
	add := func(pattern string, name func(string) string) {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.yaml") {
				continue // a pipeline test (flowctl test), not a pipeline
			}
			if part := strings.TrimSuffix(filepath.Base(f), ".yaml"); (part == "duckdb" || part == "arrow") && !slices.Contains(components.OptionalParts(), part) {
				continue // needs a flowctl built with -tags PART to validate
			}
			out = append(out, goldenCase{name: name(f), file: filepath.ToSlash(f)})
		}
	}
	base := func(f string) string { return strings.TrimSuffix(filepath.Base(f), ".yaml") }
	add("../../examples/*.yaml", func(f string) string { return "example-" + base(f) })
	add("../../examples/*/pipeline.yaml", func(f string) string { return "example-" + filepath.Base(filepath.Dir(f)) })
	add("testdata/cases/*.yaml", base)
	if len(out) < 15 {
		t.Fatalf("found only %d pipeline files to translate", len(out))
	}
	return out
}

// load reads a pipeline file with no environment, so ${VAR:-default}
// takes its default whatever the machine has set.
func load(t *testing.T, file string) *spec.Pipeline {
	t.Helper()
	return loadEnv(t, file, nil)
}

// loadEnv reads a pipeline file with env as its whole environment.
func loadEnv(t *testing.T, file string, env map[string]string) *spec.Pipeline {
	t.Helper()
	pl, diags, err := spec.Load(file, spec.Options{
		Registry:  components.NewRegistry(),
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	if err != nil {
		t.Fatal(err)
	}
	if diags.HasErrors() {
		t.Fatalf("%s does not validate:\n%v", file, diags.Err())
	}
	return pl
}

func translateCase(t *testing.T, pl *spec.Pipeline, tls bool) *Result {
	t.Helper()
	return translateTo(t, pl, DockerCompose, tls)
}

// caseOptions are the fixed options of the golden tests: HostDir is fixed
// so that no checkout path reaches a golden file.
func caseOptions(target Target, tls bool) Options {
	return Options{
		Target: target, Image: "flowctl:test", SourceDir: ".", HostDir: "/srv/pipeline",
		Registry: components.NewRegistry(), TLS: tls,
		Now: func() time.Time { return time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC) },
	}
}

func translateTo(t *testing.T, pl *spec.Pipeline, target Target, tls bool) *Result {
	t.Helper()
	res, err := Translate(pl, caseOptions(target, tls))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// goldenTargets name each target's golden files: the main file's suffix
// and the warnings' (Compose's predate the others and keep their names).
var goldenTargets = []struct {
	target         Target
	main, warnings string
}{
	{DockerCompose, ".compose.yml", ".warnings.txt"},
	{Kubernetes, ".kubernetes.yaml", ".kubernetes.warnings.txt"},
}

func warningsText(res *Result) []byte {
	var b bytes.Buffer
	for _, d := range res.Warnings {
		fmt.Fprintln(&b, d.String())
	}
	return b.Bytes()
}

// TestTranslateGolden compares the main file and the warnings of every
// example and acceptance case, for every target, with testdata/golden
// (-update rewrites them), and checks the output is the same on a second
// run.
func TestTranslateGolden(t *testing.T) {
	for _, gt := range goldenTargets {
		for _, tc := range goldenCases(t) {
			t.Run(string(gt.target)+"/"+tc.name, func(t *testing.T) {
				pl := load(t, tc.file)
				res := translateTo(t, pl, gt.target, false)
				again := translateTo(t, pl, gt.target, false)
				if !bytes.Equal(res.Main().Data, again.Main().Data) || !bytes.Equal(warningsText(res), warningsText(again)) {
					t.Fatal("two translations of the same file differ")
				}
				golden(t, filepath.Join("testdata", "golden", tc.name+gt.main), res.Main().Data)
				golden(t, filepath.Join("testdata", "golden", tc.name+gt.warnings), warningsText(res))
			})
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
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
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update if the change is meant):\n--- got\n%s", path, got)
	}
}

// writeProject writes a translation next to a copy of its pipeline file,
// as `flowctl translate -o` leaves it, and returns the directory.
func writeProject(t *testing.T, pl *spec.Pipeline, res *Result) string {
	t.Helper()
	dir := t.TempDir()
	if err := res.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pl.File)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(pl.File)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadCompose decodes a Compose file with compose-go, schema validation on
// (unknown keys are rejected) and consistency checks on.
func loadCompose(t *testing.T, dir string, data []byte) (*types.Project, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, ComposeFile), Content: data}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("flowctl-test", true) })
}

// TestTranslateComposeGoLoader decodes every generated file with
// compose-go and checks what it read against the pipeline: one node service
// per component (plus one per image), env exactly as written, ports
// published only for hostPort, every named volume and secret declared.
func TestTranslateComposeGoLoader(t *testing.T) {
	for _, tc := range goldenCases(t) {
		for _, tls := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/tls=%v", tc.name, tls), func(t *testing.T) {
				pl := load(t, tc.file)
				res := translateCase(t, pl, tls)
				dir := writeProject(t, pl, res)
				proj, err := loadCompose(t, dir, res.Main().Data)
				if err != nil {
					t.Fatalf("compose-go rejects the file: %v\n%s", err, res.Main().Data)
				}
				checkProject(t, pl, proj, tls)
			})
		}
	}
}

func checkProject(t *testing.T, pl *spec.Pipeline, proj *types.Project, tls bool) {
	t.Helper()
	comps := pl.Components()
	if pl.DeadLetter != nil {
		comps = append(comps, pl.DeadLetter)
	}
	want := 0
	for _, c := range comps {
		want++
		if c.Runner == spec.RunContainer {
			want++
		}
	}
	if len(proj.Services) != want {
		t.Fatalf("%d services, want %d", len(proj.Services), want)
	}
	for _, c := range comps {
		name := dnsName(c.Name, maxDNSLabel)
		node, ok := proj.Services[name]
		if !ok {
			t.Fatalf("no service %q for %s %q", name, c.Role, c.Name)
		}
		if node.Image != "flowctl:test" {
			t.Errorf("service %q runs %q", name, node.Image)
		}
		cmd := strings.Join(node.Command, " ")
		if !strings.Contains(cmd, "node -f "+pipelineDir+"/"+filepath.Base(pl.File)+" --component "+c.Name+" ") {
			t.Errorf("service %q command %q does not run the component", name, cmd)
		}
		if strings.Contains(cmd, "--insecure") == tls {
			t.Errorf("service %q command %q: --insecure with tls=%v", name, cmd, tls)
		}
		if node.HealthCheck == nil || strings.Join(node.HealthCheck.Test, " ") != "CMD /flowctl health http://127.0.0.1:9090/healthz" {
			t.Errorf("service %q health check %+v", name, node.HealthCheck)
		}
		code := node
		if c.Runner == spec.RunContainer {
			code = proj.Services[name+sidecarSuffix]
			if code.Image != c.Image {
				t.Errorf("service %q runs %q, want the component's image %q", code.Name, code.Image, c.Image)
			}
		}
		env := map[string]string{}
		for k, v := range code.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		wantEnv := map[string]string{}
		for k, v := range c.Env {
			wantEnv[k] = v
		}
		if _, set := c.Env["PORT"]; !set && c.Runner == spec.RunContainer {
			// Where its node dials it: the sidecar serves there.
			wantEnv["PORT"] = fmt.Sprintf("0.0.0.0:%d", componentPortOf(c))
			if cmd := strings.Join(node.Command, " "); !strings.Contains(cmd, fmt.Sprintf("--peer %s=%s:", c.Name, code.Name)) {
				t.Errorf("service %q command %q does not reach its component at %s", name, cmd, code.Name)
			}
		}
		if v := nodeMemLimit(c, c.Resources.Limits.Memory); v != "" {
			wantEnv["GOMEMLIMIT"] = v // nine tenths of the container's limit
		}
		if fmt.Sprint(env) != fmt.Sprint(wantEnv) {
			t.Errorf("service %q environment %v, want %v", code.Name, env, wantEnv)
		}
		if _, ok := env["FLOWCTL_ENDPOINT"]; ok && c.Env["FLOWCTL_ENDPOINT"] == "" {
			t.Errorf("service %q is told a FLOWCTL_ENDPOINT: nothing serves one", code.Name)
		}
		published := 0
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				published++
			}
		}
		if len(code.Ports) != published {
			t.Errorf("service %q publishes %d ports, the file asks for %d", code.Name, len(code.Ports), published)
		}
		replicas := 1
		if _, set := c.Positions["replicas"]; set {
			replicas = c.Replicas
		}
		if got := node.GetScale(); got != replicas {
			t.Errorf("service %q scale %d, want %d", name, got, replicas)
		}
		// Its own secrets, and the files its config reads secrets from.
		if want := len(c.Secrets) + len(secretPlan(t, pl)[c.Name].secretFiles); len(code.Secrets) != want {
			t.Errorf("service %q has %d secrets, want %d", code.Name, len(code.Secrets), want)
		}
		for _, e := range secretPlan(t, pl)[c.Name].secretEnvs {
			if v, ok := code.Environment[e.name]; !ok || v != nil {
				t.Errorf("service %q: %s (config.%s) is not passed on without a value: %v", code.Name, e.name, e.field, v)
			}
		}
	}
}

// secretPlan is the plan of pl's nodes by component name, for what they
// carry of their built-ins' secrets (secretfields.go).
func secretPlan(t *testing.T, pl *spec.Pipeline) map[string]*node {
	t.Helper()
	p, err := newPlan(pl, caseOptions(DockerCompose, false))
	if err != nil {
		t.Fatal(err)
	}
	return p.byComponent
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// TestTranslateComposeGoLoaderRejects shows the loader check has teeth:
// the keys docker-compose 1.29 rejects are rejected here too.
func TestTranslateComposeGoLoaderRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown key":          "services:\n  a:\n    image: x\n    replicas: 2\n",
		"undeclared volume":    "services:\n  a:\n    image: x\n    volumes: [{type: volume, source: nope, target: /n}]\n",
		"depends on a missing": "services:\n  a:\n    image: x\n    depends_on: [b]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := loadCompose(t, t.TempDir(), []byte(doc)); err == nil {
				t.Fatalf("compose-go took:\n%s", doc)
			}
		})
	}
}

// TestTranslateDockerComposeConfig runs docker-compose's own `config -q`
// on every generated file.
func TestTranslateDockerComposeConfig(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed")
	}
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			pl := load(t, tc.file)
			res := translateCase(t, pl, true)
			dir := writeProject(t, pl, res)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--project-name", "flowctltest", "-f", filepath.Join(dir, ComposeFile), "config", "-q")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("docker-compose config: %v\n%s\n%s", err, out, res.Main().Data)
			}
		})
	}
}

// TestTranslateTLS checks the certificates: one CA, one certificate per
// node service for its hostname, signed by the CA, keys not readable by
// others, and mounted into that service only.
func TestTranslateTLS(t *testing.T) {
	pl := load(t, "testdata/cases/image.yaml")
	res := translateCase(t, pl, true)
	files := map[string]File{}
	for _, f := range res.Files {
		files[f.Name] = f
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(files["tls/ca.crt"].Data) {
		t.Fatal("tls/ca.crt holds no certificate")
	}
	services := []string{"ledger-source", "py", "out"}
	for _, svc := range services {
		block, _ := pem.Decode(files["tls/"+svc+".crt"].Data)
		if block == nil {
			t.Fatalf("no certificate for %s", svc)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: svc, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("certificate of %s: %v", svc, err)
		}
		if m := files["tls/"+svc+".key"].Mode; m != 0o600 {
			t.Errorf("key of %s has mode %v", svc, m)
		}
		if !bytes.Contains(res.Main().Data, []byte("source: ./tls/"+svc+".key")) {
			t.Errorf("key of %s is not mounted", svc)
		}
	}
	if _, ok := files["tls/ledger-source-component.crt"]; ok {
		t.Error("the image's own service got a node certificate")
	}
	if bytes.Contains(res.Main().Data, []byte("ca.key")) {
		t.Error("the CA key is mounted into a service")
	}
}

// TestTranslateErrors covers what makes a translation impossible.
func TestTranslateErrors(t *testing.T) {
	dir := t.TempDir()
	clash := filepath.Join(dir, "clash.yaml")
	if err := os.WriteFile(clash, []byte("name: clash\nsources:\n  - name: In_Put\n    type: generate\n    config: {count: 1, data: {kind: ping}}\nsinks:\n  - name: in-put\n    type: stdout\n    inputs: [In_Put]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pl := load(t, clash)
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"two components one service", Options{Target: DockerCompose, Image: "i"}, "clash.yaml:7:5: sink \"in-put\" and source \"In_Put\" (line 3) both become service \"in-put\""},
		{"unknown target", Options{Target: "swarm", Image: "i"}, `unknown target "swarm": use docker-compose, kubernetes`},
		{"no image", Options{Target: DockerCompose}, "no image"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := pl
			if tc.name != "two components one service" {
				p = load(t, "testdata/cases/env.yaml")
			}
			_, err := Translate(p, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestTranslateDockerfile checks the image files: FROM scratch, the
// static binary and an nsswitch.conf that reads /etc/hosts first.
func TestTranslateDockerfile(t *testing.T) {
	res, err := Translate(load(t, "testdata/cases/env.yaml"), Options{Target: DockerCompose, Image: "flowctl:v9", Dockerfile: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	files := map[string]string{}
	for _, f := range res.Files {
		names = append(names, f.Name)
		files[f.Name] = string(f.Data)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "Dockerfile docker-compose.yml nsswitch.conf" {
		t.Fatalf("files %v", names)
	}
	for _, want := range []string{"\nFROM scratch\n", "\nCOPY flowctl /flowctl\n", "\nCOPY nsswitch.conf /etc/nsswitch.conf\n", "docker build -t flowctl:v9 ."} {
		if !strings.Contains(files["Dockerfile"], want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if files["nsswitch.conf"] != "hosts: files dns\n" {
		t.Errorf("nsswitch.conf is %q", files["nsswitch.conf"])
	}
}

func TestTranslateQuantities(t *testing.T) {
	cpus := []struct{ in, want string }{{"100m", "0.1"}, {"1", "1"}, {"1.5", "1.5"}, {"250m", "0.25"}, {"0", ""}, {"lots", ""}, {"-1", ""}}
	for _, c := range cpus {
		got, err := composeCPUs(c.in)
		if (err != nil) != (c.want == "") || got != c.want {
			t.Errorf("composeCPUs(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	mems := []struct{ in, want string }{{"512Mi", "512m"}, {"1Gi", "1g"}, {"64Ki", "64k"}, {"1G", "1000000000"}, {"1.5Gi", "1610612736"}, {"2Ti", "2199023255552"}, {"1000", "1000"}, {"1e3", ""}, {"12XB", ""}, {"0", ""}}
	for _, c := range mems {
		got, err := composeMemory(c.in)
		if (err != nil) != (c.want == "") || got != c.want {
			t.Errorf("composeMemory(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestTranslateDNSName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"ledger", "ledger"}, {"Ledger_Source", "ledger-source"}, {"a..b", "a-b"}, {"-x-", "x"},
		{"日本", "component"}, {strings.Repeat("a", 70), strings.Repeat("a", 63)}, {"9lives", "9lives"},
	}
	for _, c := range cases {
		if got := dnsName(c.in, maxDNSLabel); got != c.want {
			t.Errorf("dnsName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// componentPortOf is the port translate picks for an image component's
// container (componentPort, without its warning).
func componentPortOf(c *spec.Component) int {
	return componentPort(&plan{p: &spec.Pipeline{}}, &node{c: c})
}

// TestTranslateComposeFileVariables: a ${VAR} without a default reaches
// every node service as a key without a value (docker-compose passes it on
// from its environment), with one warning; an image component's own
// service, a variable with a default, the container's own HOSTNAME and a
// variable the component's env sets are left alone.
func TestTranslateComposeFileVariables(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vars.yaml")
	if err := os.WriteFile(file, []byte(`name: vars
sources:
  - name: gen
    type: generate
    config: {count: ${COUNT}, data: {host: "${HOSTNAME}", tier: "${TIER:-free}"}}
processors:
  - name: enrich
    image: ghcr.io/example/enrich:1
    inputs: [gen]
    ports: [{name: grpc, containerPort: 50051}]
sinks:
  - name: out
    type: stdout
    inputs: [enrich]
    env: {COUNT: "3"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	pl := loadEnv(t, file, map[string]string{"COUNT": "5", "HOSTNAME": "laptop"})
	res := translateTo(t, pl, DockerCompose, false)
	var doc struct {
		Services map[string]struct {
			Environment map[string]*string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(res.Files[0].Data, &doc); err != nil {
		t.Fatal(err)
	}
	for svc, want := range map[string]map[string]string{
		"gen":              {"COUNT": "<none>"},
		"enrich":           {"COUNT": "<none>"},
		"enrich-component": {"PORT": "0.0.0.0:50051"}, // the image's: flowctl's variables are not its business
		"out":              {"COUNT": "3"},
	} {
		s, ok := doc.Services[svc]
		if !ok {
			t.Fatalf("no service %q in:\n%s", svc, res.Files[0].Data)
		}
		got := map[string]string{}
		for k, v := range s.Environment {
			got[k] = "<none>"
			if v != nil {
				got[k] = *v
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("service %s: environment %v, want %v", svc, got, want)
		}
	}
	var warned []string
	for _, d := range res.Warnings {
		if strings.Contains(d.String(), "is expanded by each node") {
			warned = append(warned, d.String())
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "${COUNT}") || !strings.Contains(warned[0], "vars.yaml:5:") {
		t.Errorf("variable warnings: %q, want one for ${COUNT} at line 5", warned)
	}
}

// TestNodeMemLimit: a node that runs its component in-process gets nine
// tenths of its container's memory limit as GOMEMLIMIT; an image's or a
// command's node, one whose env: sets GOMEMLIMIT, and one without a limit
// (or with one that is not a quantity) get none.
func TestNodeMemLimit(t *testing.T) {
	builtin := &spec.Component{Runner: spec.RunBuiltin}
	for _, tc := range []struct {
		name  string
		c     *spec.Component
		limit string
		want  string
	}{
		{"512Mi", builtin, "512Mi", "460MiB"},
		{"1G", builtin, "1G", "858MiB"},
		{"2Gi", builtin, "2Gi", "1843MiB"},
		{"bytes", builtin, "104857600", "90MiB"},
		{"under a MiB", builtin, "1Mi", ""},
		{"none", builtin, "", ""},
		{"not a quantity", builtin, "lots", ""},
		{"image", &spec.Component{Runner: spec.RunContainer, Image: "x"}, "512Mi", ""},
		{"command", &spec.Component{Runner: spec.RunProcess, Command: []string{"./x"}}, "512Mi", ""},
		{"env sets it", &spec.Component{Runner: spec.RunBuiltin, Env: map[string]string{"GOMEMLIMIT": "100MiB"}}, "512Mi", ""},
	} {
		if got := nodeMemLimit(tc.c, tc.limit); got != tc.want {
			t.Errorf("%s: nodeMemLimit(%q) = %q, want %q", tc.name, tc.limit, got, tc.want)
		}
	}
}

// TestLongNamesStayApart translates a pipeline whose name fills a DNS
// label: every name made of it and a node's (a Nomad service, a node's TLS
// Secret) must still be one per node, and a DNS label; cut at 63
// characters they all became the pipeline's name, so each Nomad node sent
// to every node and every Kubernetes node mounted one certificate.
func TestLongNamesStayApart(t *testing.T) {
	long := strings.Repeat("payments-eu-west-", 3) + "production-cluster-1" // 71
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	src := "name: " + long + "\nsources:\n  - name: ledger\n    type: generate\n    config: {count: 1, data: {kind: ping}}\n" +
		"processors:\n  - name: enrich-a\n    type: filter\n    inputs: [ledger]\n    config: {expr: 'true'}\n" +
		"  - name: enrich-b\n    type: filter\n    inputs: [enrich-a]\n    config: {expr: 'true'}\n" +
		"sinks:\n  - name: out\n    type: stdout\n    inputs: [enrich-b]\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pl := load(t, file)
	for _, tc := range []struct {
		name string
		// names are the per-node names, by component, and the
		// pipeline-wide ones that must differ from them.
		names func(t *testing.T) (perNode map[string]string, shared []string)
	}{
		{"nomad services", func(t *testing.T) (map[string]string, []string) {
			job, err := decodeNomadJob(translateTo(t, pl, Nomad, false).Main().Data)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]string{}
			for _, g := range job.TaskGroups {
				out[g.Meta["flowctl.component"]] = g.Services[0].Name
				// The peer template of each node asks for its
				// downstream node's service, not its own.
				for _, tpl := range g.Tasks[0].Templates {
					if strings.Contains(*tpl.EmbeddedTmpl, "nomadService") && strings.Contains(*tpl.EmbeddedTmpl, fmt.Sprintf("nomadService %q", g.Services[0].Name)) {
						t.Errorf("group %s's peers are looked up under its own service %q", *g.Name, g.Services[0].Name)
					}
				}
			}
			return out, nil
		}},
		{"kubernetes secrets", func(t *testing.T) (map[string]string, []string) {
			secrets, err := KubernetesSecrets(pl, caseOptions(Kubernetes, true))
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]string{}
			for _, s := range secrets {
				if s.Key == "node.crt" {
					out[strings.TrimSuffix(strings.TrimPrefix(s.Output, "tls/"), ".crt")] = s.Name
				}
			}
			b, err := buildKubernetes(mustPlan(t, pl, caseOptions(Kubernetes, true)))
			if err != nil {
				t.Fatal(err)
			}
			return out, []string{b.envSecretName()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perNode, shared := tc.names(t)
			if len(perNode) != 4 {
				t.Fatalf("names of %d nodes, want 4: %v", len(perNode), perNode)
			}
			seen := map[string]string{}
			for _, s := range shared {
				seen[s] = "the pipeline"
			}
			for comp, name := range perNode {
				if len(name) > maxDNSLabel || dnsName(name, maxDNSLabel) != name {
					t.Errorf("%s: %q is not a DNS label", comp, name)
				}
				if other, ok := seen[name]; ok {
					t.Errorf("%s and %s are both named %q", comp, other, name)
				}
				seen[name] = comp
			}
		})
	}
}

func mustPlan(t *testing.T, p *spec.Pipeline, opts Options) *plan {
	t.Helper()
	pl, err := newPlan(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// TestComposeReplicasSharedState: Compose mounts a service's named volume
// into each of its replicas, and a node locks its state store while it
// runs, so a node with state and replicas runs once, its other replicas
// failing with "in use" (flowctl node refuses a state directory another
// node holds). translate must say so instead of promising each replica
// runs the whole component.
func TestComposeReplicasSharedState(t *testing.T) {
	for _, tc := range []struct {
		name string
		// comps is the components section of the pipeline file.
		comps string
		warn  bool
	}{
		{"source with state, 2 replicas", "sources:\n  - name: in\n    type: generate\n    replicas: 2\n    config: {count: 1, data: {kind: ping}}\nsinks:\n  - name: out\n    type: stdout\n    inputs: [in]\n", true},
		{"file sink, 3 replicas", "sources:\n  - name: in\n    type: generate\n    config: {count: 1, data: {kind: ping}}\nsinks:\n  - name: out\n    type: file\n    replicas: 3\n    inputs: [in]\n    config: {path: out.jsonl}\n", true},
		{"source with state, 1 replica", "sources:\n  - name: in\n    type: generate\n    replicas: 1\n    config: {count: 1, data: {kind: ping}}\nsinks:\n  - name: out\n    type: stdout\n    inputs: [in]\n", false},
		{"processor, 2 replicas", "sources:\n  - name: in\n    type: generate\n    config: {count: 1, data: {kind: ping}}\nprocessors:\n  - name: work\n    type: filter\n    replicas: 2\n    inputs: [in]\n    config: {expr: 'true'}\nsinks:\n  - name: out\n    type: stdout\n    inputs: [work]\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "p.yaml")
			if err := os.WriteFile(file, []byte("name: p\n"+tc.comps), 0o644); err != nil {
				t.Fatal(err)
			}
			res := translateCase(t, load(t, file), false)
			warned := strings.Contains(string(warningsText(res)), "its one state volume")
			if warned != tc.warn {
				t.Errorf("warned about the shared state volume: %v, want %v; warnings:\n%s", warned, tc.warn, warningsText(res))
			}
		})
	}
}

// TestListenAddressInContainer: an http source listens inside its node's
// container. Its default, 127.0.0.1:8080, works under `flowctl run` and
// reaches nothing from a container (not even through a published port);
// 9090 or 7000 is the node's own port, and the node then stops with
// "address already in use". Every target must say so.
func TestListenAddressInContainer(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		loopback     bool
		nodePort     bool
	}{
		{"default address", "", true, false},
		{"loopback", "{address: '127.0.0.1:8080'}", true, false},
		{"localhost", "{address: 'localhost:8081'}", true, false},
		{"every interface", "{address: '0.0.0.0:8080'}", false, false},
		{"the node's http port", "{address: '0.0.0.0:9090'}", false, true},
		{"the node's http port, no host", "{address: ':9090'}", false, true},
		// A source's node listens on no stream port.
		{"the stream port of a node that sends only", "{address: '0.0.0.0:7000'}", false, false},
	} {
		for _, target := range []Target{DockerCompose, Kubernetes, Nomad} {
			t.Run(tc.name+"/"+string(target), func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "p.yaml")
				src := "name: p\nsources:\n  - name: hook\n    type: http\n"
				if tc.config != "" {
					src += "    config: " + tc.config + "\n"
				}
				src += "sinks:\n  - name: out\n    type: stdout\n    inputs: [hook]\n"
				if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
				w := string(warningsText(translateTo(t, load(t, file), target, false)))
				if got := strings.Contains(w, "that is the container itself"); got != tc.loopback {
					t.Errorf("loopback warning %v, want %v:\n%s", got, tc.loopback, w)
				}
				if got := strings.Contains(w, "which its node takes"); got != tc.nodePort {
					t.Errorf("node port warning %v, want %v:\n%s", got, tc.nodePort, w)
				}
			})
		}
	}
}

// TestComposeHostPortCollision: docker-compose config takes two services
// publishing one host port, and docker-compose up then starts one and
// fails on the other ("port is already allocated").
func TestComposeHostPortCollision(t *testing.T) {
	for _, tc := range []struct {
		name          string
		ports1, port2 string
		warn          bool
	}{
		{"same host port", "[{containerPort: 8080, hostPort: 18080}]", "[{containerPort: 8081, hostPort: 18080}]", true},
		{"same port, udp and tcp", "[{containerPort: 8080, hostPort: 18080, protocol: udp}]", "[{containerPort: 8081, hostPort: 18080}]", false},
		{"same port, tcp said and implied", "[{containerPort: 8080, hostPort: 18080, protocol: TCP}]", "[{containerPort: 8081, hostPort: 18080}]", true},
		{"different host ports", "[{containerPort: 8080, hostPort: 18080}]", "[{containerPort: 8080, hostPort: 18081}]", false},
		{"not published", "[{containerPort: 8080}]", "[{containerPort: 8080}]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "p.yaml")
			src := "name: p\nsources:\n" +
				"  - name: a\n    type: http\n    config: {address: '0.0.0.0:8080'}\n    ports: " + tc.ports1 + "\n" +
				"  - name: b\n    type: http\n    config: {address: '0.0.0.0:8081'}\n    ports: " + tc.port2 + "\n" +
				"sinks:\n  - name: out\n    type: stdout\n    inputs: [a, b]\n"
			if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			w := string(warningsText(translateCase(t, load(t, file), false)))
			if got := strings.Contains(w, "port is already allocated"); got != tc.warn {
				t.Errorf("collision warning %v, want %v:\n%s", got, tc.warn, w)
			}
		})
	}
}
