package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/kube"
	"github.com/flowctl/flowctl/internal/translate"
)

// `--target kubernetes` on apply, get and delete: the pipeline file
// translated into the manifest `flowctl translate --to kubernetes` writes,
// sent with server-side apply (field manager "flowctl") to the cluster of
// the kubeconfig (--kubeconfig, else $KUBECONFIG, else ~/.kube/config;
// --kube-context). The Secrets the manifest refers to are made here from
// their sources (files, this shell's ${VAR}s, the TLS certificates) and
// never written to disk. get and delete find the objects by the labels
// translate puts on every one of them.

// kubeTarget reports whether --target names Kubernetes.
func kubeTarget(target string) bool { return target == string(translate.Kubernetes) }

// kubeFlags are the flags that say which cluster.
type kubeFlags struct {
	kubeconfig, context string
}

// addKubeFlags puts --kubeconfig and --kube-context on cmd.
func addKubeFlags(cmd *cobra.Command, f *kubeFlags) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubernetes: the kubeconfig file [$KUBECONFIG, else ~/.kube/config]")
	cmd.Flags().StringVar(&f.context, "kube-context", "", "kubernetes: the kubeconfig context [its current-context]")
}

func (f *kubeFlags) client() (*kube.Client, error) {
	cfg, err := kube.LoadConfig(f.kubeconfig, f.context)
	if err != nil {
		return nil, err
	}
	return kube.NewClient(cfg)
}

// kubeKinds are the kinds a translated pipeline is made of, in the order
// delete removes them (workloads first, so nothing restarts on a missing
// ConfigMap meanwhile). PersistentVolumeClaims hold state and data: only
// delete --volumes removes them.
var kubeKinds = []struct{ apiVersion, kind string }{
	{"apps/v1", "Deployment"},
	{"apps/v1", "StatefulSet"},
	{"v1", "Service"},
	{"v1", "ConfigMap"},
	{"v1", "Secret"},
}

var kubeClaims = struct{ apiVersion, kind string }{"v1", "PersistentVolumeClaim"}

// runApplyKube is `flowctl apply --target kubernetes`.
func runApplyKube(ctx context.Context, g *globals, o applyOptions) error {
	if len(o.files) == 0 {
		return errors.New("no pipeline file given: use -f FILE or -f DIR")
	}
	if o.out != "" {
		return errors.New("--out goes with --target docker-compose: --target kubernetes writes no files (flowctl translate --to kubernetes -o DIR does)")
	}
	paths, err := expandApplyPaths(o.files)
	if err != nil {
		return err
	}
	files, ok, err := loadApplyFiles(g, paths)
	if err != nil {
		return err
	}
	if !ok {
		return &exitError{code: 1}
	}
	c, err := o.kube.client()
	if err != nil {
		return err
	}
	image := o.image
	if image == "" {
		image = "flowctl:" + version
	}
	for _, f := range files {
		if f.path == "-" {
			return errors.New("--target kubernetes needs the pipeline file on disk (its directory holds the files the pods mount): save it and give -f FILE")
		}
		if err := applyKubeFile(ctx, g, c, f, image, o); err != nil {
			return err
		}
	}
	return nil
}

