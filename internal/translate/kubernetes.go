package translate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/tlsutil"
)

// Kubernetes, as a v1.32 API server takes it: one multi-document file of
// plain objects (no CRDs, no Helm), applied with kubectl or `flowctl apply
// --target kubernetes`. The plan is the one Compose renders; what differs
// is what Kubernetes can say:
//
//   - the pipeline file is a ConfigMap, mounted read-only (subPath) at
//     /etc/flowctl/FILE, left as written: `${VAR}` in it is expanded by
//     each node when it loads the file, from its container's environment,
//     so every node container gets each variable the file uses from an
//     optional key of the Secret PIPELINE-env;
//   - a node that receives has a headless Service (clusterIP: None):
//     senders dial dns:///NAME:7000 and balance over its pods' A records,
//     so every replica gets work;
//   - a node that keeps state is a StatefulSet with a volumeClaimTemplate,
//     every other a Deployment;
//   - an image component runs as a second container of its node's Pod, so
//     the node reaches it on 127.0.0.1;
//   - secrets are Secret volumes (and secretKeyRef env for a secret's
//     `env`), never values: translate writes no Secret; KubernetesSecrets
//     says which to create from which file. So are the files a built-in
//     reads secrets from (one Secret per file, mounted where its relative
//     path resolves; secretfields.go), and the variables it reads them
//     from are keys of PIPELINE-env;
//   - cpu requests, annotations, the namespace and a secret's mode map;
//     hostPort, restart policies other than always and start order do not.

// KubernetesFile is the name of the Kubernetes manifest in the output
// directory.
const KubernetesFile = "kubernetes.yaml"

// Kubernetes names and limits the manifest relies on.
const (
	// kubeStatePVC is the volumeClaimTemplate of a StatefulSet's state.
	kubeStatePVC = "state"
	// kubeClaimSize is what a generated PersistentVolumeClaim requests:
	// checkpoints are small, and many provisioners round up to 1Gi anyway.
	kubeClaimSize = "1Gi"
	// kubeConfigMapMax is the most a ConfigMap holds (etcd's object limit).
	kubeConfigMapMax = 1 << 20
	// kubeStartupPeriod is the startup probe's period in seconds.
	kubeStartupPeriod = 2
	// kubeStatefulSetMax is the longest StatefulSet name whose pods can be
	// created: the controller labels each pod controller-revision-hash =
	// NAME-HASH (a hash of up to 10 characters), and a label value is at
	// most 63 (kubernetes/kubernetes#64023). The API server takes a
	// longer name and no pod ever appears.
	kubeStatefulSetMax = maxDNSLabel - 11
	// kubeNodeContainer is the name of the container running flowctl node.
	kubeNodeContainer = "node"
	// kubePipelineHash is the pod template annotation holding the pipeline
	// file's hash: a changed file rolls the pods, which otherwise keep the
	// file they mounted (a subPath mount is never refreshed).
	kubePipelineHash = "flowctl.pipeline-sha256"
)

// Labels every object carries; the selector uses labelName and labelPartOf.
const (
	labelName      = "app.kubernetes.io/name"
	labelPartOf    = "app.kubernetes.io/part-of"
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelPipeline  = "flowctl.pipeline"
	labelComponent = "flowctl.component"
)

// SecretSource is one key of a Secret the Kubernetes manifest mounts but
// translate does not write (a Secret in a file in git is a leak): where
// its value comes from, so that `flowctl apply --target kubernetes` (or a
// user with kubectl) can create it under the name the manifest uses.
// Exactly one of File, Output and Env is set.
type SecretSource struct {
	// Name is the Secret's name, Namespace its namespace ("" for the
	// namespace kubectl is pointed at).
	Name, Namespace string
	// Key is the key in the Secret's data.
	Key string
	// File is an absolute path of this machine holding the value (a
	// component's secret: host_path, or secrets/NAME next to the
	// pipeline file when it has none).
	File string
	// Output is the name of a file translate generates (Result.Files,
	// relative to the output directory): the TLS certificates and keys.
	Output string
	// Env is an environment variable of the machine applying, for a
	// `${VAR}` of the pipeline file (Secret PIPELINE-env).
	Env string
	// Optional is true when the manifest does without the key: a
	// `${VAR:-default}` takes its default when the key is absent.
	Optional bool
	// Type is the Secret's type as the file gives it ("" for Opaque).
	Type string
}

// KubernetesSecrets lists the Secrets the Kubernetes manifest of p refers
// to, with the same names Translate writes into it, in manifest order. It
// takes the same Options as Translate (Target is ignored); the TLS keys
// are listed only with opts.TLS.
func KubernetesSecrets(p *spec.Pipeline, opts Options) ([]SecretSource, error) {
	if p == nil {
		return nil, errors.New("translate: no pipeline")
	}
	if opts.Image == "" {
		opts.Image = "flowctl"
	}
	if opts.SourceDir == "" {
		opts.SourceDir = "."
	}
	pl, err := newPlan(p, opts)
	if err != nil {
		return nil, err
	}
	b, err := buildKubernetes(pl)
	if err != nil {
		return nil, err
	}
	return b.sources, nil
}

// kubeBuilder collects the objects of the manifest.
type kubeBuilder struct {
	pl *plan
	// name is the pipeline's name as a DNS label, the prefix of the
	// pipeline-wide objects (ConfigMap, Secrets, claims).
	name      string
	namespace string
	hostDir   string
	// file is the pipeline file as mounted, its key in the ConfigMap.
	file    []byte
	fileKey string
	// vars are the file's ${VAR} references, one per variable.
	vars []varRef
	// docs are the objects in order, each with its comment.
	docs []kubeDoc
	// claims are the named volumes' PersistentVolumeClaims, in the order
	// first used; they follow the ConfigMap.
	claims     []kubeDoc
	claimNames map[string]bool
	// secretFiles maps a Secret made for a component's secret to its
	// file, to share a Secret between components that use the same file.
	secretFiles map[string]string
	sources     []SecretSource
	// configEnvs are the variables built-ins read secrets from, each
	// true when a component needs it to open: keys of PIPELINE-env.
	configEnvs map[string]bool
	// kubeNames maps a node to its Service/workload name.
	kubeNames map[*node]string
}

type kubeDoc struct {
	comment string
	obj     *yaml.Node
}

