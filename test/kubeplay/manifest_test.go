package kubeplay

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// played is what podmanManifest hands to podman kube play, and the names
// of what playing it creates (for the checks and the clean-up).
type played struct {
	Manifest []byte
	// Pods are the pods' names, which are also their DNS names on the
	// podman network: the names of the Services the nodes dial.
	Pods []string
	// Volumes are the podman volumes kube play creates: one per ConfigMap
	// and one per PersistentVolumeClaim. kube play --down (4.3) leaves
	// them behind.
	Volumes []string
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// podmanManifest adapts a manifest translate wrote for a cluster to what
// podman 4.3's kube play runs as a cluster would. Only this test does
// this; translate's output stays what a cluster needs. Each change:
//
//   - Service: dropped, kube play does not implement Services. A pod
//     gets its name as its DNS name on a podman network with DNS
//     (aardvark-dns), so each workload becomes a bare Pod named after its
//     Service (checked: the Service has the workload's name and selects
//     exactly its pod template's labels). The senders' dns:///NAME:7000
//     then resolves to that pod, as a headless Service's A record would.
//     (kube play names a Deployment's pod NAME-pod-0, which no sender
//     dials.)
//   - StatefulSet: kube play 4.3 ignores it silently. It becomes that
//     Pod plus, per volumeClaimTemplate, a PersistentVolumeClaim named as
//     the StatefulSet controller names replica 0's (TEMPLATE-NAME-0),
//     which kube play makes a podman volume. Ordinal identity, ordered
//     rollout and claim retention are not tested.
//   - Deployment: becomes that Pod (one replica; a Deployment with more
//     is refused here).
//   - containers[].ports: dropped. kube play 4.3 publishes every
//     containerPort on the host (0.0.0.0:7000), so the second pod
//     listening on 7000 fails to start. The ports are information in
//     Kubernetes; the nodes listen all the same.
//   - probes: dropped. kube play 4.3 ignores readiness and startup
//     probes and turns a liveness probe into a podman healthcheck,
//     `CMD-SHELL curl -f http://localhost:0/healthz || exit 1` (the named
//     port "http" becomes 0), run by /bin/sh inside the container: the
//     FROM-scratch image has neither.
//   - pod annotations longer than 63 characters (flowctl.pipeline-sha256,
//     which rolls the pods when the file changes): dropped. kube play 4.3
//     checks a Pod's annotation values against the 63-character limit of
//     label values and refuses the Pod; Kubernetes has no such limit.
//   - a ConfigMap mounted with subPath (the pipeline file at
//     /etc/flowctl/FILE): kube play 4.3 ignores subPath and mounts the
//     whole ConfigMap volume as a directory at /etc/flowctl/FILE. It is
//     mounted at /etc/flowctl instead, which gives the same file at the
//     same path (the ConfigMap has that one key), read-write, as runc
//     creates the mount points of the hostPath volumes below it
//     (/etc/flowctl/data, /etc/flowctl/out) inside it.
//
// ConfigMaps, PersistentVolumeClaims, hostPath volumes, env from an
// optional secretKeyRef, command and args are played as written.
func podmanManifest(manifest []byte) (played, error) {
	var out played
	var docs [][]byte
	services := map[string]corev1.Service{}
	type workload struct {
		name     string
		tmpl     corev1.PodTemplateSpec
		claims   []corev1.PersistentVolumeClaim
		replicas *int32
	}
	var workloads []workload
	for _, doc := range docSep.Split(string(manifest), -1) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return out, fmt.Errorf("a document of the manifest: %w", err)
		}
		switch meta.Kind {
		case "":
			continue // comments only
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := yaml.UnmarshalStrict([]byte(doc), &cm); err != nil {
				return out, err
			}
			out.Volumes = append(out.Volumes, cm.Name)
			docs = append(docs, []byte(doc))
		case "PersistentVolumeClaim":
			var pvc corev1.PersistentVolumeClaim
			if err := yaml.UnmarshalStrict([]byte(doc), &pvc); err != nil {
				return out, err
			}
			out.Volumes = append(out.Volumes, pvc.Name)
			docs = append(docs, []byte(doc))
		case "Service":
			var s corev1.Service
			if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
				return out, err
			}
			services[s.Name] = s
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.UnmarshalStrict([]byte(doc), &d); err != nil {
				return out, err
			}
			workloads = append(workloads, workload{name: d.Name, tmpl: d.Spec.Template, replicas: d.Spec.Replicas})
		case "StatefulSet":
			var s appsv1.StatefulSet
			if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
				return out, err
			}
			if s.Spec.ServiceName != s.Name {
				return out, fmt.Errorf("StatefulSet %s: its serviceName is %q, not its own name", s.Name, s.Spec.ServiceName)
			}
			workloads = append(workloads, workload{name: s.Name, tmpl: s.Spec.Template, claims: s.Spec.VolumeClaimTemplates, replicas: s.Spec.Replicas})
		default:
			return out, fmt.Errorf("kind %s: not known to this test", meta.Kind)
		}
	}
	for name, s := range services {
		n := 0
		for _, w := range workloads {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.tmpl.Labels)) {
				n++
				if w.name != name {
					return out, fmt.Errorf("Service %s selects the pods of %s: a pod named %s would not get the Service's DNS name", name, w.name, w.name)
				}
			}
		}
		if n != 1 {
			return out, fmt.Errorf("Service %s selects %d workloads, not 1", name, n)
		}
	}
	for _, w := range workloads {
		if w.replicas != nil && *w.replicas != 1 {
			return out, fmt.Errorf("%s has %d replicas: a pod named after its Service stands for one", w.name, *w.replicas)
		}
		pod := corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: w.name, Labels: w.tmpl.Labels, Annotations: w.tmpl.Annotations},
			Spec:       *w.tmpl.Spec.DeepCopy(),
		}
		for k, v := range pod.Annotations {
			if len(v) > 63 {
				delete(pod.Annotations, k)
			}
		}
		for _, c := range w.claims {
			pvc := corev1.PersistentVolumeClaim{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
				ObjectMeta: *c.ObjectMeta.DeepCopy(),
				Spec:       *c.Spec.DeepCopy(),
			}
			pvc.Name = c.Name + "-" + w.name + "-0"
			b, err := yaml.Marshal(pvc)
			if err != nil {
				return out, err
			}
			docs = append(docs, b)
			out.Volumes = append(out.Volumes, pvc.Name)
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: c.Name,
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}}})
		}
		if err := adaptPodSpec(&pod.Spec); err != nil {
			return out, fmt.Errorf("%s: %w", w.name, err)
		}
		b, err := yaml.Marshal(pod)
		if err != nil {
			return out, err
		}
		docs = append(docs, b)
		out.Pods = append(out.Pods, w.name)
	}
	out.Manifest = bytes.Join(docs, []byte("\n---\n"))
	return out, nil
}