func applyKubeFile(ctx context.Context, g *globals, c *kube.Client, f applyFile, image string, o applyOptions) error {
	// The file as applied: ${VAR} substituted here, as for the server.
	tmp, err := os.CreateTemp("", "flowctl-kube-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(f.data); err != nil {
		tmp.Close()
		return err
	}
	tmp.Close()
	opts := translate.Options{
		Target: translate.Kubernetes, Image: image, PipelineFile: tmp.Name(), HostDir: f.dir,
		Registry: components.NewRegistry(), TLS: o.tls,
	}
	res, err := translate.Translate(f.pl, opts)
	if err != nil {
		return err
	}
	for _, d := range res.Warnings {
		if strings.Contains(d.Message, "kubectl create secret") || strings.Contains(d.Hint, "kubectl create secret") {
			continue // apply makes them
		}
		fmt.Fprintln(g.stderr, d.String())
	}
	sources, err := translate.KubernetesSecrets(f.pl, opts)
	if err != nil {
		return err
	}
	outputs := map[string][]byte{}
	if o.tls {
		if outputs, err = kubeCerts(filepath.Join(f.dir, ".flowctl", "kubernetes", f.pl.Name), res.Files); err != nil {
			return err
		}
	}
	secrets, err := kubeSecretDocs(f.pl.Name, sources, outputs)
	if err != nil {
		return err
	}
	docs, err := kube.SplitDocuments(res.Main().Data)
	if err != nil {
		return err
	}
	all := append(secrets, docs...)
	if o.dryRun {
		return kubeDryRun(ctx, g.stdout, c, all, len(secrets))
	}
	if err := kubeEnsureNamespaces(ctx, g.stdout, c, all); err != nil {
		return err
	}
	kept := map[string]bool{}
	for i, d := range all {
		obj, err := c.Apply(ctx, d, kube.ApplyOptions{FieldManager: "flowctl", Force: true})
		if err != nil {
			return err
		}
		kept[obj.Meta.String()] = true
		what := "applied"
		if i < len(secrets) {
			what = "applied (values not shown)"
		}
		fmt.Fprintf(g.stdout, "%s/%s %s\n", strings.ToLower(obj.Kind), obj.Name, what)
	}
	// Objects of an earlier apply that the file no longer has (a removed
	// component) are deleted; claims stay (their data is not ours to drop).
	for _, k := range kubeKinds {
		objs, err := c.List(ctx, k.apiVersion, k.kind, kube.AllNamespaces, translate.KubernetesSelector(f.pl.Name))
		if err != nil {
			return err
		}
		for _, obj := range objs {
			if kept[obj.Meta.String()] {
				continue
			}
			if err := c.Delete(ctx, obj.APIVersion, obj.Kind, obj.Namespace, obj.Name); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s/%s deleted (no longer in %s)\n", strings.ToLower(obj.Kind), obj.Name, f.name)
		}
	}
	return nil
}

// kubeCerts keeps the TLS files of an earlier apply in dir (so that nodes
// of both applies trust each other), or writes the new ones there (keys
// 0600), and returns them by name.
func kubeCerts(dir string, files []translate.File) (map[string][]byte, error) {
	out := map[string][]byte{}
	var certs []translate.File
	for _, f := range files {
		if strings.HasPrefix(f.Name, "tls/") {
			certs = append(certs, f)
		}
	}
	existing := true
	for _, f := range certs {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		if err != nil {
			existing = false
			break
		}
		out[f.Name] = b
	}
	if existing {
		return out, nil
	}
	res := translate.Result{Files: certs}
	if err := res.WriteDir(dir); err != nil {
		return nil, err
	}
	for _, f := range certs {
		out[f.Name] = f.Data
	}
	return out, nil
}

