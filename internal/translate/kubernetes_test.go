package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/flowctl/flowctl/internal/spec"
)

// kubeManifest is a generated manifest decoded into the API's own types.
type kubeManifest struct {
	configMaps   []corev1.ConfigMap
	services     []corev1.Service
	claims       []corev1.PersistentVolumeClaim
	deployments  []appsv1.Deployment
	statefulSets []appsv1.StatefulSet
	kinds        []string
}

// workload is what the checks need of a Deployment or a StatefulSet.
type workload struct {
	kind, name, namespace string
	replicas              *int32
	selector              *metav1.LabelSelector
	template              corev1.PodTemplateSpec
	claimTemplates        []corev1.PersistentVolumeClaim
	serviceName           string
}

func (m *kubeManifest) workloads() []workload {
	var out []workload
	for _, d := range m.deployments {
		out = append(out, workload{kind: "Deployment", name: d.Name, namespace: d.Namespace, replicas: d.Spec.Replicas, selector: d.Spec.Selector, template: d.Spec.Template})
	}
	for _, s := range m.statefulSets {
		out = append(out, workload{kind: "StatefulSet", name: s.Name, namespace: s.Namespace, replicas: s.Spec.Replicas, selector: s.Spec.Selector, template: s.Spec.Template,
			claimTemplates: s.Spec.VolumeClaimTemplates, serviceName: s.Spec.ServiceName})
	}
	return out
}

// decodeManifest splits a multi-document manifest and decodes each
// document strictly (duplicate keys, unknown fields and values of the
// wrong type rejected) into the k8s.io/api type of its kind.
func decodeManifest(data []byte) (*kubeManifest, error) {
	m := &kubeManifest{}
	for i, doc := range regexp.MustCompile(`(?m)^---\n`).Split(string(data), -1) {
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		var into any
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/ConfigMap":
			m.configMaps = append(m.configMaps, corev1.ConfigMap{})
			into = &m.configMaps[len(m.configMaps)-1]
		case "v1/Service":
			m.services = append(m.services, corev1.Service{})
			into = &m.services[len(m.services)-1]
		case "v1/PersistentVolumeClaim":
			m.claims = append(m.claims, corev1.PersistentVolumeClaim{})
			into = &m.claims[len(m.claims)-1]
		case "apps/v1/Deployment":
			m.deployments = append(m.deployments, appsv1.Deployment{})
			into = &m.deployments[len(m.deployments)-1]
		case "apps/v1/StatefulSet":
			m.statefulSets = append(m.statefulSets, appsv1.StatefulSet{})
			into = &m.statefulSets[len(m.statefulSets)-1]
		default:
			return nil, fmt.Errorf("document %d: unexpected %s %s", i+1, tm.APIVersion, tm.Kind)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i+1, tm.Kind, err)
		}
		m.kinds = append(m.kinds, tm.Kind)
	}
	return m, nil
}

// TestTranslateKubernetesDecode decodes every generated manifest strictly
// into the k8s.io/api types and checks what the API server would refuse
// and strict decoding lets through (a probe on port 0, a selector that
// misses its template, a mount of an undeclared volume, invalid names),
// then checks the objects against the pipeline.
func TestTranslateKubernetesDecode(t *testing.T) {
	for _, tc := range goldenCases(t) {
		for _, tls := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/tls=%v", tc.name, tls), func(t *testing.T) {
				pl := load(t, tc.file)
				res := translateTo(t, pl, Kubernetes, tls)
				m, err := decodeManifest(res.Main().Data)
				if err != nil {
					t.Fatalf("%v\n%s", err, res.Main().Data)
				}
				secrets, err := KubernetesSecrets(pl, caseOptions(Kubernetes, tls))
				if err != nil {
					t.Fatal(err)
				}
				checkManifest(t, m, secrets)
				checkManifestAgainst(t, pl, m, res, tls)
			})
		}
	}
}

