package kubeplay

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestPodmanManifest checks the adaptation on the golden manifest of the
// example, without podman: one Pod per component named after its
// Service, a claim per StatefulSet, no ports, probes or subPath left.
func TestPodmanManifest(t *testing.T) {
	manifest, err := os.ReadFile("../../internal/translate/testdata/golden/example-fanout-fanin.kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := podmanManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	wantPods := []string{"events", "large", "flag", "refunds", "negate", "review", "failed"}
	if !slices.Equal(pl.Pods, wantPods) {
		t.Errorf("pods %v, want %v", pl.Pods, wantPods)
	}
	wantVolumes := []string{"fanout-fanin-pipeline", "state-events-0", "state-review-0", "state-failed-0"}
	if !slices.Equal(pl.Volumes, wantVolumes) {
		t.Errorf("volumes %v, want %v", pl.Volumes, wantVolumes)
	}
	kinds := map[string]int{}
	for _, doc := range docSep.Split(string(pl.Manifest), -1) {
		var obj struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		kinds[obj.Kind]++
		if obj.Kind != "Pod" {
			continue
		}
		var pod corev1.Pod
		if err := yaml.UnmarshalStrict([]byte(doc), &pod); err != nil {
			t.Fatal(err)
		}
		for _, c := range pod.Spec.Containers {
			if len(c.Ports) != 0 || c.LivenessProbe != nil || c.ReadinessProbe != nil || c.StartupProbe != nil {
				t.Errorf("pod %s container %s keeps ports or probes", pod.Name, c.Name)
			}
			var pipeline bool
			for _, m := range c.VolumeMounts {
				if m.SubPath != "" {
					t.Errorf("pod %s container %s keeps subPath %s", pod.Name, c.Name, m.SubPath)
				}
				if m.Name == "pipeline" {
					pipeline = m.MountPath == "/etc/flowctl"
				}
			}
			if !pipeline {
				t.Errorf("pod %s: the pipeline ConfigMap is not mounted at /etc/flowctl", pod.Name)
			}
			if !slices.Contains(c.Args, "/etc/flowctl/fanout-fanin.yaml") {
				t.Errorf("pod %s: args %v", pod.Name, c.Args)
			}
		}
		claim := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.PersistentVolumeClaim != nil })
		if stateful := strings.Contains(strings.Join(pod.Spec.Containers[0].Args, " "), "--state-dir"); stateful != (claim >= 0) {
			t.Errorf("pod %s: --state-dir %v but a claim volume %v", pod.Name, stateful, claim >= 0)
		}
	}
	if want := map[string]int{"ConfigMap": 1, "PersistentVolumeClaim": 3, "Pod": 7}; !maps.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
}
