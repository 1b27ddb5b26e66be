package kube_test

// These tests run against a real kube-apiserver (kubetest): they skip
// without one, except in CI.

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/kube"
	"github.com/flowctl/flowctl/internal/kube/kubetest"
)

// What the translator makes for a pipeline, in small: a ConfigMap, a
// Deployment, a headless Service and a StatefulSet with a volume claim.
const (
	configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: pipeline
  labels: {app.kubernetes.io/managed-by: flowctl}
data:
  pipeline.yaml: |
    name: demo
`
	deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app.kubernetes.io/managed-by: flowctl}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: localhost/flowctl:dev
        args: [run, /etc/flowctl/pipeline.yaml]
        ports:
        - {containerPort: 8080, name: http}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
        volumeMounts:
        - {name: pipeline, mountPath: /etc/flowctl}
      volumes:
      - name: pipeline
        configMap: {name: pipeline}
`
	service = `apiVersion: v1
kind: Service
metadata:
  name: store
  labels: {app.kubernetes.io/managed-by: flowctl}
spec:
  clusterIP: None
  selector: {app: store}
  ports:
  - {name: grpc, port: 7070, targetPort: 7070}
`
	statefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: store
  labels: {app.kubernetes.io/managed-by: flowctl}
spec:
  serviceName: store
  replicas: 1
  selector:
    matchLabels: {app: store}
  template:
    metadata:
      labels: {app: store}
    spec:
      containers:
      - name: store
        image: localhost/flowctl:dev
        volumeMounts:
        - {name: data, mountPath: /var/lib/flowctl}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {storage: 1Gi}
`
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestCluster(t *testing.T) {
	cl := kubetest.Start(t)
	c := cl.Client

	t.Run("apply, get, re-apply, change, delete", func(t *testing.T) {
		ns := cl.Namespace(t, "lifecycle")
		ctx := ctx(t)
		stream := "# made by flowctl\n---\n" + configMap + "---\n" + deployment + "---\n" + service + "---\n" + statefulSet
		docs, err := kube.SplitDocuments([]byte(stream))
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != 4 {
			t.Fatalf("%d documents, want 4", len(docs))
		}
		inNS := func(doc []byte) []byte { // the documents leave it to the client
			return []byte(strings.Replace(string(doc), "metadata:\n", "metadata:\n  namespace: "+ns+"\n", 1))
		}

		// A dry run of everything: all would be created, none is.
		var nsDocs [][]byte
		for _, d := range docs {
			nsDocs = append(nsDocs, inNS(d))
		}
		results, err := c.Diff(ctx, nsDocs, kube.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkChanges(t, results, map[string]kube.Change{
			"ConfigMap " + ns + "/pipeline": kube.Created, "Deployment " + ns + "/web": kube.Created,
			"Service " + ns + "/store": kube.Created, "StatefulSet " + ns + "/store": kube.Created,
		})
		for _, kind := range []struct{ apiVersion, kind string }{{"v1", "ConfigMap"}, {"apps/v1", "Deployment"}, {"v1", "Service"}, {"apps/v1", "StatefulSet"}} {
			items, err := c.List(ctx, kind.apiVersion, kind.kind, ns, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 0 {
				t.Errorf("dry run stored %d %s", len(items), kind.kind)
			}
		}

		// Apply for real, and get the objects back.
		for _, d := range nsDocs {
			o, err := c.Apply(ctx, d, kube.ApplyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if o.Namespace != ns || o.ResourceVersion() == "" {
				t.Errorf("applied %s: namespace %q, resourceVersion %q", o.Meta, o.Namespace, o.ResourceVersion())
			}
		}
		gets := []struct {
			apiVersion, kind, name string
			path                   []string
			want                   any
		}{
			{"v1", "ConfigMap", "pipeline", []string{"data", "pipeline.yaml"}, "name: demo\n"},
			{"apps/v1", "Deployment", "web", []string{"spec", "replicas"}, int64(2)},
			// defaulted by the server
			{"apps/v1", "Deployment", "web", []string{"spec", "strategy", "type"}, "RollingUpdate"},
			{"v1", "Service", "store", []string{"spec", "clusterIP"}, "None"},
			{"apps/v1", "StatefulSet", "store", []string{"spec", "serviceName"}, "store"},
		}
		for _, g := range gets {
			o, err := c.Get(ctx, g.apiVersion, g.kind, ns, g.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := o.Field(g.path...); got != g.want {
				t.Errorf("%s %s: %s = %#v, want %#v", g.kind, g.name, strings.Join(g.path, "."), got, g.want)
			}
		}
		items, err := c.List(ctx, "v1", "ConfigMap", ns, "app.kubernetes.io/managed-by=flowctl")
		if err != nil || len(items) != 1 || items[0].Name != "pipeline" || items[0].Kind != "ConfigMap" {
			t.Errorf("list by label: %v %v", items, err)
		}

		// Applying again changes nothing.
		results, err = c.Diff(ctx, nsDocs, kube.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkChanges(t, results, map[string]kube.Change{
			"ConfigMap " + ns + "/pipeline": kube.Unchanged, "Deployment " + ns + "/web": kube.Unchanged,
			"Service " + ns + "/store": kube.Unchanged, "StatefulSet " + ns + "/store": kube.Unchanged,
		})

		// A changed field shows as a diff, and the dry run stored nothing.
		changed := []byte(strings.Replace(string(nsDocs[1]), "replicas: 2", "replicas: 3", 1))
		results, err = c.Diff(ctx, [][]byte{nsDocs[0], changed}, kube.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkChanges(t, results, map[string]kube.Change{"ConfigMap " + ns + "/pipeline": kube.Unchanged, "Deployment " + ns + "/web": kube.Configured})
		d := results[1].Diff
		if !strings.HasPrefix(d, "--- live Deployment "+ns+"/web\n+++ applied Deployment "+ns+"/web\n@@ ") ||
			!strings.Contains(d, "\n-  replicas: 2\n+  replicas: 3\n") || strings.Count(d, "\n-") != 1 || strings.Count(d, "\n+") != 2 {
			t.Errorf("diff:\n%s", d)
		}
		live, err := c.Get(ctx, "apps/v1", "Deployment", ns, "web")
		if err != nil || live.Field("spec", "replicas") != int64(2) {
			t.Errorf("after the dry run: replicas %v, %v", live.Field("spec", "replicas"), err)
		}

		// Delete all; again is fine.
		for _, d := range nsDocs {
			m, err := kube.ReadMeta(d)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := c.Delete(ctx, m.APIVersion, m.Kind, m.Namespace, m.Name); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.Get(ctx, m.APIVersion, m.Kind, m.Namespace, m.Name); !kube.IsNotFound(err) {
				t.Errorf("%s after delete: %v", m, err)
			}
		}
	})

	t.Run("the client's namespace", func(t *testing.T) {
		// The kubeconfig's context says namespace default.
		ctx := ctx(t)
		o, err := c.Apply(ctx, []byte(configMap), kube.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if o.Namespace != "default" {
			t.Errorf("namespace %q, want default", o.Namespace)
		}
		if _, err := c.Get(ctx, "v1", "ConfigMap", "", "pipeline"); err != nil {
			t.Error(err)
		}
		if err := c.Delete(ctx, "v1", "ConfigMap", "", "pipeline"); err != nil {
			t.Error(err)
		}
	})

	t.Run("strict validation errors come back verbatim", func(t *testing.T) {
		ns := cl.Namespace(t, "invalid")
		tests := []struct {
			name string
			doc  string
			err  string
		}{
			{"probe on port 0",
				strings.Replace(deployment, "port: 8080}", "port: 0}", 1),
				`Deployment invalid/web: Deployment.apps "web" is invalid: spec.template.spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive`},
			{"selector not matching the template",
				strings.Replace(deployment, "matchLabels: {app: web}", "matchLabels: {app: other}", 1),
				`Deployment invalid/web: Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: ` + "`selector` does not match template `labels`"},
			{"unknown field",
				strings.Replace(deployment, "replicas: 2", "replicas: 2\n  replicaz: 3", 1),
				`Deployment invalid/web: failed to create typed patch object (invalid/web; apps/v1, Kind=Deployment): .spec.replicaz: field not declared in schema`},
			{"invalid name",
				strings.Replace(configMap, "name: pipeline", "name: Bad_Name", 1),
				`ConfigMap invalid/Bad_Name: ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
			{"port 70000",
				strings.Replace(service, "port: 7070,", "port: 70000,", 1),
				`Service invalid/store: Service "store" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive`},
			{"kind the cluster does not serve",
				strings.Replace(configMap, "kind: ConfigMap", "kind: Pipeline", 1),
				`Pipeline invalid/pipeline: the cluster serves no kind Pipeline in apiVersion v1`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := ctx(t)
				doc := []byte(strings.Replace(tt.doc, "metadata:\n", "metadata:\n  namespace: "+ns+"\n", 1))
				for _, dry := range []bool{true, false} {
					_, err := c.Apply(ctx, doc, kube.ApplyOptions{DryRun: dry})
					if err == nil || err.Error() != tt.err {
						t.Errorf("dry run %v: err =\n%v\nwant\n%s", dry, err, tt.err)
					}
				}
				// Diff reports it as the document's error.
				results, err := c.Diff(ctx, [][]byte{doc}, kube.ApplyOptions{})
				if err == nil || len(results) != 1 || results[0].Err == nil || results[0].Err.Error() != tt.err {
					t.Errorf("diff: %v", err)
				}
				var apiErr *kube.APIError
				if strings.Contains(tt.err, "invalid:") && (!errors.As(err, &apiErr) || apiErr.Code != 422 || apiErr.Reason != "Invalid") {
					t.Errorf("not a 422 Invalid APIError: %#v", err)
				}
			})
		}
	})

	t.Run("conflicting field managers", func(t *testing.T) {
		ns := cl.Namespace(t, "conflict")
		ctx := ctx(t)
		doc := []byte(strings.Replace(configMap, "metadata:\n", "metadata:\n  namespace: "+ns+"\n", 1))
		if _, err := c.Apply(ctx, doc, kube.ApplyOptions{FieldManager: "someone-else"}); err != nil {
			t.Fatal(err)
		}
		changed := []byte(strings.Replace(string(doc), "name: demo", "name: other", 1))
		_, err := c.Apply(ctx, changed, kube.ApplyOptions{})
		if !kube.IsConflict(err) || !strings.Contains(err.Error(), `conflict with "someone-else"`) {
			t.Fatalf("err = %v, want a conflict", err)
		}
		o, err := c.Apply(ctx, changed, kube.ApplyOptions{Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if o.Field("data", "pipeline.yaml") != "name: other\n" {
			t.Errorf("forced apply: %v", o.Field("data"))
		}
	})

	t.Run("cluster-scoped kinds", func(t *testing.T) {
		ctx := ctx(t)
		// A namespace in a cluster-scoped document is not part of the path.
		o, err := c.Apply(ctx, []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scoped\n  namespace: prod\n"), kube.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if o.Namespace != "" || o.Name != "scoped" {
			t.Errorf("namespace object: %+v", o.Meta)
		}
		items, err := c.List(ctx, "v1", "Namespace", "", "kubernetes.io/metadata.name=scoped")
		if err != nil || len(items) != 1 {
			t.Errorf("list namespaces: %v %v", items, err)
		}
	})

	t.Run("exec credential plugin", func(t *testing.T) {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		path := cl.Dir + "/exec-kubeconfig"
		kc := strings.Replace(kubetest.Kubeconfig(cl.Server, mustRead(t, cl.Dir+"/certs/apiserver.crt"), "unused", "default"),
			"    token: unused\n", `    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: `+self+`
      interactiveMode: Never
      env:
      - {name: FLOWCTL_KUBE_TEST_PLUGIN, value: token}
      - {name: PLUGIN_TOKENS, value: `+cl.Token+`}
`, 1)
		if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := kube.LoadConfig(path, "")
		if err != nil {
			t.Fatal(err)
		}
		ec, err := kube.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ec.Get(ctx(t), "v1", "ServiceAccount", "default", "default"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a wrong token", func(t *testing.T) {
		cfg := *cl.Config
		cfg.Token = "wrong"
		wc, err := kube.NewClient(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = wc.Get(ctx(t), "v1", "ConfigMap", "", "x")
		if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
			t.Errorf("err = %v", err)
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkChanges(t *testing.T, results []kube.DiffResult, want map[string]kube.Change) {
	t.Helper()
	if len(results) != len(want) {
		t.Errorf("%d results, want %d", len(results), len(want))
	}
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Meta, r.Err)
			continue
		}
		if w, ok := want[r.Meta.String()]; !ok || r.Change != w {
			t.Errorf("%s: %s, want %q\n%s", r.Meta, r.Change, w, r.Diff)
		}
	}
}