// checkManifest holds what a v1.32 API server checks beyond decoding.
func checkManifest(t *testing.T, m *kubeManifest, secrets []SecretSource) {
	t.Helper()
	if len(m.kinds) == 0 || m.kinds[0] != "ConfigMap" {
		t.Errorf("objects %v: the ConfigMap comes first", m.kinds)
	}
	names := func(what string, name string, errs []string) {
		if len(errs) > 0 {
			t.Errorf("%s name %q: %s", what, name, strings.Join(errs, "; "))
		}
	}
	checkMeta := func(kind string, om metav1.ObjectMeta) {
		names(kind, om.Name, validation.IsDNS1123Subdomain(om.Name))
		if om.Namespace != "" {
			names("namespace", om.Namespace, validation.IsDNS1123Label(om.Namespace))
		}
		for k, v := range om.Labels {
			names("label key", k, validation.IsQualifiedName(k))
			names("label value", v, validation.IsValidLabelValue(v))
		}
		for k := range om.Annotations {
			names("annotation key", k, validation.IsQualifiedName(strings.ToLower(k)))
		}
	}
	configMaps, claims := map[string]bool{}, map[string]bool{}
	for _, c := range m.configMaps {
		checkMeta("ConfigMap", c.ObjectMeta)
		configMaps[c.Name] = true
		for k := range c.Data {
			names("ConfigMap key", k, validation.IsConfigMapKey(k))
		}
	}
	for _, c := range m.claims {
		checkMeta("PersistentVolumeClaim", c.ObjectMeta)
		claims[c.Name] = true
		if q := c.Spec.Resources.Requests[corev1.ResourceStorage]; q.IsZero() {
			t.Errorf("claim %s requests no storage", c.Name)
		}
	}
	secretKeys := map[string]bool{}
	for _, s := range secrets {
		names("Secret", s.Name, validation.IsDNS1123Subdomain(s.Name))
		names("Secret key", s.Key, validation.IsConfigMapKey(s.Key))
		secretKeys[s.Name+"/"+s.Key] = true
		secretKeys[s.Name] = true
		set := 0
		for _, v := range []string{s.File, s.Output, s.Env} {
			if v != "" {
				set++
			}
		}
		if set != 1 {
			t.Errorf("secret source %+v: want exactly one of File, Output, Env", s)
		}
	}
	workloads := m.workloads()
	services := map[string]corev1.Service{}
	for _, s := range m.services {
		checkMeta("Service", s.ObjectMeta)
		names("Service", s.Name, validation.IsDNS1035Label(s.Name))
		services[s.Name] = s
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s is not headless", s.Name)
		}
		selected := 0
		for _, w := range workloads {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
				selected++
				for _, p := range s.Spec.Ports {
					if !podHasPort(w.template.Spec, p.TargetPort) {
						t.Errorf("Service %s port %s targets %s, which no container of %s %s has", s.Name, p.Name, p.TargetPort.String(), w.kind, w.name)
					}
				}
			}
		}
		if selected != 1 {
			t.Errorf("Service %s selects %d workloads, want 1", s.Name, selected)
		}
		for _, p := range s.Spec.Ports {
			if p.Port <= 0 || p.Port > 65535 {
				t.Errorf("Service %s port %d", s.Name, p.Port)
			}
			names("Service port", p.Name, validation.IsValidPortName(p.Name))
		}
	}
	for _, w := range workloads {
		checkMeta(w.kind, metav1.ObjectMeta{Name: w.name, Namespace: w.namespace, Labels: w.template.Labels, Annotations: w.template.Annotations})
		names(w.kind, w.name, validation.IsDNS1035Label(w.name))
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(w.template.Labels)) {
			t.Errorf("%s %s: selector %v does not match its template's labels %v (%v)", w.kind, w.name, w.selector, w.template.Labels, err)
		}
		if w.kind == "StatefulSet" {
			if _, ok := services[w.serviceName]; !ok {
				t.Errorf("StatefulSet %s: serviceName %q is no Service of the manifest", w.name, w.serviceName)
			}
		}
		if w.replicas != nil && *w.replicas < 0 {
			t.Errorf("%s %s: replicas %d", w.kind, w.name, *w.replicas)
		}
		pod := w.template.Spec
		volumes := map[string]bool{}
		for _, c := range w.claimTemplates {
			volumes[c.Name] = true
		}
		for _, v := range pod.Volumes {
			names("volume", v.Name, validation.IsDNS1123Label(v.Name))
			if volumes[v.Name] {
				t.Errorf("%s %s: volume %s declared twice", w.kind, w.name, v.Name)
			}
			volumes[v.Name] = true
			switch {
			case v.ConfigMap != nil && !configMaps[v.ConfigMap.Name]:
				t.Errorf("%s %s: volume %s uses ConfigMap %s, which the manifest does not declare", w.kind, w.name, v.Name, v.ConfigMap.Name)
			case v.PersistentVolumeClaim != nil && !claims[v.PersistentVolumeClaim.ClaimName]:
				t.Errorf("%s %s: volume %s uses claim %s, which the manifest does not declare", w.kind, w.name, v.Name, v.PersistentVolumeClaim.ClaimName)
			case v.Secret != nil && !secretKeys[v.Secret.SecretName]:
				t.Errorf("%s %s: volume %s uses Secret %s, which KubernetesSecrets does not list", w.kind, w.name, v.Name, v.Secret.SecretName)
			case v.HostPath != nil && !strings.HasPrefix(v.HostPath.Path, "/"):
				t.Errorf("%s %s: hostPath %q is not absolute", w.kind, w.name, v.HostPath.Path)
			}
		}
		containers := map[string]bool{}
		portNames := map[string]bool{}
		for _, c := range pod.Containers {
			names("container", c.Name, validation.IsDNS1123Label(c.Name))
			if containers[c.Name] {
				t.Errorf("%s %s: two containers named %s", w.kind, w.name, c.Name)
			}
			containers[c.Name] = true
			for _, p := range c.Ports {
				if p.ContainerPort <= 0 || p.ContainerPort > 65535 || p.HostPort != 0 {
					t.Errorf("%s %s container %s: port %+v", w.kind, w.name, c.Name, p)
				}
				if p.Name != "" {
					names("port", p.Name, validation.IsValidPortName(p.Name))
					if portNames[p.Name] {
						t.Errorf("%s %s: port name %s used twice in the Pod", w.kind, w.name, p.Name)
					}
					portNames[p.Name] = true
				}
			}
			for what, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
				if p == nil {
					continue
				}
				if p.HTTPGet == nil {
					t.Errorf("%s %s container %s: %s probe is not httpGet", w.kind, w.name, c.Name, what)
					continue
				}
				if !containerHasPort(c, p.HTTPGet.Port) {
					t.Errorf("%s %s container %s: %s probe on port %s, which the container does not list", w.kind, w.name, c.Name, what, p.HTTPGet.Port.String())
				}
			}
			for _, vm := range c.VolumeMounts {
				if !volumes[vm.Name] {
					t.Errorf("%s %s container %s: mount of %s, which the Pod does not declare", w.kind, w.name, c.Name, vm.Name)
				}
				if !strings.HasPrefix(vm.MountPath, "/") {
					t.Errorf("%s %s container %s: mount path %q", w.kind, w.name, c.Name, vm.MountPath)
				}
			}
			var envNames []string
			for _, e := range c.Env {
				envNames = append(envNames, e.Name)
				if errs := validation.IsEnvVarName(e.Name); len(errs) > 0 {
					t.Errorf("env %s: %v", e.Name, errs)
				}
				if e.ValueFrom != nil {
					ref := e.ValueFrom.SecretKeyRef
					if ref == nil || !secretKeys[ref.Name+"/"+ref.Key] {
						t.Errorf("%s %s container %s: env %s from %+v, which KubernetesSecrets does not list", w.kind, w.name, c.Name, e.Name, e.ValueFrom)
					}
				}
			}
			if !sort.StringsAreSorted(envNames) || hasDup(envNames) {
				t.Errorf("%s %s container %s: env %v is not sorted and unique", w.kind, w.name, c.Name, envNames)
			}
			for _, rl := range []corev1.ResourceList{c.Resources.Limits, c.Resources.Requests} {
				for name, q := range rl {
					if q.Sign() <= 0 {
						t.Errorf("%s %s container %s: %s %s", w.kind, w.name, c.Name, name, q.String())
					}
				}
			}
			for name, req := range c.Resources.Requests {
				if lim, ok := c.Resources.Limits[name]; ok && req.Cmp(lim) > 0 {
					t.Errorf("%s %s container %s: %s request %s above limit %s", w.kind, w.name, c.Name, name, req.String(), lim.String())
				}
			}
		}
	}
}