func kubernetesFiles(pl *plan) (*Result, error) {
	b, err := buildKubernetes(pl)
	if err != nil {
		return nil, err
	}
	p := pl.p
	base := filepath.Base(pl.fileName())
	head := fmt.Sprintf("Generated by `flowctl translate --to kubernetes` from %s (pipeline %q).\n"+
		"Do not edit: change the pipeline file and translate again.\n"+
		"Every Deployment or StatefulSet runs `flowctl node` on one component of the pipeline file.\n"+
		"Apply with: flowctl apply --target kubernetes -f %s, or kubectl apply -f %s\n"+
		"(with kubectl, create the Secrets named in translate's warnings first).", base, p.Name, base, KubernetesFile)
	if p.Description != "" {
		head += "\n\n" + p.Description
	}
	var buf bytes.Buffer
	buf.WriteString(comment(head))
	for i, d := range b.docs {
		if i == 0 {
			buf.WriteString("\n")
		} else {
			buf.WriteString("---\n")
		}
		buf.WriteString(comment(d.comment))
		data, err := encode("", d.obj)
		if err != nil {
			return nil, err
		}
		buf.Write(data)
	}
	return &Result{Files: []File{{Name: KubernetesFile, Data: buf.Bytes()}}}, nil
}

// comment makes text a YAML comment block.
func comment(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if l == "" {
			b.WriteString("#\n")
			continue
		}
		b.WriteString("# " + l + "\n")
	}
	return b.String()
}

// buildKubernetes renders the plan into objects, warnings and the Secret
// sources; Translate and KubernetesSecrets share it, so names agree.
func buildKubernetes(pl *plan) (*kubeBuilder, error) {
	p := pl.p
	if p.File == "" {
		return nil, errors.New("translate: the Kubernetes manifest holds the pipeline file in a ConfigMap: give a file, not standard input")
	}
	b := &kubeBuilder{pl: pl, name: boundedName(p.Name, maxDNSLabel), claimNames: map[string]bool{},
		secretFiles: map[string]string{}, configEnvs: map[string]bool{}, kubeNames: map[*node]string{}}
	top := spec.Pos{Line: 1, Col: 1}
	if p.Namespace != "" {
		b.namespace = dnsName(p.Namespace, maxDNSLabel)
		if b.namespace != p.Namespace {
			pl.warnAt(top, fmt.Sprintf("namespace %q becomes %q", p.Namespace, b.namespace),
				"a Kubernetes namespace is a DNS label (lower-case letters, digits and '-', at most 63)")
		}
	}
	b.hostDir = pl.opts.HostDir
	if b.hostDir == "" {
		abs, err := filepath.Abs(filepath.Dir(p.File))
		if err != nil {
			return nil, fmt.Errorf("pipeline directory: %w", err)
		}
		b.hostDir = abs
	}
	b.hostDir = filepath.ToSlash(b.hostDir)
	src := pl.opts.PipelineFile
	if src == "" {
		src = p.File
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("read the pipeline file for its ConfigMap: %w", err)
	}
	if len(data) > kubeConfigMapMax-1024 {
		return nil, fmt.Errorf("%s is %d bytes: a ConfigMap holds at most 1 MiB; split the pipeline or move data out of it", src, len(data))
	}
	b.file = data
	b.fileKey = configMapKey(filepath.Base(pl.fileName()))
	b.vars = fileVars(data)
	if !pl.opts.TLS {
		pl.warnAt(top, "the nodes talk to each other in plaintext (--insecure) on the cluster network",
			"translate with --tls to generate certificates for every node and run the nodes over TLS")
	} else {
		cmd := fmt.Sprintf("kubectl create secret generic %s --from-file=ca.crt=tls/%s --from-file=node.crt=tls/SERVICE.crt --from-file=node.key=tls/SERVICE.key",
			dnsName(b.name+"-tls-SERVICE", maxDNSLabel), tlsutil.CACertFile)
		if b.namespace != "" {
			cmd += " -n " + b.namespace
		}
		pl.warnAt(top, fmt.Sprintf("each node mounts its certificate from the Secret %s-tls-SERVICE (keys ca.crt, node.crt, node.key), which translate does not write", b.name),
			"create one per node from the output directory with "+cmd+" (flowctl apply --target kubernetes creates them)")
	}
	if err := b.names(); err != nil {
		return nil, err
	}
	b.configMap()
	for _, n := range pl.nodes {
		b.node(n)
	}
	b.docs = append(b.docs[:1], append(b.claims, b.docs[1:]...)...)
	b.varWarnings()
	return b, nil
}

// names gives every node its Service and workload name. A Service name is
// a DNS-1035 label: it starts with a letter, where a component's DNS name
// may start with a digit; such a node gets a prefix, and its certificate
// is issued for that name (certFiles runs after the target, on n.service).
// A StatefulSet's name is shorter still (kubeStatefulSetMax).
func (b *kubeBuilder) names() error {
	pl := b.pl
	taken := map[string]*node{}
	for _, n := range pl.nodes {
		taken[n.service] = n
	}
	for _, n := range pl.nodes {
		name := n.service
		if name[0] >= '0' && name[0] <= '9' {
			name = dnsName("c-"+name, maxDNSLabel)
			if other, ok := taken[name]; ok && other != n {
				return fmt.Errorf("%s: %s %q becomes Service %q (a Service name starts with a letter), which %s %q has: rename one",
					pl.posString(n.c.Pos), n.c.Role, n.c.Name, name, other.c.Role, other.c.Name)
			}
			pl.warn(n.c, "name", fmt.Sprintf("%s %q becomes Service %q: a Kubernetes Service name starts with a letter", n.c.Role, n.c.Name, name),
				"rename the component to start with a letter to keep its name")
			delete(taken, n.service)
			taken[name] = n
			n.service = name
		}
		if n.checkpoints && len(n.service) > kubeStatefulSetMax {
			name := boundedName(n.service, kubeStatefulSetMax)
			if other, ok := taken[name]; ok && other != n {
				return fmt.Errorf("%s: %s %q becomes StatefulSet %q (at most %d characters), which %s %q has: rename one",
					pl.posString(n.c.Pos), n.c.Role, n.c.Name, name, kubeStatefulSetMax, other.c.Role, other.c.Name)
			}
			pl.warn(n.c, "name", fmt.Sprintf("%s %q becomes StatefulSet and Service %q: the StatefulSet controller labels each pod with the StatefulSet's name and an 11-character suffix, which must fit in 63", n.c.Role, n.c.Name, name),
				fmt.Sprintf("give the component a name of at most %d characters to keep it", kubeStatefulSetMax))
			delete(taken, n.service)
			taken[name] = n
			n.service = name
		}
		b.kubeNames[n] = n.service
	}
	return nil
}

// labels are the labels of every object of the pipeline: the pipeline's
// own (those Kubernetes takes), then flowctl's, which win.
func (b *kubeBuilder) labels(n *node) map[string]string {
	pl := b.pl
	out := map[string]string{}
	keys := sortedKeys(pl.p.Labels)
	for _, k := range keys {
		if labelKeyOK(k) && labelValueOK(pl.p.Labels[k]) {
			out[k] = pl.p.Labels[k]
		}
	}
	out[labelPartOf] = labelValue(pl.p.Name)
	out[labelManagedBy] = "flowctl"
	out[labelPipeline] = labelValue(pl.p.Name)
	if n != nil {
		out[labelName] = n.service
		out[labelComponent] = labelValue(n.c.Name)
	}
	return out
}

