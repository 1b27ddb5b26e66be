// Package kubetest runs a real Kubernetes API server for tests: etcd (from
// Debian's etcd-server) and a kube-apiserver built by
// .ci/kube-apiserver/build.sh, named by $FLOWCTL_KUBE_APISERVER. Objects
// are validated, defaulted, admitted and stored as on any cluster, but
// nothing runs them: there is no controller manager, scheduler or kubelet,
// so no ReplicaSet, Pod or PersistentVolume ever appears, and a finalizer
// (a namespace's, a PVC's) is never removed.
//
// To run the tests that use it (apt-get install etcd-server first):
//
//	FLOWCTL_KUBE_APISERVER=$(bash .ci/kube-apiserver/build.sh) go test ./internal/kube/...
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/kube"
)

// EnvAPIServer names the kube-apiserver binary.
const EnvAPIServer = "FLOWCTL_KUBE_APISERVER"

// ReadyTimeout bounds the wait for etcd and then the API server.
const ReadyTimeout = 60 * time.Second

// Cluster is a running API server.
type Cluster struct {
	// Kubeconfig is a kubeconfig file for it (context "kubetest", a token
	// in group system:masters, the server's own certificate as CA).
	Kubeconfig string
	// Server is its URL, Token the admin token.
	Server string
	Token  string
	// Config and Client are loaded from Kubeconfig.
	Config *kube.Config
	Client *kube.Client
	// Dir holds the data, certificates and logs (etcd.log,
	// kube-apiserver.log).
	Dir string

	procs []*process
}

// Start starts etcd and a kube-apiserver on free loopback ports, waits
// until the server is ready, writes a kubeconfig and creates the default
// ServiceAccount of namespace default (no controller manager does).
// Everything is stopped by t.Cleanup. Without the binaries the test is
// skipped, or fails when $CI is true: CI never skips silently.
func Start(t testing.TB) *Cluster {
	t.Helper()
	apiserver := os.Getenv(EnvAPIServer)
	etcd, etcdErr := exec.LookPath("etcd")
	var missing []string
	if apiserver == "" {
		missing = append(missing, "set "+EnvAPIServer+" (built by .ci/kube-apiserver/build.sh)")
	} else if _, err := os.Stat(apiserver); err != nil {
		missing = append(missing, EnvAPIServer+": "+err.Error())
	}
	if etcdErr != nil {
		missing = append(missing, "install etcd (apt-get install etcd-server)")
	}
	if len(missing) > 0 {
		msg := "kube-apiserver: " + strings.Join(missing, "; ")
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the Kubernetes tests must run)")
		}
		t.Skip(msg)
	}

	dir := t.TempDir()
	c := &Cluster{Dir: dir}
	ports := freePorts(t, 3)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.Server = "https://127.0.0.1:" + strconv.Itoa(ports[2])

	// etcd first: the API server retries it, but a failing etcd is then
	// reported as what it is.
	etcdLog := filepath.Join(dir, "etcd.log")
	stopEtcd := startProcess(t, etcdLog, etcd,
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--log-level=warn", "--logger=zap",
	)
	c.procs = append(c.procs, stopEtcd)
	waitReady(t, stopEtcd, "etcd", etcdURL+"/health", nil, func(body []byte) bool {
		return bytes.Contains(body, []byte(`"health":"true"`))
	}, etcdLog)

	// Credentials: an admin token, a service-account signing key.
	c.Token = randomHex(t, 16)
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, c.Token+`,kubetest-admin,kubetest-admin,"system:masters"`+"\n")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sa.key"), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})))
	writeFile(t, filepath.Join(dir, "sa.pub"), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))

	certDir := filepath.Join(dir, "certs")
	apiLog := filepath.Join(dir, "kube-apiserver.log")
	stopAPI := startProcess(t, apiLog, apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+certDir,
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		"--profiling=false",
	)
	c.procs = append(c.procs, stopAPI)
	// Readiness is polled before the CA is known: the poll itself skips
	// verification; the kubeconfig below verifies.
	waitReady(t, stopAPI, "kube-apiserver", c.Server+"/readyz", map[string]string{"Authorization": "Bearer " + c.Token},
		func(body []byte) bool { return strings.TrimSpace(string(body)) == "ok" }, apiLog, etcdLog)

	// The self-signed certificate the server wrote (its own and its CA's)
	// is the kubeconfig's CA.
	ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		t.Fatalf("kube-apiserver: its self-signed certificate: %v", err)
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	writeFile(t, c.Kubeconfig, Kubeconfig(c.Server, ca, c.Token, "default"))
	if c.Config, err = kube.LoadConfig(c.Kubeconfig, ""); err != nil {
		t.Fatal(err)
	}
	if c.Client, err = kube.NewClient(c.Config); err != nil {
		t.Fatal(err)
	}
	c.ServiceAccount(t, "default")
	return c
}

// Kubeconfig is a kubeconfig for server with a CA (PEM) and a token, its
// context "kubetest" using namespace.
func Kubeconfig(server string, caPEM []byte, token, namespace string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: kubetest
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: kubetest-admin
  user:
    token: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: kubetest-admin
    namespace: %s
`, server, base64.StdEncoding.EncodeToString(caPEM), token, namespace)
}

// Namespace creates namespace name and its default ServiceAccount, and
// returns name. The namespace is not deleted: without a controller
// manager it would stay Terminating; the cluster goes with the test.
func (c *Cluster) Namespace(t testing.TB, name string) string {
	t.Helper()
	c.apply(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+name+"\n")
	c.ServiceAccount(t, name)
	return name
}

// ServiceAccount creates the default ServiceAccount of a namespace, which
// Pods (and their dry runs) need and which no controller makes here.
func (c *Cluster) ServiceAccount(t testing.TB, namespace string) {
	t.Helper()
	c.apply(t, "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: "+namespace+"\n")
}

func (c *Cluster) apply(t testing.TB, doc string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Client.Apply(ctx, []byte(doc), kube.ApplyOptions{FieldManager: "kubetest"}); err != nil {
		t.Fatal(err)
	}
}

// process is a started child: exited is closed when it has exited, with
// err set.
type process struct {
	name   string
	exited chan struct{}
	err    error
}

// startProcess starts a child with its output in logPath; t.Cleanup stops
// it (SIGTERM, then SIGKILL after 10 s) and waits for it.
func startProcess(t testing.TB, logPath, bin string, args ...string) *process {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &process{name: filepath.Base(bin), exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", p.name, logPath, tail(logPath, 30))
		}
	})
	return p
}

// waitReady polls url until ready(body) on a 200, the process exits, or
// ReadyTimeout passes; it fails the test with the logs' tails.
func waitReady(t testing.TB, p *process, name, url string, header map[string]string, ready func([]byte) bool, logs ...string) {
	t.Helper()
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // only asks "ready?"
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(ReadyTimeout)
	var last string
	for {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := readAll(resp)
			if resp.StatusCode == http.StatusOK && ready(body) {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, firstLine(body))
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready: %v%s", name, p.err, logTails(logs))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v (last answer: %s)%s", name, ReadyTimeout, last, logTails(logs))
		}
	}
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(resp.Body)
	return b.Bytes(), err
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

func logTails(paths []string) string {
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "\n--- %s (last lines):\n%s", filepath.Base(p), tail(p, 25))
	}
	return b.String()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct loopback ports free at the time of asking.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