func hasDup(ss []string) bool {
	seen := map[string]bool{}
	for _, s := range ss {
		if seen[s] {
			return true
		}
		seen[s] = true
	}
	return false
}

func containerHasPort(c corev1.Container, port intstr.IntOrString) bool {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal && port.IntVal != 0) {
			return true
		}
	}
	return false
}

func podHasPort(pod corev1.PodSpec, port intstr.IntOrString) bool {
	for _, c := range pod.Containers {
		if containerHasPort(c, port) {
			return true
		}
	}
	return false
}

// checkManifestAgainst checks the objects against the pipeline: one
// workload per component running its node, the image as a second
// container, env exactly as written, replicas, the ConfigMap holding the
// file, and a Service for every node that receives.
func checkManifestAgainst(t *testing.T, pl *spec.Pipeline, m *kubeManifest, res *Result, tls bool) {
	t.Helper()
	comps := pl.Components()
	if pl.DeadLetter != nil {
		comps = append(comps, pl.DeadLetter)
	}
	workloads := map[string]workload{}
	for _, w := range m.workloads() {
		workloads[w.template.Labels[labelComponent]] = w
	}
	if len(workloads) != len(comps) || len(m.workloads()) != len(comps) {
		t.Fatalf("%d workloads, want one per component (%d)", len(m.workloads()), len(comps))
	}
	data, err := os.ReadFile(pl.File)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.configMaps) != 1 || m.configMaps[0].Data[filepath.Base(pl.File)] != string(data) {
		t.Errorf("the ConfigMap does not hold the pipeline file as written")
	}
	services := map[string]bool{}
	for _, s := range m.services {
		services[s.Spec.Selector[labelName]] = true
	}
	for _, c := range comps {
		w, ok := workloads[labelValue(c.Name)]
		if !ok {
			t.Fatalf("no workload for %s %q", c.Role, c.Name)
		}
		pod := w.template.Spec
		node := pod.Containers[0]
		if node.Image != "flowctl:test" || strings.Join(node.Command, " ") != "/flowctl" {
			t.Errorf("%s: node container runs %s %v", w.name, node.Image, node.Command)
		}
		args := strings.Join(node.Args, " ")
		if !strings.HasPrefix(args, "node -f "+pipelineDir+"/"+filepath.Base(pl.File)+" --component "+c.Name+" --http 0.0.0.0:9090") {
			t.Errorf("%s: args %q do not run the component", w.name, args)
		}
		if strings.Contains(args, "--insecure") == tls {
			t.Errorf("%s: args %q: --insecure with tls=%v", w.name, args, tls)
		}
		receives := len(c.Inputs) > 0 || (pl.DeadLetter != nil && c == pl.DeadLetter)
		if strings.Contains(args, "--listen 0.0.0.0:7000") != receives || services[w.name] != receives && w.kind == "Deployment" {
			t.Errorf("%s: receives=%v but args %q, Service %v", w.name, receives, args, services[w.name])
		}
		want := 1
		if c.Runner == spec.RunContainer {
			want = 2
		}
		if len(pod.Containers) != want {
			t.Fatalf("%s: %d containers, want %d", w.name, len(pod.Containers), want)
		}
		code := node
		if c.Runner == spec.RunContainer {
			code = pod.Containers[1]
			if code.Image != c.Image {
				t.Errorf("%s: second container runs %q, want %q", w.name, code.Image, c.Image)
			}
			if !strings.Contains(args, fmt.Sprintf("--peer %s=127.0.0.1:%d", c.Name, componentPortOf(c))) {
				t.Errorf("%s: args %q do not reach the component on 127.0.0.1", w.name, args)
			}
		}
		env := map[string]string{}
		for _, e := range code.Env {
			if e.ValueFrom == nil {
				env[e.Name] = strings.ReplaceAll(e.Value, "$$", "$")
			}
		}
		wantEnv := map[string]string{}
		for k, v := range c.Env {
			wantEnv[k] = v
		}
		if _, set := c.Env["PORT"]; !set && c.Runner == spec.RunContainer {
			wantEnv["PORT"] = fmt.Sprintf("0.0.0.0:%d", componentPortOf(c))
		}
		if v := nodeMemLimit(c, c.Resources.Limits.Memory); v != "" {
			wantEnv["GOMEMLIMIT"] = v // nine tenths of the container's limit
		}
		if fmt.Sprint(env) != fmt.Sprint(wantEnv) {
			t.Errorf("%s container %s: env %v, want %v", w.name, code.Name, env, wantEnv)
		}
		replicas := int32(1)
		if w.replicas != nil {
			replicas = *w.replicas
		}
		if _, set := c.Positions["replicas"]; set && replicas != int32(c.Replicas) {
			t.Errorf("%s: replicas %d, want %d", w.name, replicas, c.Replicas)
		}
		mounts := 0
		for _, vm := range code.VolumeMounts {
			if strings.HasPrefix(vm.Name, "secret-") {
				mounts++
			}
		}
		if mounts != len(c.Secrets) {
			t.Errorf("%s container %s: %d secret mounts, the file has %d secrets", w.name, code.Name, mounts, len(c.Secrets))
		}
	}
	if tls {
		outputs := map[string]bool{}
		for _, f := range res.Files {
			outputs[f.Name] = true
		}
		secrets, _ := KubernetesSecrets(pl, caseOptions(Kubernetes, tls))
		for _, s := range secrets {
			if s.Output != "" && !outputs[s.Output] {
				t.Errorf("Secret %s key %s comes from %s, which translate does not write", s.Name, s.Key, s.Output)
			}
		}
	}
}