// selector is the subset of a node's labels its workload and Service
// select on.
func (b *kubeBuilder) selector(n *node) map[string]string {
	return map[string]string{labelName: n.service, labelPartOf: labelValue(b.pl.p.Name)}
}

func (b *kubeBuilder) meta(name string, n *node) *yaml.Node {
	m := newMapping()
	m.set("name", str(name))
	if b.namespace != "" {
		m.set("namespace", str(b.namespace))
	}
	m.set("labels", stringMap(b.labels(n)))
	if ann := b.annotations(); len(ann) > 0 {
		m.set("annotations", stringMap(ann))
	}
	return m.node()
}

// annotations are the pipeline's metadata.annotations Kubernetes takes.
func (b *kubeBuilder) annotations() map[string]string {
	out := map[string]string{}
	for k, v := range b.pl.p.Annotations {
		if labelKeyOK(k) {
			out[k] = v
		}
	}
	return out
}

func (b *kubeBuilder) add(comment string, obj *yaml.Node) {
	b.docs = append(b.docs, kubeDoc{comment: comment, obj: obj})
}

func object(apiVersion, kind string, meta *yaml.Node) *mapping {
	m := newMapping()
	m.set("apiVersion", str(apiVersion))
	m.set("kind", str(kind))
	m.set("metadata", meta)
	return m
}

// configMap holds the pipeline file as written (or as apply substituted
// it), and warns about the pipeline fields the labels and annotations
// could not carry.
func (b *kubeBuilder) configMap() {
	pl := b.pl
	top := spec.Pos{Line: 1, Col: 1}
	for _, k := range sortedKeys(pl.p.Labels) {
		if !labelKeyOK(k) || !labelValueOK(pl.p.Labels[k]) {
			pl.warnAt(top, fmt.Sprintf("label %s=%q is not a Kubernetes label; left out", k, pl.p.Labels[k]),
				"a label key is [prefix/]name and a value at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
		}
	}
	for _, k := range sortedKeys(pl.p.Annotations) {
		if !labelKeyOK(k) {
			pl.warnAt(top, fmt.Sprintf("annotation %q is not a Kubernetes annotation key; left out", k),
				"an annotation key is [prefix/]name: letters, digits, '-', '_' and '.'")
		}
	}
	for _, v := range []string{pl.p.Name} {
		if labelValue(v) != v {
			pl.warnAt(top, fmt.Sprintf("pipeline name %q is labelled %q", v, labelValue(v)), "a label value is at most 63 letters, digits, '-', '_' or '.'")
		}
	}
	cm := object("v1", "ConfigMap", b.meta(b.configMapName(), nil))
	text := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(b.file), Style: yaml.LiteralStyle}
	data := newMapping()
	data.set(b.fileKey, text)
	cm.set("data", data.node())
	b.add(fmt.Sprintf("The pipeline file %s, mounted read-only into every node at %s.\n"+
		"${VAR} in it stays as written: each node expands it from its container's environment.", filepath.Base(pl.fileName()), pl.pipelinePath()), cm.node())
}

func (b *kubeBuilder) configMapName() string { return boundedName(b.name+"-pipeline", maxDNSLabel) }

func (b *kubeBuilder) envSecretName() string { return boundedName(b.name+"-env", maxDNSLabel) }

// node writes a node's Service (when it has one) and its workload.
func (b *kubeBuilder) node(n *node) {
	pl, c := b.pl, n.c
	where := fmt.Sprintf("%s:%d", filepath.Base(pl.fileName()), c.Pos.Line)
	receives := pl.receives(n)
	if receives || n.checkpoints {
		b.service(n, receives, where)
	}
	pod := b.podSpec(n)
	tmplMeta := newMapping()
	tmplMeta.set("labels", stringMap(b.labels(n)))
	ann := b.annotations()
	sum := sha256.Sum256(b.file)
	ann[kubePipelineHash] = hex.EncodeToString(sum[:])
	tmplMeta.set("annotations", stringMap(ann))
	tmpl := newMapping()
	tmpl.set("metadata", tmplMeta.node())
	tmpl.set("spec", pod)

	spc := newMapping()
	if _, set := c.Positions["replicas"]; set {
		spc.set("replicas", integer(c.Replicas))
	}
	sel := newMapping()
	sel.set("matchLabels", stringMap(b.selector(n)))
	spc.set("selector", sel.node())
	spc.set("template", tmpl.node())
	kind := "Deployment"
	if n.checkpoints {
		kind = "StatefulSet"
		spc.set("serviceName", str(n.service))
		// Replicas start together, as a Deployment's do: a node's
		// readiness waits on its peers, and ordered start would wait on it.
		spc.set("podManagementPolicy", str("Parallel"))
		claim := newMapping()
		cmeta := newMapping()
		cmeta.set("name", str(kubeStatePVC))
		cmeta.set("labels", stringMap(b.labels(n)))
		claim.set("metadata", cmeta.node())
		claim.set("spec", claimSpec())
		spc.set("volumeClaimTemplates", seq(claim.node()))
	} else if c.Role != flow.RoleProcessor {
		// A source or sink runs its whole input or output once per pod:
		// during a rolling update two would read or write it at once.
		st := newMapping()
		st.set("type", str("Recreate"))
		spc.set("strategy", st.node())
	}
	obj := object("apps/v1", kind, b.meta(n.service, n))
	obj.set("spec", spc.node())
	state := ""
	if n.checkpoints {
		state = fmt.Sprintf(", its state on claim %q", kubeStatePVC)
	}
	b.add(fmt.Sprintf("%s %q (%s), %s%s", c.Role, c.Name, runnerWord(c), where, state), obj.node())
	b.policyWarnings(n)
}

// service is a node's headless Service: its senders resolve every ready
// pod's address and spread their streams over them. A StatefulSet that
// receives nothing still gets one (its serviceName, the pods' DNS domain).
func (b *kubeBuilder) service(n *node, receives bool, where string) {
	spc := newMapping()
	spc.set("clusterIP", str("None"))
	spc.set("selector", stringMap(b.selector(n)))
	var ports []*yaml.Node
	if receives {
		ports = append(ports, servicePort("stream", nodePort))
	}
	ports = append(ports, servicePort("http", httpPort))
	spc.set("ports", seq(ports...))
	obj := object("v1", "Service", b.meta(n.service, n))
	obj.set("spec", spc.node())
	what := "where its senders reach its pods (headless: one A record per ready pod)"
	if !receives {
		what = "the DNS domain of its StatefulSet's pods (it receives nothing)"
	}
	b.add(fmt.Sprintf("%s %q, %s: %s", n.c.Role, n.c.Name, where, what), obj.node())
}

func servicePort(name string, port int) *yaml.Node {
	m := newMapping()
	m.set("name", str(name))
	m.set("port", integer(port))
	m.set("targetPort", str(name))
	m.set("protocol", str("TCP"))
	return m.node()
}

