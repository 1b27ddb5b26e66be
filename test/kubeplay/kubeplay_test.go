package kubeplay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Bounds of every wait: generous for a loaded two-core machine, finite.
const (
	finishTimeout = 4 * time.Minute
	pollEvery     = 250 * time.Millisecond
	// events is the size of the generated input.
	events = 2000
)

// podman runs podman with the test's containers.conf, bounded.
type podman struct {
	conf string // CONTAINERS_CONF
}

// requirePodman skips the test when podman cannot run, or fails it under
// CI=true (CI installs podman: a skip there would hide a broken setup).
func requirePodman(t *testing.T) *podman {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if runtime.GOOS != "linux" {
		skip("podman kube play runs Linux pods and these tests mount host paths as Linux sees them")
	}
	// This sandbox (and some CI runners) refuses rlimit changes, and
	// podman's default ulimits (nofile, nproc) make runc fail with "error
	// setting rlimit type 7: operation not permitted". Empty them for
	// this test only: CONTAINERS_CONF is read instead of
	// /etc/containers/containers.conf, which stays as it is.
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &podman{conf: conf}
	if _, err := exec.LookPath("podman"); err != nil {
		skip("podman is not installed (apt-get install podman catatonit), so no pods can run here")
	}
	if out, err := p.runErr("", 30*time.Second, "version", "--format", "{{.Client.Version}}"); err != nil {
		skip("podman version fails, so no pods can run here: %v %s", err, firstLine(out))
	}
	return p
}

func (p *podman) runErr(dir string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

func (p *podman) run(t *testing.T, dir string, timeout time.Duration, args ...string) string {
	t.Helper()
	out, err := p.runErr(dir, timeout, args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// unique is a name no other test run uses: images, networks.
func unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// buildFlowctl builds the static linux binary into dir.
func buildFlowctl(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "flowctl")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/flowctl")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build flowctl: %v\n%s", err, out)
	}
	return bin
}