// TestTranslateKubernetesDecodeRejects shows the strict decoding has
// teeth: an unknown field, a quantity Kubernetes refuses and a string
// where a number belongs are errors.
func TestTranslateKubernetesDecodeRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: None, selectr: {a: b}}\n",
		"bad quantity":  "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: a}\nspec: {resources: {requests: {storage: 1Gb}}}\n",
		"wrong type":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: two}\n",
		"duplicate key": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: a, k: b}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeManifest([]byte(doc)); err == nil {
				t.Fatalf("decoded:\n%s", doc)
			}
		})
	}
}

// TestTranslateKubernetesQuantity checks kubeQuantity against the API's
// own parser: what it takes, Kubernetes takes, with the same value.
func TestTranslateKubernetesQuantity(t *testing.T) {
	for _, q := range []string{"100m", "1", "1.5", "0.5", "250m", "512Mi", "1Gi", "1G", "1e3", "1E3", "64Ki", "2Ti", "1000", "500u", ".5", "1.", "+1"} {
		v, err := kubeQuantity(q)
		if err != nil {
			t.Errorf("kubeQuantity(%q): %v", q, err)
			continue
		}
		k, err := resource.ParseQuantity(q)
		if err != nil {
			t.Errorf("kubeQuantity takes %q, Kubernetes does not: %v", q, err)
			continue
		}
		if d := k.AsApproximateFloat64() - v; d > 1e-6*v || d < -1e-6*v {
			t.Errorf("kubeQuantity(%q) = %v, Kubernetes reads %v", q, v, k.AsApproximateFloat64())
		}
	}
	for _, q := range []string{"1Gb", "lots", "0", "-1", "1..2", "", "1 Gi", "1KiB", "0x10", "1e", "."} {
		if v, err := kubeQuantity(q); err == nil {
			t.Errorf("kubeQuantity(%q) = %v, want an error", q, v)
		}
	}
}