func claimSpec() *yaml.Node {
	s := newMapping()
	s.set("accessModes", strs(false, "ReadWriteOnce"))
	req := newMapping()
	req.set("storage", str(kubeClaimSize))
	res := newMapping()
	res.set("requests", req.node())
	s.set("resources", res.node())
	return s.node()
}

// podSpec is a node's Pod: the node container, the image's container for
// an image component, and the volumes they mount.
func (b *kubeBuilder) podSpec(n *node) *yaml.Node {
	c := n.c
	vols := &kubeVolumes{}
	nodeC := b.nodeContainer(n, vols)
	containers := []*yaml.Node{nodeC}
	if n.sidecar != "" {
		containers = append(containers, b.sidecarContainer(n, vols))
	}
	pod := newMapping()
	pod.set("containers", seq(containers...))
	// The node expands ${VAR} from its environment: no variables of
	// other Services' addresses in it.
	pod.set("enableServiceLinks", boolean(false))
	if c.StopGrace > 0 {
		pod.set("terminationGracePeriodSeconds", integer(int(math.Ceil(c.StopGrace.Seconds()))))
	}
	if len(vols.list) > 0 {
		pod.set("volumes", seq(vols.list...))
	}
	return pod.node()
}

// kubeVolumes are a Pod's volumes, each declared once.
type kubeVolumes struct {
	list  []*yaml.Node
	names map[string]bool
}

func (v *kubeVolumes) add(name string, source string, spec *yaml.Node) {
	if v.names == nil {
		v.names = map[string]bool{}
	}
	if v.names[name] {
		return
	}
	v.names[name] = true
	m := newMapping()
	m.set("name", str(name))
	m.set(source, spec)
	v.list = append(v.list, m.node())
}

func volumeMountOf(name, target string, readOnly bool, subPath string) *yaml.Node {
	m := newMapping()
	m.set("name", str(name))
	m.set("mountPath", str(target))
	if subPath != "" {
		m.set("subPath", str(subPath))
	}
	if readOnly {
		m.set("readOnly", boolean(true))
	}
	return m.node()
}

// nodeContainer runs `flowctl node` on n's component, with the same
// arguments as the Compose service but for where an image listens.
func (b *kubeBuilder) nodeContainer(n *node, vols *kubeVolumes) *yaml.Node {
	pl, c := b.pl, n.c
	// The image is a container of the same pod: on loopback.
	args := pl.nodeArgs(n, "127.0.0.1", servicePeer)
	ct := newMapping()
	ct.set("name", str(kubeNodeContainer))
	ct.set("image", str(pl.opts.Image))
	ct.set("command", strs(true, flowctlBin))
	ct.set("args", strs(true, kubeEscapeAll(args)...))

	ports := []*yaml.Node{}
	used := map[string]bool{"http": true}
	if pl.receives(n) {
		ports = append(ports, containerPort("stream", nodePort, ""))
		used["stream"] = true
	}
	ports = append(ports, containerPort("http", httpPort, ""))
	if n.sidecar == "" {
		ports = append(ports, b.componentPorts(n, used, true)...)
	}
	ct.set("ports", seq(ports...))
	ct.set("livenessProbe", httpProbe("/healthz", "http", 10, 3))
	ct.set("readinessProbe", httpProbe("/readyz", "http", 5, 3))
	if c.StartupTimeout > 0 {
		threshold := int(math.Ceil(c.StartupTimeout.Seconds() / kubeStartupPeriod))
		ct.set("startupProbe", httpProbe("/healthz", "http", kubeStartupPeriod, max(threshold, 1)))
	}

	vols.add("pipeline", "configMap", nameOnly(b.configMapName()))
	mounts := []*yaml.Node{volumeMountOf("pipeline", pl.pipelinePath(), true, b.fileKey)}
	if d := n.dataDir; d != nil {
		hp := newMapping()
		hp.set("path", str(b.hostPathOf(d.rel)))
		hp.set("type", str("DirectoryOrCreate"))
		vols.add("data", "hostPath", hp.node())
		mounts = append(mounts, volumeMountOf("data", d.target, d.readOnly, ""))
		how := "writes"
		if d.readOnly {
			how = "reads"
		}
		pl.warn(c, "config.path", fmt.Sprintf("%s %q %s its files in the host directory %s (hostPath, mounted at %s): that is the disk of whichever cluster node runs the pod", c.Role, c.Name, how, b.hostPathOf(d.rel), d.target),
			"fine on a one-node cluster or with podman kube play; on a real cluster use a PersistentVolumeClaim (volumes: [{name: ..., container_path: ...}] and an absolute path) or an object store")
	}
	if n.checkpoints {
		mounts = append(mounts, volumeMountOf(kubeStatePVC, stateDir, false, ""))
	}
	if pl.opts.TLS {
		name := b.tlsSecretName(n)
		vols.add("tls", "secret", secretVolume(name, ""))
		mounts = append(mounts, volumeMountOf("tls", tlsMount, true, ""))
		for _, k := range []struct{ key, out string }{
			{"ca.crt", "tls/" + tlsutil.CACertFile},
			{"node.crt", "tls/" + n.service + ".crt"},
			{"node.key", "tls/" + n.service + ".key"},
		} {
			b.sources = append(b.sources, SecretSource{Name: name, Namespace: b.namespace, Key: k.key, Output: k.out, Type: "Opaque"})
		}
	}
	env := b.varEnv(n)
	if n.sidecar == "" {
		// The component runs inside the node: its own settings go here.
		mounts = append(mounts, b.userVolumes(n, vols)...)
		mounts = append(mounts, b.secretMounts(n, vols, env)...)
		mounts = append(mounts, b.configSecretMounts(n, vols)...)
		b.configEnv(n, env)
		for k, v := range c.Env {
			env[k] = literalEnv(k, v)
		}
		if _, err := kubeQuantity(c.Resources.Limits.Memory); err == nil {
			if v := nodeMemLimit(c, c.Resources.Limits.Memory); v != "" {
				env["GOMEMLIMIT"] = literalEnv("GOMEMLIMIT", v)
			}
		}
		if res := b.resources(c); res != nil {
			ct.set("resources", res)
		}
	}
	if e := b.envList(c, env); e != nil {
		ct.set("env", e)
	}
	ct.set("volumeMounts", seq(mounts...))
	if c.HealthCheck != "" || c.HealthPort != 0 {
		if n.sidecar == "" {
			pl.warn(c, "health_check|health_port", fmt.Sprintf("%s %q: health_check/health_port are not translated", c.Role, c.Name),
				"the node's own /healthz (liveness) and /readyz (readiness) are probed instead")
		}
	}
	return ct.node()
}

