package translate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/kube"
	"github.com/flowctl/flowctl/internal/kube/kubetest"
)

// TestKubernetesGoldensServerDryRun sends every generated Kubernetes
// manifest (every golden file, with and without --tls) to a real
// kube-apiserver as a server-side dry run with strict field validation:
// what strict decoding lets through (a probe on port 0, a selector that
// does not match, an invalid name, port 70000) fails here. Pods cannot
// run there (no kubelet, no controllers): only the objects are checked.
func TestKubernetesGoldensServerDryRun(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.kubernetes.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Kubernetes goldens: %v", err)
	}
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	namespaces := map[string]bool{}
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := kube.SplitDocuments(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			m, err := kube.ReadMeta(d)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if m.Namespace != "" && !namespaces[m.Namespace] {
				cluster.Namespace(t, m.Namespace)
				namespaces[m.Namespace] = true
			}
			if _, err := cluster.Client.Apply(ctx, d, kube.ApplyOptions{DryRun: true, Force: true}); err != nil {
				t.Errorf("%s: %s: the API server refused it: %v", filepath.Base(f), m, err)
			}
			checked++
		}
	}
	t.Logf("%d objects of %d manifests passed the server-side dry run", checked, len(files))

	// The check can fail: a probe on port 0 in a Deployment is refused.
	docs, _ := kube.SplitDocuments(mustRead(t, "testdata/golden/example-linear.kubernetes.yaml"))
	refused := false
	for _, d := range docs {
		if m, _ := kube.ReadMeta(d); m.Kind != "Deployment" {
			continue
		}
		bad := strings.Replace(string(d), "port: http", "port: 0", 1)
		_, err := cluster.Client.Apply(ctx, []byte(bad), kube.ApplyOptions{DryRun: true, Force: true})
		if err != nil && strings.Contains(err.Error(), "must be between 1 and 65535") {
			refused = true
		}
		break
	}
	if !refused {
		t.Error("a probe on port 0 passed the dry run")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