// TestTranslateKubernetesVars compares fileVars with spec.Substitute: the
// same variables, in a file with comments, escapes and defaults.
func TestTranslateKubernetesVars(t *testing.T) {
	data := []byte("# ${COMMENTED}\nname: x  # ${TRAILING}\na: ${A:-one} $${ESCAPED} ${B}\nb: \"${A}${C:-}\"\n")
	seen := map[string]bool{}
	spec.Substitute("f", data, func(name string) (string, bool) { seen[name] = true; return "", false })
	var want []string
	for k := range seen {
		want = append(want, k)
	}
	sort.Strings(want)
	var got []string
	for _, v := range fileVars(data) {
		got = append(got, fmt.Sprintf("%s@%d:%d", v.name, v.pos.Line, v.pos.Col))
		if v.name == "A" && (!v.hasDef || v.def != "one") {
			t.Errorf("A: default %q %v", v.def, v.hasDef)
		}
		if v.name == "B" && v.hasDef {
			t.Error("B has no default")
		}
	}
	if strings.Join(got, " ") != "A@3:4 B@3:26 C@4:9 TRAILING@2:12" {
		t.Errorf("fileVars = %v", got)
	}
	var names []string
	for _, v := range fileVars(data) {
		names = append(names, v.name)
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("fileVars names %v, spec.Substitute looks up %v", names, want)
	}
}