// sidecarContainer runs an image component's own image in its node's
// Pod: the node drives it at 127.0.0.1:PORT.
func (b *kubeBuilder) sidecarContainer(n *node, vols *kubeVolumes) *yaml.Node {
	pl, c := b.pl, n.c
	ct := newMapping()
	ct.set("name", str(n.sidecar))
	ct.set("image", str(c.Image))
	if len(c.Command) > 0 {
		ct.set("command", strs(true, kubeEscapeAll(c.Command)...))
	}
	if len(c.Args) > 0 {
		ct.set("args", strs(true, kubeEscapeAll(c.Args)...))
	}
	if c.WorkingDir != "" {
		ct.set("workingDir", str(c.WorkingDir))
	}
	if ports := b.componentPorts(n, map[string]bool{"http": true, "stream": true}, false); len(ports) > 0 {
		ct.set("ports", seq(ports...))
	}
	env := map[string]*yaml.Node{}
	mounts := b.userVolumes(n, vols)
	mounts = append(mounts, b.secretMounts(n, vols, env)...)
	// As in Compose: the component serves where its node dials it; a PORT
	// of the file's wins. No FLOWCTL_ENDPOINT: nothing registers.
	if _, set := c.Env["PORT"]; !set {
		env["PORT"] = literalEnv("PORT", fmt.Sprintf("0.0.0.0:%d", n.componentPort))
	}
	for k, v := range c.Env {
		env[k] = literalEnv(k, v)
	}
	if e := b.envList(c, env); e != nil {
		ct.set("env", e)
	}
	if len(mounts) > 0 {
		ct.set("volumeMounts", seq(mounts...))
	}
	if res := b.resources(c); res != nil {
		ct.set("resources", res)
	}
	if probe := b.sidecarProbe(n); probe != nil {
		ct.set("readinessProbe", probe)
	}
	if n.componentPort == nodePort || n.componentPort == httpPort {
		pl.warn(c, "ports|image", fmt.Sprintf("%s %q serves on port %d, which its node uses in the same Pod", c.Role, c.Name, n.componentPort),
			fmt.Sprintf("the two containers share the Pod's network: serve the component on another port than %d and %d", nodePort, httpPort))
	}
	pl.warn(c, "image", fmt.Sprintf("%s %q runs its image as container %q in the Pod of its node, which reaches it at 127.0.0.1:%d", c.Role, c.Name, n.sidecar, n.componentPort),
		"the containers start together (no native-sidecar ordering: the node waits for the component within startup_timeout and redelivers when it restarts), and replicas scale the Pod, both containers at once")
	return ct.node()
}

// sidecarProbe checks an image's own health endpoint, which Kubernetes
// can (unlike Compose) without a tool inside the image.
func (b *kubeBuilder) sidecarProbe(n *node) *yaml.Node {
	c := n.c
	if c.HealthCheck == "" && c.HealthPort == 0 {
		return nil
	}
	p, port := c.HealthCheck, c.HealthPort
	if u, err := url.Parse(p); err == nil && u.Scheme != "" {
		p = u.Path
		if port == 0 {
			port, _ = strconv.Atoi(u.Port())
		}
	}
	if p == "" {
		p = "/"
	}
	if port == 0 || !strings.HasPrefix(p, "/") {
		b.pl.warn(c, "health_check|health_port", fmt.Sprintf("%s %q: health_check %q without a port is not translated", c.Role, c.Name, c.HealthCheck),
			"give health_port (the port the image serves its health path on); the node's /readyz reports whether it reaches the component")
		return nil
	}
	h := newMapping()
	h.set("path", str(p))
	h.set("port", integer(port))
	m := newMapping()
	m.set("httpGet", h.node())
	m.set("periodSeconds", integer(10))
	m.set("timeoutSeconds", integer(5))
	return m.node()
}

func httpProbe(p, port string, period, failures int) *yaml.Node {
	h := newMapping()
	h.set("path", str(p))
	h.set("port", str(port))
	m := newMapping()
	m.set("httpGet", h.node())
	m.set("periodSeconds", integer(period))
	m.set("timeoutSeconds", integer(5))
	m.set("failureThreshold", integer(failures))
	return m.node()
}

func containerPort(name string, port int, protocol string) *yaml.Node {
	m := newMapping()
	if name != "" {
		m.set("name", str(name))
	}
	m.set("containerPort", integer(port))
	if protocol == "" {
		protocol = "TCP"
	}
	m.set("protocol", str(protocol))
	return m.node()
}

func nameOnly(name string) *yaml.Node {
	m := newMapping()
	m.set("name", str(name))
	return m.node()
}

func secretVolume(name string, mode string) *yaml.Node {
	m := newMapping()
	m.set("secretName", str(name))
	if mode != "" {
		m.set("defaultMode", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: mode})
	}
	return m.node()
}

// componentPorts lists the component's container ports (hostPort is not
// published: a warning says what to do instead). used are the port
// names taken in the Pod already.
func (b *kubeBuilder) componentPorts(n *node, used map[string]bool, inNode bool) []*yaml.Node {
	pl, c := b.pl, n.c
	var out []*yaml.Node
	for i, p := range c.Ports {
		at := fmt.Sprintf("ports[%d]", i)
		if inNode && (p.ContainerPort == nodePort || p.ContainerPort == httpPort) {
			pl.warn(c, at, fmt.Sprintf("port %d of %s %q is the node's own port in its container; not listed again", p.ContainerPort, c.Role, c.Name),
				fmt.Sprintf("the node listens on %d (stream) and %d (http): have the component use another port", nodePort, httpPort))
			continue
		}
		name := strings.ToLower(p.Name)
		if name != "" && (!portNameOK(name) || used[name]) {
			pl.warn(c, at+".name", fmt.Sprintf("port name %q is not usable in the Pod (taken, or not a Kubernetes port name); the port is listed without a name", p.Name),
				"a port name is at most 15 lower-case letters, digits and '-', unique in the Pod (http and stream are the node's)")
			name = ""
		}
		if name != "" {
			used[name] = true
		}
		proto := strings.ToUpper(p.Protocol)
		switch proto {
		case "", "TCP", "UDP", "SCTP":
		default:
			pl.warn(c, at+".protocol", fmt.Sprintf("port protocol %q is not one Kubernetes knows; TCP is used", p.Protocol), "use TCP, UDP or SCTP")
			proto = "TCP"
		}
		if p.HostPort != 0 {
			pl.warn(c, at+".hostPort|"+at+".host_port", fmt.Sprintf("host port %d of %s %q is not published: container port %d is listed", p.HostPort, c.Role, c.Name, p.ContainerPort),
				"to reach it from outside the cluster, add a Service of type NodePort or LoadBalancer, or an Ingress, yourself")
		}
		out = append(out, containerPort(name, p.ContainerPort, proto))
	}
	return out
}