// writeEvents writes n events in examples/data/events.jsonl's shape,
// ids 1..n: payments of varied amounts, refunds, and signups (no amount:
// the "large" filter fails on them, so they reach the dead-letter sink).
func writeEvents(t *testing.T, path string, n int) {
	t.Helper()
	accounts := []string{"acme", "globex", "initech", "hooli", "stark", "umbrella"}
	currencies := []string{"EUR", "USD", "GBP"}
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		account, currency := accounts[i%len(accounts)], currencies[i%len(currencies)]
		amount := (i * 7919) % 16000
		switch {
		case i%10 == 0:
			fmt.Fprintf(&b, `{"id": %d, "kind": "signup", "account": %q}`+"\n", i, account)
		case i%4 == 0:
			fmt.Fprintf(&b, `{"id": %d, "kind": "refund", "account": %q, "amount": %d, "currency": %q}`+"\n", i, account, amount, currency)
		default:
			fmt.Fprintf(&b, `{"id": %d, "kind": "payment", "account": %q, "amount": %d, "currency": %q}`+"\n", i, account, amount, currency)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lines reads a file's non-empty lines; a missing file has none.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sc.Text() != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

// values are the lines as canonical JSON (keys sorted), sorted: a
// multiset, since the branches merge in no fixed order. drop names
// top-level keys left out (the dead-letter envelope's "time").
func values(t *testing.T, ls []string, drop ...string) []string {
	t.Helper()
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		var v any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not a JSON value: %q: %v", l, err)
		}
		if m, ok := v.(map[string]any); ok {
			for _, k := range drop {
				delete(m, k)
			}
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

// diff describes how two sorted multisets differ, briefly.
func diff(got, want []string) string {
	count := map[string]int{}
	for _, s := range got {
		count[s]++
	}
	for _, s := range want {
		count[s]--
	}
	var extra, missing []string
	for s, n := range count {
		for ; n > 0; n-- {
			extra = append(extra, s)
		}
		for ; n < 0; n++ {
			missing = append(missing, s)
		}
	}
	slices.Sort(extra)
	slices.Sort(missing)
	clip := func(s []string) []string { return s[:min(len(s), 5)] }
	return fmt.Sprintf("%d lines, want %d; %d extra %q; %d missing %q", len(got), len(want), len(extra), clip(extra), len(missing), clip(missing))
}

// TestFanoutFaninUnderKubePlay translates examples/fanout-fanin.yaml for
// Kubernetes, plays the manifest under podman kube play (seven pods on one
// podman network, gRPC from pod to pod) on 2,000 generated events, and
// checks that both sink files hold what `flowctl run` writes.
func TestFanoutFaninUnderKubePlay(t *testing.T) {
	pm := requirePodman(t)
	start := time.Now()
	bin := buildFlowctl(t, t.TempDir())

	// A user's layout: DIR/fanout-fanin.yaml, DIR/data/events.jsonl.
	dir := t.TempDir()
	pipeline, err := os.ReadFile("../../examples/fanout-fanin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fanout-fanin.yaml"), pipeline, 0o644); err != nil {
		t.Fatal(err)
	}
	writeEvents(t, filepath.Join(dir, "data", "events.jsonl"), events)

	// The reference: flowctl run on the same file and input, writing
	// elsewhere (OUT_DIR; the pods leave it unset: its default "out").
	local := t.TempDir()
	cmd := exec.Command(bin, "run", "-f", filepath.Join(dir, "fanout-fanin.yaml"), "--state-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "OUT_DIR="+local)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("flowctl run: %v\n%s", err, out)
	}
	wantReview := values(t, lines(t, filepath.Join(local, "review.jsonl")))
	wantFailed := values(t, lines(t, filepath.Join(local, "failed.jsonl")), "time")
	if len(wantReview) == 0 || len(wantFailed) == 0 {
		t.Fatalf("flowctl run wrote %d review and %d failed lines: the input exercises nothing", len(wantReview), len(wantFailed))
	}

	// translate, with the CLI: HostDir is its default, the pipeline
	// file's absolute directory, so the pods read DIR/data and write
	// DIR/out on this machine.
	image := unique("localhost/flowctl-kubeplay:")
	tr := exec.Command(bin, "translate", "-f", "fanout-fanin.yaml", "--to", "kubernetes", "-o", "deploy", "--dockerfile", "--image", image)
	tr.Dir = dir
	if out, err := tr.CombinedOutput(); err != nil {
		t.Fatalf("flowctl translate: %v\n%s", err, out)
	}
	deploy := filepath.Join(dir, "deploy")
	manifest, err := os.ReadFile(filepath.Join(deploy, "kubernetes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "path: " + filepath.Join(dir, "out"); !bytes.Contains(manifest, []byte(want)) {
		t.Fatalf("the manifest has no hostPath %q", want)
	}

	// flowctl's image from translate's Dockerfile, built by podman.
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deploy, "flowctl"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := pm.runErr("", time.Minute, "rmi", "-f", image); err != nil {
			t.Errorf("podman rmi %s: %v\n%s", image, err, out)
		}
	})
	pm.run(t, deploy, 3*time.Minute, "build", "-q", "-t", image, ".")
	built := time.Now()

	pl, err := podmanManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	playFile := filepath.Join(deploy, "podman-kube-play.yaml")
	if err := os.WriteFile(playFile, pl.Manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	// Pod and volume names are podman's global names: never replace
	// another run's.
	for _, name := range pl.Pods {
		if _, err := pm.runErr("", time.Minute, "pod", "exists", name); err == nil {
			t.Fatalf("a podman pod %s exists already (another run?): remove it with podman pod rm -f %s", name, name)
		}
	}
	for _, name := range pl.Volumes {
		if _, err := pm.runErr("", time.Minute, "volume", "exists", name); err == nil {
			t.Fatalf("a podman volume %s exists already (another run?): remove it with podman volume rm %s", name, name)
		}
	}

	// A network of this run's own, with DNS: podman's default network
	// has none, and the nodes dial each other by name.
	network := unique("flowctl-kubeplay-")
	pm.run(t, "", time.Minute, "network", "create", network)
	t.Cleanup(func() {
		if out, err := pm.runErr("", time.Minute, "network", "rm", "-f", network); err != nil {
			t.Errorf("podman network rm %s: %v\n%s", network, err, out)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range pl.Pods {
				out, _ := pm.runErr("", time.Minute, "logs", "--tail", "20", name+"-node")
				t.Logf("logs of pod %s:\n%s", name, out)
			}
		}
		pm.down(t, playFile, pl)
	})
	pm.run(t, deploy, 3*time.Minute, "kube", "play", "--network", network, playFile)
	played := time.Now()

	// Done when both sink files have as many lines as flowctl run's and
	// every pod's node has finished at least once: a bounded pipeline's
	// nodes exit 0 after End, and the pods restart them (restartPolicy
	// Always, as a Deployment's); restarted, they resume from their
	// checkpoints and must write nothing more.
	review, failed := filepath.Join(dir, "out", "review.jsonl"), filepath.Join(dir, "out", "failed.jsonl")
	deadline := time.Now().Add(finishTimeout)
	var reached time.Time
	for {
		nr, nf := len(lines(t, review)), len(lines(t, failed))
		if reached.IsZero() && nr >= len(wantReview) && nf >= len(wantFailed) {
			reached = time.Now()
		}
		if !reached.IsZero() && pm.allFinished(t, pl.Pods) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s: review.jsonl has %d of %d lines, failed.jsonl %d of %d; nodes: %s",
				finishTimeout, nr, len(wantReview), nf, len(wantFailed), pm.states(t, pl.Pods))
		}
		time.Sleep(pollEvery)
	}
	finished := time.Now()

	if got := values(t, lines(t, review)); !slices.Equal(got, wantReview) {
		t.Errorf("review.jsonl under kube play differs from flowctl run's: %s", diff(got, wantReview))
	}
	if got := values(t, lines(t, failed), "time"); !slices.Equal(got, wantFailed) {
		t.Errorf("failed.jsonl under kube play differs from flowctl run's: %s", diff(got, wantFailed))
	}
	t.Logf("kube play: %d events in, review.jsonl %d lines, failed.jsonl %d lines, equal to flowctl run's: %v; "+
		"build+image %s, play %s, output complete %s after play, all nodes finished %s after play; total so far %s; nodes: %s",
		events, len(wantReview), len(wantFailed), !t.Failed(),
		built.Sub(start).Round(time.Millisecond), played.Sub(built).Round(time.Millisecond),
		reached.Sub(played).Round(time.Millisecond), finished.Sub(played).Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond), pm.states(t, pl.Pods))
}