// TestTranslateKubernetesSecrets checks the secret sources apply creates
// Secrets from: names as the manifest uses them, files resolved against
// the pipeline's directory, the TLS keys from translate's own files, and
// a ${VAR} from the environment.
func TestTranslateKubernetesSecrets(t *testing.T) {
	got := func(file string, tls bool) []string {
		srcs, err := KubernetesSecrets(load(t, file), caseOptions(Kubernetes, tls))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range srcs {
			out = append(out, fmt.Sprintf("%s/%s %s/%s<%s%s%s> opt=%v %s", s.Namespace, s.Name, s.Name, s.Key, s.File, s.Output, s.Env, s.Optional, s.Type))
		}
		return out
	}
	want := []string{
		"/secrets-api-token secrets-api-token/api-token</srv/pipeline/secrets/token.txt> opt=false ",
		"/secrets-db-password secrets-db-password/db-password</srv/pipeline/secrets/db-password> opt=false ",
		"/secrets-signing-key secrets-signing-key/signing-key</srv/keys/signing.pem> opt=false Opaque",
		"/secrets-out-api-token secrets-out-api-token/api-token</srv/pipeline/other/token.txt> opt=false ",
	}
	if g := got("testdata/cases/secrets.yaml", false); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("secrets.yaml:\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
	// The files built-ins read secrets from, one Secret per file (the CA
	// of two components once), and the variables they read: required but
	// for an llm's on a local server.
	want = []string{
		"/connector-secrets-file-certs-ca-pem connector-secrets-file-certs-ca-pem/ca.pem</srv/pipeline/certs/ca.pem> opt=false ",
		"/connector-secrets-file-certs-client-pem connector-secrets-file-certs-client-pem/client.pem</srv/pipeline/certs/client.pem> opt=false ",
		"/connector-secrets-file-certs-client-key connector-secrets-file-certs-client-key/client.key</srv/pipeline/certs/client.key> opt=false ",
		"/connector-secrets-file-secrets-kafka-password connector-secrets-file-secrets-kafka-password/kafka-password</srv/pipeline/secrets/kafka-password> opt=false ",
		"/connector-secrets-openai connector-secrets-openai/openai</srv/pipeline/secrets/openai.txt> opt=false ",
		"/connector-secrets-env connector-secrets-env/KAFKA_USER<KAFKA_USER> opt=true ",
		"/connector-secrets-env connector-secrets-env/KAFKA_PASSWORD<KAFKA_PASSWORD> opt=false ",
		"/connector-secrets-env connector-secrets-env/LOCAL_LLM_KEY<LOCAL_LLM_KEY> opt=true ",
		"/connector-secrets-env connector-secrets-env/OPENAI_API_KEY<OPENAI_API_KEY> opt=false ",
	}
	if g := got("testdata/cases/connector-secrets.yaml", false); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("connector-secrets.yaml:\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
	meta := got("testdata/cases/metadata.yaml", true)
	for _, w := range []string{
		"team-payments/payments-metadata-tls-c-9lives payments-metadata-tls-c-9lives/node.key<tls/c-9lives.key> opt=false Opaque",
		"team-payments/payments-metadata-tls-out payments-metadata-tls-out/ca.crt<tls/ca.crt> opt=false Opaque",
		"team-payments/payments-metadata-api-token payments-metadata-api-token/api-token</srv/pipeline/token.txt> opt=false ",
		"team-payments/payments-metadata-env payments-metadata-env/COUNT<COUNT> opt=true ",
	} {
		found := false
		for _, g := range meta {
			found = found || g == w
		}
		if !found {
			t.Errorf("metadata.yaml: no %q in\n%s", w, strings.Join(meta, "\n"))
		}
	}
}

// TestTranslateKubernetesNames covers the DNS-1035 rule of Service names:
// a component starting with a digit gets a prefix, its senders a --peer,
// and its certificate the new name.
func TestTranslateKubernetesNames(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte("name: p\nsources:\n  - name: src\n    type: generate\n    config: {count: 1, data: {kind: ping}}\nsinks:\n  - name: 9out\n    type: stdout\n    inputs: [src]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := translateTo(t, load(t, file), Kubernetes, true)
	out := string(res.Main().Data)
	for _, want := range []string{"--peer, '9out=c-9out:7000'", "kind: Service\nmetadata:", "name: c-9out\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("manifest lacks %q", want)
		}
	}
	var crt bool
	for _, f := range res.Files {
		crt = crt || f.Name == "tls/c-9out.crt"
	}
	if !crt {
		t.Error("no certificate for the renamed Service c-9out")
	}
	clash := filepath.Join(dir, "clash.yaml")
	if err := os.WriteFile(clash, []byte("name: p\nsources:\n  - name: c-9\n    type: generate\n    config: {count: 1, data: {kind: ping}}\nsinks:\n  - name: \"9\"\n    type: stdout\n    inputs: [c-9]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Translate(load(t, clash), caseOptions(Kubernetes, false)); err == nil || !strings.Contains(err.Error(), `becomes Service "c-9"`) {
		t.Errorf("clash: error %v", err)
	}
}

// TestTranslateKubernetesNotInBinary keeps k8s.io out of flowctl: the API
// types are for the tests only.
func TestTranslateKubernetesNotInBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to list flowctl's dependencies")
	}
	out, err := exec.Command(goBin, "list", "-deps", "../../cmd/flowctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "k8s.io/") || strings.HasPrefix(l, "sigs.k8s.io/") {
			t.Errorf("flowctl imports %s", l)
		}
	}
}