// kubeSecretDocs builds the Secrets the manifest refers to from their
// sources, one document per Secret.
func kubeSecretDocs(pipeline string, sources []translate.SecretSource, outputs map[string][]byte) ([][]byte, error) {
	type secret struct {
		name, namespace, typ string
		data                 map[string]string
	}
	var order []*secret
	byName := map[string]*secret{}
	for _, s := range sources {
		var val []byte
		switch {
		case s.File != "":
			b, err := os.ReadFile(s.File)
			if err != nil {
				return nil, fmt.Errorf("secret %s (key %s): %w", s.Name, s.Key, err)
			}
			val = b
		case s.Output != "":
			b, ok := outputs[s.Output]
			if !ok {
				return nil, fmt.Errorf("secret %s (key %s): %s was not generated", s.Name, s.Key, s.Output)
			}
			val = b
		case s.Env != "":
			v, ok := os.LookupEnv(s.Env)
			if !ok {
				if s.Optional {
					continue
				}
				return nil, fmt.Errorf("secret %s: the pipeline file uses ${%s}, which is not set in this shell: set it (the pods read it from Secret %s)", s.Name, s.Env, s.Name)
			}
			val = []byte(v)
		}
		key := s.Namespace + "/" + s.Name
		sec := byName[key]
		if sec == nil {
			sec = &secret{name: s.Name, namespace: s.Namespace, typ: s.Type, data: map[string]string{}}
			byName[key] = sec
			order = append(order, sec)
		}
		sec.data[s.Key] = base64.StdEncoding.EncodeToString(val)
	}
	var docs [][]byte
	for _, s := range order {
		meta := map[string]any{"name": s.name, "labels": translate.KubernetesLabels(pipeline)}
		if s.namespace != "" {
			meta["namespace"] = s.namespace
		}
		obj := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": s.data}
		if s.typ != "" {
			obj["type"] = s.typ
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	return docs, nil
}

// kubeEnsureNamespaces creates the namespaces the documents name that the
// cluster lacks (kubectl apply would fail on them).
func kubeEnsureNamespaces(ctx context.Context, w io.Writer, c *kube.Client, docs [][]byte) error {
	seen := map[string]bool{}
	for _, d := range docs {
		m, err := kube.ReadMeta(d)
		if err != nil || m.Namespace == "" || seen[m.Namespace] {
			continue
		}
		seen[m.Namespace] = true
		if _, err := c.Get(ctx, "v1", "Namespace", "", m.Namespace); err == nil {
			continue
		} else if !kube.IsNotFound(err) {
			return err
		}
		doc := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", m.Namespace)
		if _, err := c.Apply(ctx, []byte(doc), kube.ApplyOptions{FieldManager: "flowctl", Force: true}); err != nil {
			return err
		}
		fmt.Fprintf(w, "namespace/%s created\n", m.Namespace)
	}
	return nil
}

// kubeDryRun prints what applying would do, object by object, without
// changing anything (server-side dry run). The first nSecrets documents
// are Secrets: their changes are said, never shown.
func kubeDryRun(ctx context.Context, w io.Writer, c *kube.Client, docs [][]byte, nSecrets int) error {
	results, err := c.Diff(ctx, docs, kube.ApplyOptions{FieldManager: "flowctl", Force: true})
	for i, r := range results {
		if r.Err != nil {
			continue
		}
		fmt.Fprintf(w, "%s/%s %s (dry run)\n", strings.ToLower(r.Kind), r.Name, r.Change)
		if r.Change == kube.Configured && r.Diff != "" {
			if i < nSecrets {
				fmt.Fprintln(w, "  (values of a Secret are not shown)")
				continue
			}
			for _, l := range strings.Split(strings.TrimRight(r.Diff, "\n"), "\n") {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
	}
	return err
}

// getKubePipelines is `flowctl get pipelines [NAME] --target kubernetes`:
// the workloads of translated pipelines, from their labels.
func getKubePipelines(ctx context.Context, g *globals, kf kubeFlags, name string) error {
	c, err := kf.client()
	if err != nil {
		return err
	}
	type row struct{ pipeline, component, kind, namespace, ready string }
	var rows []row
	for _, k := range kubeKinds[:2] {
		objs, err := c.List(ctx, k.apiVersion, k.kind, kube.AllNamespaces, translate.KubernetesSelector(name))
		if err != nil {
			return err
		}
		for _, o := range objs {
			labels, _ := o.Field("metadata", "labels").(map[string]any)
			pipe, _ := labels["flowctl.pipeline"].(string)
			comp, _ := labels["flowctl.component"].(string)
			want := toInt(o.Field("spec", "replicas"))
			ready := toInt(o.Field("status", "readyReplicas"))
			rows = append(rows, row{pipe, comp, strings.ToLower(k.kind), o.Namespace, fmt.Sprintf("%d/%d", ready, want)})
		}
	}
	if len(rows) == 0 {
		if name != "" {
			return fmt.Errorf("no pipeline %q in the cluster of %s (apply --target kubernetes puts it there)", name, c.Config().Path)
		}
		fmt.Fprintf(g.stderr, "no pipelines in the cluster of %s\n", c.Config().Path)
		return nil
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].pipeline != rows[j].pipeline {
			return rows[i].pipeline < rows[j].pipeline
		}
		return rows[i].component < rows[j].component
	})
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tCOMPONENT\tKIND\tNAMESPACE\tREADY")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.pipeline, r.component, r.kind, r.namespace, r.ready)
	}
	return tw.Flush()
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return 0
}

// deleteKube is `flowctl delete pipeline NAME --target kubernetes`.
func deleteKube(ctx context.Context, g *globals, kf kubeFlags, name string, volumes bool) error {
	c, err := kf.client()
	if err != nil {
		return err
	}
	kinds := kubeKinds
	if volumes {
		kinds = append(kinds[:len(kinds):len(kinds)], kubeClaims)
	}
	n := 0
	for _, k := range kinds {
		objs, err := c.List(ctx, k.apiVersion, k.kind, kube.AllNamespaces, translate.KubernetesSelector(name))
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := c.Delete(ctx, o.APIVersion, o.Kind, o.Namespace, o.Name); err != nil {
				return err
			}
			n++
			fmt.Fprintf(g.stdout, "%s/%s deleted\n", strings.ToLower(o.Kind), o.Name)
		}
	}
	if n == 0 {
		return fmt.Errorf("no pipeline %q in the cluster of %s", name, c.Config().Path)
	}
	if !volumes {
		fmt.Fprintln(g.stderr, "its PersistentVolumeClaims (state, named volumes) are kept: delete them with --volumes")
	}
	return nil
}
