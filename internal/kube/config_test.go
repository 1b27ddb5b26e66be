package kube

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeKubeconfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const twoContexts = `apiVersion: v1
kind: Config
current-context: a
clusters:
- name: c1
  cluster:
    server: https://one.example:6443/
    certificate-authority: ca.crt
    tls-server-name: api.one
- name: c2
  cluster:
    server: https://two.example
    insecure-skip-tls-verify: true
users:
- name: tok
  user:
    token: s3cret
- name: file
  user:
    tokenFile: ./token
- name: basic
  user:
    username: ann
    password: pw
contexts:
- name: a
  context: {cluster: c1, user: tok, namespace: team}
- name: b
  context: {cluster: c2, user: file}
- name: c
  context: {cluster: c2, user: basic}
- name: anon
  context: {cluster: c2}
- name: nocluster
  context: {cluster: c9, user: tok}
- name: nouser
  context: {cluster: c1, user: u9}
preferences: {}
`

func TestLoadConfig(t *testing.T) {
	path := writeKubeconfig(t, twoContexts)
	dir := filepath.Dir(path)
	tests := []struct {
		context string
		check   func(t *testing.T, c *Config)
		err     string
	}{
		{context: "", check: func(t *testing.T, c *Config) {
			want := Config{Path: path, Context: "a", Namespace: "team", Server: "https://one.example:6443",
				CAFile: filepath.Join(dir, "ca.crt"), TLSServerName: "api.one", User: "tok", Token: "s3cret"}
			if !equalConfig(*c, want) {
				t.Errorf("got %+v\nwant %+v", *c, want)
			}
		}},
		{context: "b", check: func(t *testing.T, c *Config) {
			if c.Namespace != "default" || !c.Insecure || c.TokenFile != filepath.Join(dir, "token") || c.Token != "" {
				t.Errorf("got %+v", *c)
			}
		}},
		{context: "c", check: func(t *testing.T, c *Config) {
			if c.Username != "ann" || c.Password != "pw" {
				t.Errorf("got %+v", *c)
			}
		}},
		{context: "anon", check: func(t *testing.T, c *Config) {
			if c.User != "" || c.Token != "" || c.Server != "https://two.example" {
				t.Errorf("got %+v", *c)
			}
		}},
		{context: "foo", err: `kubeconfig ` + path + `: context "foo" not found (contexts: a, b, c, anon, nocluster, nouser)`},
		{context: "nocluster", err: `kubeconfig ` + path + `: context "nocluster" names cluster "c9", which is not defined (clusters: c1, c2)`},
		{context: "nouser", err: `kubeconfig ` + path + `: context "nouser" names user "u9", which is not defined (users: tok, file, basic)`},
	}
	for _, tt := range tests {
		t.Run("context="+tt.context, func(t *testing.T) {
			c, err := LoadConfig(path, tt.context)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v\nwant  %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func equalConfig(a, b Config) bool {
	return a.Path == b.Path && a.Context == b.Context && a.Namespace == b.Namespace && a.Server == b.Server &&
		a.CAFile == b.CAFile && string(a.CAData) == string(b.CAData) && a.Insecure == b.Insecure &&
		a.TLSServerName == b.TLSServerName && a.User == b.User && a.Token == b.Token && a.TokenFile == b.TokenFile &&
		a.Username == b.Username && a.Password == b.Password && a.Exec == nil && b.Exec == nil
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, content, context, err string
	}{
		{"no current context", "clusters: []\ncontexts:\n- name: x\n  context: {cluster: c}\n", "",
			`: no current-context, and no context was chosen (contexts: x)`},
		{"no contexts", "kind: Config\n", "dev", `: context "dev" not found (contexts: none defined)`},
		{"no server", "current-context: x\nclusters:\n- name: c\n  cluster: {}\ncontexts:\n- name: x\n  context: {cluster: c}\n", "",
			`: cluster "c" has no server`},
		{"bad base64", "current-context: x\nclusters:\n- name: c\n  cluster: {server: https://h, certificate-authority-data: '%%%'}\ncontexts:\n- name: x\n  context: {cluster: c}\n", "",
			`: cluster "c": certificate-authority-data: not base64`},
		{"cert without key", "current-context: x\nclusters:\n- name: c\n  cluster: {server: https://h}\nusers:\n- name: u\n  user: {client-certificate: c.pem}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n", "",
			`: user "u": a client certificate needs both client-certificate(-data) and client-key(-data)`},
		{"auth provider", "current-context: x\nclusters:\n- name: c\n  cluster: {server: https://h}\nusers:\n- name: u\n  user: {auth-provider: {name: gcp}}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n", "",
			`: user "u": auth-provider "gcp" is not supported`},
		{"exec without apiVersion", "current-context: x\nclusters:\n- name: c\n  cluster: {server: https://h}\nusers:\n- name: u\n  user: {exec: {command: aws}}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n", "",
			`: user "u": exec has no apiVersion`},
		{"not yaml", "clusters: [", "", `: yaml:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeKubeconfig(t, tt.content)
			_, err := LoadConfig(path, tt.context)
			if err == nil || !strings.HasPrefix(err.Error(), "kubeconfig "+path+tt.err) {
				t.Fatalf("err = %v\nwant prefix kubeconfig %s%s", err, path, tt.err)
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "nope")
	_, err := LoadConfig(missing, "")
	if err == nil || !strings.HasPrefix(err.Error(), "kubeconfig "+missing+": no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestKubeconfigPath(t *testing.T) {
	first := writeKubeconfig(t, "current-context: x\nclusters:\n- name: c\n  cluster: {server: https://first}\ncontexts:\n- name: x\n  context: {cluster: c}\n")
	second := writeKubeconfig(t, "current-context: x\nclusters:\n- name: c\n  cluster: {server: https://second}\ncontexts:\n- name: x\n  context: {cluster: c}\n")
	t.Setenv("KUBECONFIG", first+string(os.PathListSeparator)+second)
	c, err := LoadConfig("", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != "https://first" || c.Path != first {
		t.Errorf("KUBECONFIG list: got %s from %s, want the first file", c.Server, c.Path)
	}

	home := t.TempDir()
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", home)
	t.Setenv("USERPROFILE", home) // Windows
	p, err := KubeconfigPath()
	if err != nil || p != filepath.Join(home, ".kube", "config") {
		t.Errorf("KubeconfigPath() = %q, %v", p, err)
	}
}

// testCert makes a self-signed certificate (PEM) usable as a CA, a server
// certificate for 127.0.0.1 and a client certificate.
func testCert(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"system:masters"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestLoadConfigCertData(t *testing.T) {
	ca, _ := testCert(t, "ca")
	cert, key := testCert(t, "me")
	b64 := base64.StdEncoding.EncodeToString
	path := writeKubeconfig(t, `current-context: x
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: `+b64(ca)+`
users:
- name: u
  user:
    client-certificate-data: `+b64(cert)+`
    client-key-data: `+b64(key)+`
contexts:
- name: x
  context: {cluster: c, user: u}
`)
	c, err := LoadConfig(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if string(c.CAData) != string(ca) || string(c.CertData) != string(cert) || string(c.KeyData) != string(key) {
		t.Fatal("certificate data not decoded")
	}
	cl, err := NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	if !cl.certs {
		t.Error("client certificate not loaded")
	}

	// A key that does not match the certificate is refused when the
	// client is made, naming the user.
	_, other := testCert(t, "other")
	c.KeyData = other
	if _, err := NewClient(c); err == nil || !strings.Contains(err.Error(), `user "u": client certificate:`) {
		t.Errorf("mismatched key: %v", err)
	}
}

func TestLoadConfigExec(t *testing.T) {
	path := writeKubeconfig(t, `current-context: x
clusters:
- name: c
  cluster: {server: https://h}
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/get-token
      args: [--cluster, prod]
      env:
      - {name: A, value: "1"}
      installHint: install get-token
      interactiveMode: Never
- name: inpath
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}
contexts:
- name: x
  context: {cluster: c, user: u}
- name: y
  context: {cluster: c, user: inpath}
`)
	c, err := LoadConfig(path, "")
	if err != nil {
		t.Fatal(err)
	}
	x := c.Exec
	if x == nil || x.Command != filepath.Join(filepath.Dir(path), "bin", "get-token") || strings.Join(x.Args, " ") != "--cluster prod" ||
		len(x.Env) != 1 || x.Env[0] != (ExecEnv{"A", "1"}) || x.InstallHint != "install get-token" || x.APIVersion != execV1 {
		t.Errorf("exec = %+v", x)
	}
	c, err = LoadConfig(path, "y")
	if err != nil {
		t.Fatal(err)
	}
	if c.Exec.Command != "aws" {
		t.Errorf("a bare command stays for PATH: %q", c.Exec.Command)
	}
}