// TestTranslateKubernetesPipelineFile checks the ConfigMap holds
// Options.PipelineFile when given (apply's substituted copy): its ${VAR}
// are gone, so no node reads a variable from the env Secret.
func TestTranslateKubernetesPipelineFile(t *testing.T) {
	pl := load(t, "../../examples/linear.yaml")
	raw, err := os.ReadFile(pl.File)
	if err != nil {
		t.Fatal(err)
	}
	resolved, _ := spec.Substitute(pl.File, raw, nil)
	file := filepath.Join(t.TempDir(), "pipeline.resolved.yaml")
	if err := os.WriteFile(file, resolved, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := caseOptions(Kubernetes, false)
	opts.PipelineFile = file
	res, err := Translate(pl, opts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeManifest(res.Main().Data)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.configMaps[0].Data["linear.yaml"]; got != string(resolved) {
		t.Errorf("ConfigMap holds\n%s\nwant the resolved file", got)
	}
	if bytes.Contains(res.Main().Data, []byte("linear-env")) || bytes.Contains(warningsText(res), []byte("${OUT_DIR}")) {
		t.Error("a resolved file still sets variables from the env Secret")
	}
	without, err := Translate(pl, caseOptions(Kubernetes, false))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(without.Main().Data, []byte("name: linear-env")) {
		t.Error("the file as written does not set OUT_DIR from the env Secret")
	}
}

// TestTranslateKubernetesStatefulSetNames: a node with state is a
// StatefulSet, whose pods the controller labels NAME-HASH (up to 10
// characters of hash) — a label value of at most 63. The API server takes
// a longer name, and then no pod is ever created, so such a node is named
// shorter, and its senders find it under that name.
func TestTranslateKubernetesStatefulSetNames(t *testing.T) {
	long := strings.Repeat("ledger-", 8) + "src" // 59
	for _, tc := range []struct {
		name, source, source2, sink string
		// renamed is true when the source's node must not keep its name.
		renamed bool
	}{
		{"short", "ledger", "", "", false},
		{"52 characters", long[:52], "", "", false},
		{"59 characters", long, "", "", true},
		{"two long ones", long, long[:56] + "dst", "", true},
		{"a long sink that receives", "ledger", "", long[:56] + "out", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "p.yaml")
			src := "name: p\nsources:\n  - name: " + tc.source + "\n    type: generate\n    config: {count: 1, data: {kind: ping}}\n"
			inputs := tc.source
			if tc.source2 != "" {
				src += "  - name: " + tc.source2 + "\n    type: generate\n    config: {count: 1, data: {kind: ping}}\n"
				inputs += ", " + tc.source2
			}
			if tc.sink == "" {
				src += "sinks:\n  - name: out\n    type: stdout\n    inputs: [" + inputs + "]\n"
			} else {
				src += "sinks:\n  - name: " + tc.sink + "\n    type: file\n    inputs: [" + inputs + "]\n    config: {path: out.jsonl}\n"
			}
			if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			pl := load(t, file)
			res := translateTo(t, pl, Kubernetes, true)
			m, err := decodeManifest(res.Main().Data)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.statefulSets) == 0 {
				t.Fatal("no StatefulSet")
			}
			services := map[string]bool{}
			for _, s := range m.services {
				services[s.Name] = true
			}
			for _, s := range m.statefulSets {
				// What the controller labels its pods with.
				if hash := s.Name + "-0123456789"; len(hash) > 63 {
					t.Errorf("StatefulSet %q: its pods' controller-revision-hash %q is longer than 63", s.Name, hash)
				}
				if !services[s.Spec.ServiceName] || s.Spec.ServiceName != s.Name {
					t.Errorf("StatefulSet %q: serviceName %q, Services %v", s.Name, s.Spec.ServiceName, services)
				}
				comp := s.Spec.Template.Labels[labelComponent]
				renamed := s.Name != dnsName(comp, maxDNSLabel)
				if comp == tc.source && renamed != tc.renamed {
					t.Errorf("StatefulSet %q of %q: renamed %v, want %v", s.Name, comp, renamed, tc.renamed)
				}
			}
			// Every sender finds its receiver under its Service's name.
			for _, w := range m.workloads() {
				args := w.template.Spec.Containers[0].Args
				for i, a := range args {
					if a != "--peer" || i+1 == len(args) {
						continue
					}
					host, _, _ := strings.Cut(strings.SplitN(args[i+1], "=", 2)[1], ":")
					if !services[host] && host != "127.0.0.1" {
						t.Errorf("%s %s: --peer %s names no Service", w.kind, w.name, args[i+1])
					}
				}
				if tc.sink != "" && w.template.Labels[labelComponent] == "ledger" && !slices.Contains(args, "--peer") {
					t.Errorf("%s %s sends to the renamed sink without --peer: %q", w.kind, w.name, args)
				}
			}
			if (tc.renamed || tc.sink != "") && !strings.Contains(string(warningsText(res)), "becomes StatefulSet") {
				t.Errorf("no warning about the new name:\n%s", warningsText(res))
			}
			for _, f := range res.Files {
				if strings.HasPrefix(f.Name, "tls/") && strings.HasSuffix(f.Name, ".crt") && f.Name != "tls/ca.crt" && !services[strings.TrimSuffix(strings.TrimPrefix(f.Name, "tls/"), ".crt")] && f.Name != "tls/out.crt" {
					t.Errorf("certificate %s names no Service", f.Name)
				}
			}
		})
	}
}