// down takes the played pods down, then removes the volumes kube play
// made (--down leaves them in podman 4.3), and checks nothing is left.
func (p *podman) down(t *testing.T, playFile string, pl played) {
	t.Helper()
	if out, err := p.runErr("", 2*time.Minute, "kube", "play", "--down", playFile); err != nil {
		// It stops at the first pod missing (a play that failed half
		// way): remove what is there by name.
		t.Logf("podman kube play --down: %v: %s", err, firstLine(out))
		args := append([]string{"pod", "rm", "-f", "--ignore"}, pl.Pods...)
		if out, err := p.runErr("", 2*time.Minute, args...); err != nil {
			t.Errorf("podman pod rm: %v\n%s", err, out)
		}
	}
	args := append([]string{"volume", "rm", "-f"}, pl.Volumes...)
	if out, err := p.runErr("", time.Minute, args...); err != nil && !strings.Contains(out, "no such volume") {
		t.Errorf("podman volume rm: %v\n%s", err, out)
	}
	for _, name := range pl.Pods {
		if _, err := p.runErr("", time.Minute, "pod", "exists", name); err == nil {
			t.Errorf("pod %s is left behind", name)
		}
	}
	for _, name := range pl.Volumes {
		if _, err := p.runErr("", time.Minute, "volume", "exists", name); err == nil {
			t.Errorf("volume %s is left behind", name)
		}
	}
}

// node is what podman inspect says of a pod's node container.
type node struct {
	Pod, Status       string
	ExitCode, Restart int
}

func (p *podman) nodes(t *testing.T, pods []string) []node {
	t.Helper()
	args := []string{"inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}"}
	for _, pod := range pods {
		args = append(args, pod+"-node")
	}
	out := strings.Split(strings.TrimSpace(p.run(t, "", time.Minute, args...)), "\n")
	if len(out) != len(pods) {
		t.Fatalf("podman inspect: %d lines for %d containers", len(out), len(pods))
	}
	var ns []node
	for i, l := range out {
		n := node{Pod: pods[i]}
		if _, err := fmt.Sscanf(l, "%s %d %d", &n.Status, &n.ExitCode, &n.Restart); err != nil {
			t.Fatalf("podman inspect: line %q: %v", l, err)
		}
		ns = append(ns, n)
	}
	return ns
}

// allFinished tells whether every node exited at least once, failing the
// test on one that exited with an error.
func (p *podman) allFinished(t *testing.T, pods []string) bool {
	t.Helper()
	done := true
	for _, n := range p.nodes(t, pods) {
		if n.ExitCode != 0 {
			t.Fatalf("the node of pod %s exited with %d: %s", n.Pod, n.ExitCode, p.states(t, pods))
		}
		if n.Restart == 0 && n.Status != "exited" {
			done = false
		}
	}
	return done
}

func (p *podman) states(t *testing.T, pods []string) string {
	t.Helper()
	var s []string
	for _, n := range p.nodes(t, pods) {
		s = append(s, fmt.Sprintf("%s=%s(exit %d, %d restarts)", n.Pod, n.Status, n.ExitCode, n.Restart))
	}
	return strings.Join(s, " ")
}