// adaptPodSpec drops ports and probes and moves a ConfigMap's subPath
// mount to its directory (see podmanManifest).
func adaptPodSpec(spec *corev1.PodSpec) error {
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		c.Ports = nil
		c.LivenessProbe, c.ReadinessProbe, c.StartupProbe = nil, nil, nil
		for j := range c.VolumeMounts {
			m := &c.VolumeMounts[j]
			if m.SubPath == "" {
				continue
			}
			v, ok := volumes[m.Name]
			if !ok || v.ConfigMap == nil || path.Base(m.MountPath) != m.SubPath || len(v.ConfigMap.Items) != 0 {
				return fmt.Errorf("container %s: subPath %q of volume %s at %s: podman 4.3 ignores subPath and this test only adapts a ConfigMap's key mounted under its own name", c.Name, m.SubPath, m.Name, m.MountPath)
			}
			dir := path.Dir(m.MountPath)
			if slices.ContainsFunc(c.VolumeMounts, func(o corev1.VolumeMount) bool { return o.MountPath == dir }) {
				return fmt.Errorf("container %s: %s is a mount point already", c.Name, dir)
			}
			m.MountPath, m.SubPath = dir, ""
			m.ReadOnly = !slices.ContainsFunc(c.VolumeMounts, func(o corev1.VolumeMount) bool {
				return strings.HasPrefix(o.MountPath, dir+"/") && o.Name != m.Name
			})
		}
	}
	return nil
}