// resources maps requests and limits to Kubernetes quantities; one the
// API server would reject is a warning and left out.
func (b *kubeBuilder) resources(c *spec.Component) *yaml.Node {
	pl, r := b.pl, c.Resources
	list := func(kind string, l spec.ResourceList) (*mapping, map[string]float64) {
		m, vals := newMapping(), map[string]float64{}
		for _, q := range []struct{ name, v string }{{"cpu", l.CPU}, {"memory", l.Memory}} {
			if q.v == "" {
				continue
			}
			v, err := kubeQuantity(q.v)
			if err != nil {
				pl.warn(c, "resources."+kind+"."+q.name, fmt.Sprintf("resources.%s.%s: %v; left out", kind, q.name, err),
					"write a Kubernetes quantity: cpu as 500m or 1.5, memory as 512Mi, 1Gi or 1G")
				continue
			}
			m.set(q.name, str(strings.TrimSpace(q.v)))
			vals[q.name] = v
		}
		return m, vals
	}
	limits, lv := list("limits", r.Limits)
	requests, rv := list("requests", r.Requests)
	for _, name := range []string{"cpu", "memory"} {
		if l, ok := lv[name]; ok {
			if q, ok := rv[name]; ok && q > l {
				pl.warn(c, "resources.requests."+name, fmt.Sprintf("resources.requests.%s is above the limit; left out", name),
					"Kubernetes refuses a request above its limit: lower the request")
				delete(requests.values, name)
			}
		}
	}
	res := newMapping()
	if limits.len() > 0 {
		res.set("limits", limits.node())
	}
	if requests.len() > 0 {
		res.set("requests", requests.node())
	}
	if res.len() == 0 {
		return nil
	}
	return res.node()
}

// userVolumes are the component's volumes: host paths as hostPath
// volumes (relative ones under the pipeline's directory), names as
// PersistentVolumeClaims, each declared once in the manifest.
func (b *kubeBuilder) userVolumes(n *node, vols *kubeVolumes) []*yaml.Node {
	pl, c := b.pl, n.c
	var out []*yaml.Node
	for i, v := range c.Volumes {
		target := volumeTarget(v)
		at := fmt.Sprintf("volumes[%d]", i)
		vol := fmt.Sprintf("volume-%d", i)
		switch {
		case !strings.HasPrefix(target, "/"):
			pl.warn(c, at, fmt.Sprintf("volume %d of %s %q has no absolute container path (%q); left out", i+1, c.Role, c.Name, target),
				"give it `container_path: /absolute/path` (or mountPath)")
			continue
		case v.HostPath != "":
			hp := newMapping()
			hp.set("path", str(b.hostPathOf(v.HostPath)))
			vols.add(vol, "hostPath", hp.node())
			pl.warn(c, at, fmt.Sprintf("volume %d of %s %q is the host directory %s (hostPath): the disk of whichever cluster node runs the pod", i+1, c.Role, c.Name, b.hostPathOf(v.HostPath)),
				"fine on a one-node cluster; on a real cluster use a named volume (a PersistentVolumeClaim)")
		case v.Name != "":
			claim := boundedName(b.name+"-"+v.Name, maxDNSLabel)
			pvc := newMapping()
			pvc.set("claimName", str(claim))
			vols.add(vol, "persistentVolumeClaim", pvc.node())
			if !b.claimNames[claim] {
				b.claimNames[claim] = true
				obj := object("v1", "PersistentVolumeClaim", b.meta(claim, nil))
				obj.set("spec", claimSpec())
				b.claims = append(b.claims, kubeDoc{comment: fmt.Sprintf("named volume %q of %s %q, %s:%d", v.Name, c.Role, c.Name, filepath.Base(pl.fileName()), pos(c, at).Line), obj: obj.node()})
				pl.warn(c, at, fmt.Sprintf("named volume %q becomes PersistentVolumeClaim %q (%s, ReadWriteOnce, the cluster's default StorageClass)", v.Name, claim, kubeClaimSize),
					"ReadWriteOnce: pods on different cluster nodes cannot share it; resize it with kubectl edit pvc if 1Gi does not fit")
			}
		default:
			pl.warn(c, at, fmt.Sprintf("volume %d of %s %q has neither a name nor a host_path; left out", i+1, c.Role, c.Name),
				"give it `name:` (a PersistentVolumeClaim) or `host_path:` (a directory of the cluster node)")
			continue
		}
		out = append(out, volumeMountOf(vol, target, v.ReadOnly, ""))
	}
	return out
}

