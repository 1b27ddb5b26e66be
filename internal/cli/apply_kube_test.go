package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/kube/kubetest"
)

// TestApplyKubernetes drives apply, get and delete --target kubernetes
// against a real kube-apiserver (no kubelet: objects are stored and
// validated, no pod runs): the Secrets made from their sources, an
// unchanged re-apply, a dry run that shows a diff, a removed component's
// objects deleted, and delete keeping the claims.
func TestApplyKubernetes(t *testing.T) {
	cluster := kubetest.Start(t)
	isolateClientConfig(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	writeFileAt(t, filepath.Join(dir, "secrets", "api-token"), "s3cret\n")
	writeFileAt(t, filepath.Join(dir, "data", "in.jsonl"), `{"amount": 1}`+"\n")
	pipeline := func(threshold string, withAudit bool) string {
		s := `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: kpay
  namespace: team-pay
spec:
  sources:
    - name: events
      type: file
      config: {path: data/in.jsonl}
  processors:
    - name: large
      type: filter
      inputs: [events]
      config: {expr: "data.amount >= ` + threshold + `"}
  sinks:
    - name: out
      type: file
      inputs: [large]
      config: {path: "${OUT_DIR:-out}/large.jsonl"}
      secrets:
        - name: api-token
`
		if withAudit {
			s += `    - name: audit
      type: stdout
      inputs: [events]
`
		}
		return s
	}
	pf := filepath.Join(dir, "kpay.yaml")
	writeFileAt(t, pf, pipeline("5000", true))
	kc := []string{"--target", "kubernetes", "--kubeconfig", cluster.Kubeconfig}
	flow := func(args ...string) (int, string, string) {
		t.Helper()
		if args[0] == "apply" {
			args = append(args, "--image", "flowctl:test")
		}
		return runFlowctl(t, "", append(args, kc...)...)
	}

	code, out, errb := flow("apply", "-f", pf)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errb)
	}
	for _, want := range []string{"namespace/team-pay created", "secret/kpay-api-token applied (values not shown)", "configmap/kpay-pipeline applied",
		"statefulset/events applied", "deployment/large applied", "service/large applied", "deployment/audit applied"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(errb, "kubectl create secret") {
		t.Errorf("apply told the user to create a Secret it made itself:\n%s", errb)
	}
	ctx := context.Background()
	sec, err := cluster.Client.Get(ctx, "v1", "Secret", "team-pay", "kpay-api-token")
	if err != nil {
		t.Fatalf("the component's secret was not made: %v", err)
	}
	if data, _ := sec.Field("data").(map[string]any); data["api-token"] != "czNjcmV0Cg==" {
		t.Errorf("secret data: %v", sec.Field("data"))
	}

	// Again, unchanged: the dry run says so for every object.
	code, out, errb = flow("apply", "-f", pf, "--dry-run")
	if code != 0 || strings.Contains(out, " configured") || strings.Contains(out, " created") || !strings.Contains(out, "deployment/large unchanged (dry run)") {
		t.Errorf("dry run of the same file: exit %d\n%s%s", code, out, errb)
	}
	// A changed expression changes the ConfigMap (and the pod template's
	// hash of it): the dry run shows the diff and changes nothing.
	writeFileAt(t, pf, pipeline("7000", true))
	code, out, errb = flow("apply", "-f", pf, "--dry-run")
	if code != 0 || !strings.Contains(out, "configmap/kpay-pipeline configured (dry run)") || !strings.Contains(out, `+`) || !strings.Contains(out, `config: {expr: "data.amount >= 7000"}`) || !strings.Contains(out, `-          config: {expr: "data.amount >= 5000"}`) {
		t.Errorf("dry run of a change: exit %d\n%s%s", code, out, errb)
	}
	cm, _ := cluster.Client.Get(ctx, "v1", "ConfigMap", "team-pay", "kpay-pipeline")
	if d, _ := cm.Field("data").(map[string]any); !strings.Contains(d["kpay.yaml"].(string), ">= 5000") {
		t.Errorf("the dry run changed the ConfigMap: %v", d)
	}

	// Without the audit sink: its Deployment and Service go.
	writeFileAt(t, pf, pipeline("7000", false))
	code, out, errb = flow("apply", "-f", pf)
	if code != 0 || !strings.Contains(out, "deployment/audit deleted (no longer in") || !strings.Contains(out, "configmap/kpay-pipeline applied") {
		t.Errorf("apply without audit: exit %d\n%s%s", code, out, errb)
	}
	if _, err := cluster.Client.Get(ctx, "apps/v1", "Deployment", "team-pay", "audit"); err == nil {
		t.Error("audit's Deployment is still there")
	}

	code, out, errb = flow("get", "pipelines", "kpay")
	if code != 0 || !strings.Contains(out, "PIPELINE") || !regexp.MustCompile(`(?m)^kpay\s+large\s+deployment\s+team-pay\s+0/1$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^kpay\s+events\s+statefulset\s+team-pay\s+0/1$`).MatchString(out) || strings.Contains(out, "audit") {
		t.Errorf("get: exit %d\n%s%s", code, out, errb)
	}
	code, out, errb = flow("delete", "pipeline", "kpay")
	if code != 0 || !strings.Contains(out, "deployment/large deleted") || !strings.Contains(out, "secret/kpay-api-token deleted") ||
		!strings.Contains(errb, "PersistentVolumeClaims (state, named volumes) are kept") {
		t.Errorf("delete: exit %d\n%s%s", code, out, errb)
	}
	if code, _, errb := flow("delete", "pipeline", "kpay"); code == 0 || !strings.Contains(errb, `no pipeline "kpay" in the cluster`) {
		t.Errorf("delete again: exit %d %s", code, errb)
	}
	// A missing kubeconfig is a clear error.
	if code, _, errb := runFlowctl(t, "", "get", "pipelines", "--target", "kubernetes", "--kubeconfig", filepath.Join(dir, "nope")); code == 0 || !strings.Contains(errb, "nope") {
		t.Errorf("missing kubeconfig: exit %d %s", code, errb)
	}
}