// secretMounts mounts each of the component's secrets from a Secret
// (one key, at the file path Compose uses) and, for a secret's `env`,
// sets that variable from the same key. translate writes no Secret: a
// warning gives the kubectl command, and b.sources what apply needs.
func (b *kubeBuilder) secretMounts(n *node, vols *kubeVolumes, env map[string]*yaml.Node) []*yaml.Node {
	pl, c := b.pl, n.c
	var out []*yaml.Node
	for i, s := range c.Secrets {
		at := fmt.Sprintf("secrets[%d]", i)
		short := dnsName(s.Name, maxDNSLabel)
		file := "secrets/" + short
		if s.HostPath != "" {
			file = s.HostPath
		}
		file = b.localPath(file)
		name := boundedName(b.name+"-"+short, maxDNSLabel)
		if prev, ok := b.secretFiles[name]; ok && prev != file {
			name = boundedName(b.name+"-"+dnsName(c.Name, maxDNSLabel)+"-"+short, maxDNSLabel)
		}
		key := configMapKey(s.Name)
		target := s.ContainerPath
		if target == "" {
			target = s.Name
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		mode := ""
		if s.Mode != "" {
			if m, err := strconv.ParseUint(s.Mode, 8, 32); err == nil && m <= 0o777 {
				mode = strconv.FormatUint(m, 10)
			} else {
				pl.warn(c, at+".mode", fmt.Sprintf("secret %q: mode %q is not an octal file mode; left out", s.Name, s.Mode), "write it as 0400")
			}
		}
		vol := fmt.Sprintf("secret-%d", i)
		vols.add(vol, "secret", secretVolume(name, mode))
		out = append(out, volumeMountOf(vol, target, true, key))
		if s.Env != "" {
			ref := newMapping()
			ref.set("name", str(name))
			ref.set("key", str(key))
			from := newMapping()
			from.set("secretKeyRef", ref.node())
			e := newMapping()
			e.set("name", str(s.Env))
			e.set("valueFrom", from.node())
			env[s.Env] = e.node()
		}
		if _, ok := b.secretFiles[name]; !ok {
			b.secretFiles[name] = file
			b.sources = append(b.sources, SecretSource{Name: name, Namespace: b.namespace, Key: key, File: file, Type: s.Type})
			cmd := fmt.Sprintf("kubectl create secret generic %s --from-file=%s=%s", name, key, file)
			if s.Type != "" && s.Type != "Opaque" {
				cmd += " --type=" + s.Type
			}
			if b.namespace != "" {
				cmd += " -n " + b.namespace
			}
			what := fmt.Sprintf("secret %q is mounted from Secret %q (key %s) at %s", s.Name, name, key, target)
			if s.Env != "" {
				what += fmt.Sprintf(" and set as %s", s.Env)
			}
			hint := "translate writes no secret values: create it with " + cmd + " (flowctl apply --target kubernetes creates it from the file)"
			if s.HostPath == "" {
				hint = fmt.Sprintf("it has no host_path, so its value is read from %s: put it there, then ", file) + strings.TrimPrefix(hint, "translate writes no secret values: ")
			}
			pl.warn(c, at+".name", what, hint)
		}
		if len(s.Labels) > 0 {
			pl.warn(c, at+".labels", fmt.Sprintf("secret %q: labels are not translated", s.Name),
				fmt.Sprintf("translate writes no Secret; label it yourself: kubectl label secret %s KEY=VALUE", name))
		}
	}
	return out
}

// localPath is a path of this machine for a file the apply side reads:
// relative paths are relative to the pipeline file.
func (b *kubeBuilder) localPath(p string) string {
	if filepath.IsAbs(p) || path.IsAbs(filepath.ToSlash(p)) {
		return filepath.ToSlash(p)
	}
	return path.Join(b.hostDir, filepath.ToSlash(p))
}

// hostPathOf is a host directory as a hostPath volume names it.
func (b *kubeBuilder) hostPathOf(p string) string { return b.localPath(p) }

func (b *kubeBuilder) tlsSecretName(n *node) string {
	return boundedName(b.name+"-tls-"+n.service, maxDNSLabel)
}

// varEnv sets, in a node container, every variable the pipeline file
// uses from the Secret PIPELINE-env: the node expands ${VAR} from its
// environment when it loads the file. The key is optional, so an absent
// one leaves a default to apply (and a variable without one stops the
// node with "environment variable X is not set").
func (b *kubeBuilder) varEnv(n *node) map[string]*yaml.Node {
	env := map[string]*yaml.Node{}
	for _, v := range b.vars {
		env[v.name] = secretKeyEnv(v.name, b.envSecretName(), v.name, true)
	}
	return env
}

// secretKeyEnv is an env entry set from key of Secret secret.
func secretKeyEnv(name, secret, key string, optional bool) *yaml.Node {
	ref := newMapping()
	ref.set("name", str(secret))
	ref.set("key", str(key))
	if optional {
		ref.set("optional", boolean(true))
	}
	from := newMapping()
	from.set("secretKeyRef", ref.node())
	e := newMapping()
	e.set("name", str(name))
	e.set("valueFrom", from.node())
	return e.node()
}

// configSecretMounts mounts each file a built-in reads a secret from
// (see secretfields.go) from a Secret of its own, one key named after the
// file, read-only where the component reads it. Components that read the
// same file share the Secret; translate writes none: a warning gives the
// kubectl command, and b.sources what apply needs.
func (b *kubeBuilder) configSecretMounts(n *node, vols *kubeVolumes) []*yaml.Node {
	pl, c := b.pl, n.c
	var out []*yaml.Node
	for i, f := range n.secretFiles {
		file := b.localPath(f.rel)
		key := configMapKey(path.Base(f.rel))
		name := boundedName(b.name+"-file-"+f.rel, maxDNSLabel)
		for j := 2; ; j++ {
			if prev, taken := b.secretFiles[name]; !taken || prev == file {
				break
			}
			name = fmt.Sprintf("%s-%d", boundedName(b.name+"-file-"+f.rel, maxDNSLabel-4), j)
		}
		vol := fmt.Sprintf("file-%d", i)
		vols.add(vol, "secret", secretVolume(name, ""))
		out = append(out, volumeMountOf(vol, f.target, true, key))
		if _, ok := b.secretFiles[name]; ok {
			continue
		}
		b.secretFiles[name] = file
		b.sources = append(b.sources, SecretSource{Name: name, Namespace: b.namespace, Key: key, File: file})
		cmd := fmt.Sprintf("kubectl create secret generic %s --from-file=%s=%s", name, key, file)
		if b.namespace != "" {
			cmd += " -n " + b.namespace
		}
		pl.warn(c, "config."+f.field, fmt.Sprintf("%s %q reads %s (config.%s) from Secret %q (key %s), mounted read-only at %s", c.Role, c.Name, f.rel, f.field, name, key, f.target),
			"translate writes no secret values: create it with "+cmd+" (flowctl apply --target kubernetes creates it from the file)")
	}
	return out
}

// configEnv sets each variable a built-in reads a secret from out of the
// Secret PIPELINE-env, as the file's ${VAR} are; the key is optional
// only where the component opens without it.
func (b *kubeBuilder) configEnv(n *node, env map[string]*yaml.Node) {
	pl, c := b.pl, n.c
	for _, e := range n.secretEnvs {
		env[e.name] = secretKeyEnv(e.name, b.envSecretName(), e.name, !e.required)
		b.configEnvs[e.name] = b.configEnvs[e.name] || e.required
		unset := "without the key the component does not open (the pod waits for it)"
		if !e.required {
			unset = "the key is optional: without it the component runs without the secret"
		}
		cmd := fmt.Sprintf("kubectl create secret generic %s --from-literal=%s=VALUE", b.envSecretName(), e.name)
		if b.namespace != "" {
			cmd += " -n " + b.namespace
		}
		pl.warn(c, "config."+e.field, fmt.Sprintf("%s %q reads a secret from the environment variable %s (config.%s), set from Secret %q key %s; %s", c.Role, c.Name, e.name, e.field, b.envSecretName(), e.name, unset),
			fmt.Sprintf("create the Secret with %s (flowctl apply --target kubernetes creates it from its own environment)", cmd))
	}
}

// varWarnings says, once per variable, where a ${VAR} of the file gets
// its value in the cluster, and lists it for apply.
func (b *kubeBuilder) varWarnings() {
	pl := b.pl
	inFile := map[string]bool{}
	for _, v := range b.vars {
		inFile[v.name] = true
		required, read := b.configEnvs[v.name]
		optional := v.hasDef && !(read && required)
		b.sources = append(b.sources, SecretSource{Name: b.envSecretName(), Namespace: b.namespace, Key: v.name, Env: v.name, Optional: optional})
		unset := "without it the node refuses to start (the variable has no default)"
		if v.hasDef {
			unset = fmt.Sprintf("without it the default %q applies", v.def)
		}
		cmd := fmt.Sprintf("kubectl create secret generic %s --from-literal=%s=VALUE", b.envSecretName(), v.name)
		if b.namespace != "" {
			cmd += " -n " + b.namespace
		}
		pl.warnAt(v.pos, fmt.Sprintf("${%s} stays as written in ConfigMap %q: each node expands it from its environment, set from Secret %q key %s; %s", v.name, b.configMapName(), b.envSecretName(), v.name, unset),
			fmt.Sprintf("create the Secret with %s, or let flowctl apply --target kubernetes substitute the file from its own environment (paths mounted from the host were chosen with this machine's value)", cmd))
	}
	// The variables built-ins read and the file does not name.
	for _, name := range sortedKeys(b.configEnvs) {
		if !inFile[name] {
			b.sources = append(b.sources, SecretSource{Name: b.envSecretName(), Namespace: b.namespace, Key: name, Env: name, Optional: !b.configEnvs[name]})
		}
	}
}

// envList is a container's env, sorted by name; a name Kubernetes
// refuses is a warning and left out.
func (b *kubeBuilder) envList(c *spec.Component, env map[string]*yaml.Node) *yaml.Node {
	if len(env) == 0 {
		return nil
	}
	var items []*yaml.Node
	for _, k := range sortedKeys(env) {
		if !envNameRE().MatchString(k) {
			b.pl.warn(c, "env."+k, fmt.Sprintf("environment variable %q is not a name Kubernetes takes; left out", k),
				"a name is letters, digits, '_', '-' and '.', not starting with a digit")
			continue
		}
		items = append(items, env[k])
	}
	return seq(items...)
}

func literalEnv(name, value string) *yaml.Node {
	e := newMapping()
	e.set("name", str(name))
	e.set("value", str(kubeEscape(value)))
	return e.node()
}

// policyWarnings covers what a workload cannot carry.
func (b *kubeBuilder) policyWarnings(n *node) {
	pl, c := b.pl, n.c
	if _, set := c.Positions["restart_policy"]; set {
		switch c.RestartPolicy {
		case "always", "unless-stopped":
		default:
			pl.warn(c, "restart_policy", fmt.Sprintf("restart_policy %q is not translated: a %s restarts its pods always", c.RestartPolicy, kindOf(n)),
				"a component that must not run again belongs in a Job, which translate does not write")
		}
	}
	if len(c.DependsOn) > 0 {
		pl.warn(c, "depends_on", fmt.Sprintf("depends_on of %s %q is not translated: Kubernetes starts every workload at once", c.Role, c.Name),
			"nodes retry until their peers answer, so order is not needed for correctness")
	}
}

func kindOf(n *node) string {
	if n.checkpoints {
		return "StatefulSet"
	}
	return "Deployment"
}

// kubeEscape doubles every `$`: Kubernetes expands $(VAR) in command,
// args and env values and reads `$$` as `$`, so a value reaches the
// container as written.
func kubeEscape(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func kubeEscapeAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = kubeEscape(s)
	}
	return out
}

// varRef is a variable the pipeline file uses, at its first reference.
type varRef struct {
	name   string
	pos    spec.Pos
	def    string
	hasDef bool
}

// fileVars finds the ${VAR} references of a pipeline file by the rules of
// spec.Substitute (whole comment lines skipped, `$${` a literal), one per
// variable, sorted by name. A default is the first reference's.
func fileVars(data []byte) []varRef {
	seen := map[string]bool{}
	var out []varRef
	for i, line := range strings.Split(string(data), "\n") {
		if t := strings.TrimLeft(line, " \t"); strings.HasPrefix(t, "#") {
			continue
		}
		for j := 0; j < len(line); j++ {
			if strings.HasPrefix(line[j:], "$${") {
				j += 2
				continue
			}
			if !strings.HasPrefix(line[j:], "${") {
				continue
			}
			end := strings.IndexByte(line[j:], '}')
			if end < 0 {
				break
			}
			name, def, hasDef := strings.Cut(line[j+2:j+end], ":-")
			if envVarRE().MatchString(name) && !seen[name] {
				seen[name] = true
				col := len([]rune(line[:j])) + 1
				out = append(out, varRef{name: name, pos: spec.Pos{Line: i + 1, Col: col}, def: def, hasDef: hasDef})
			}
			j += end
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

var (
	envVarRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	envNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`) })
	// labelNameRE is a label value or the name part of a key.
	labelNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`) })
	dnsSubRE    = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	})
	keyRE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[-._a-zA-Z0-9]+$`) })
	portNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) })
	quantityRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$`)
	})
)

// labelValueOK reports whether v is a Kubernetes label value.
func labelValueOK(v string) bool { return v == "" || (len(v) <= 63 && labelNameRE().MatchString(v)) }

// KubernetesSelector is the label selector of every object the
// Kubernetes manifest of pipeline has (every pipeline's with ""), as
// apply, get and delete look them up.
func KubernetesSelector(pipeline string) string {
	sel := labelManagedBy + "=flowctl"
	if pipeline != "" {
		sel += "," + labelPipeline + "=" + labelValue(pipeline)
	}
	return sel
}

// KubernetesLabels are the labels apply puts on the Secrets it makes for
// pipeline, so that the selector finds them with the rest.
func KubernetesLabels(pipeline string) map[string]string {
	v := labelValue(pipeline)
	return map[string]string{labelManagedBy: "flowctl", labelPartOf: v, labelPipeline: v}
}

// labelValue makes v a label value (a DNS label when it is not one).
func labelValue(v string) string {
	if labelValueOK(v) {
		return v
	}
	return dnsName(v, maxDNSLabel)
}

// labelKeyOK reports whether k is a label or annotation key:
// [DNS subdomain prefix/]name.
func labelKeyOK(k string) bool {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	} else if prefix == "" || len(prefix) > 253 || !dnsSubRE().MatchString(prefix) {
		return false
	}
	return len(name) <= 63 && labelNameRE().MatchString(name)
}

// portNameOK reports whether s is an IANA service name as Kubernetes
// takes it for a port: at most 15, a letter among them, no "--".
func portNameOK(s string) bool {
	return len(s) <= 15 && portNameRE().MatchString(s) && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") && !strings.Contains(s, "--")
}

// configMapKey makes s a ConfigMap or Secret key.
func configMapKey(s string) string {
	if keyRE().MatchString(s) && s != "." && s != ".." {
		return s
	}
	return dnsName(s, 253)
}

// kubeQuantity checks a resource quantity as the API server parses it
// (a decimal number with a binary or decimal suffix or an exponent) and
// returns its value; zero and negative ones are refused too.
func kubeQuantity(q string) (float64, error) {
	s := strings.TrimSpace(q)
	m := quantityRE().FindStringSubmatch(s)
	if m == nil || strings.Count(m[1], ".") > 1 || strings.Trim(m[1], "+-.") == "" {
		return 0, fmt.Errorf("%q is not a Kubernetes quantity", q)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a Kubernetes quantity", q)
	}
	if v <= 0 {
		return 0, fmt.Errorf("%q is not above zero", q)
	}
	factor := 1.0
	switch suf := m[2]; {
	case suf == "":
	case suf[0] == 'e' || suf[0] == 'E':
		e, _ := strconv.Atoi(suf[1:])
		factor = math.Pow(10, float64(e))
	default:
		for _, ms := range memSuffixes {
			if ms.suffix == suf {
				factor = ms.factor
			}
		}
		switch suf {
		case "n":
			factor = 1e-9
		case "u":
			factor = 1e-6
		case "m":
			factor = 1e-3
		}
	}
	return v * factor, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
