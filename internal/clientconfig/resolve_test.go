package clientconfig_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/clientconfig"
)

// clearEnv empties every variable Resolve reads, for the test's duration.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{clientconfig.EnvConfig, clientconfig.EnvServer, clientconfig.EnvContext, clientconfig.EnvToken,
		clientconfig.EnvCA, clientconfig.EnvCert, clientconfig.EnvKey} {
		t.Setenv(k, "")
	}
}

const sampleConfig = `current-context: local
contexts:
  - name: local
    server: 127.0.0.1:7171
  - name: prod
    server: flow.example.com:9000
    ca: pki/ca.crt
    cert: /abs/client.crt
    key: pki/client.key
    token: prod-token
  - name: lab
    server: 10.0.0.5:7070
    insecure: true
  - name: labtoken
    server: 10.0.0.5:7070
    insecure: true
    token: t
  - name: remote-plain
    server: 10.0.0.6:7070
`

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(sampleConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		ov      clientconfig.Overrides
		env     map[string]string
		noFile  bool
		addr    string
		source  string
		context string
		tls     bool
		token   string
		ca      string
		wantErr string
	}{
		{name: "default without a file", noFile: true, addr: "unix:" + filepath.Join(dir, "state", "flowctl", clientconfig.SocketName), source: "default",
			env: map[string]string{"XDG_STATE_HOME": filepath.Join(dir, "state")}},
		{name: "current context", addr: "127.0.0.1:7171", source: `context "local"`, context: "local"},
		{name: "env beats context", env: map[string]string{clientconfig.EnvServer: "127.0.0.1:8000"}, addr: "127.0.0.1:8000", source: "FLOWCTL_SERVER"},
		{name: "flag beats env", ov: clientconfig.Overrides{Server: "localhost:9"}, env: map[string]string{clientconfig.EnvServer: "127.0.0.1:8000"}, addr: "localhost:9", source: "--server"},
		{name: "flag equal to current context keeps it", ov: clientconfig.Overrides{Server: "127.0.0.1:7171"}, addr: "127.0.0.1:7171", source: "--server", context: "local"},
		{name: "explicit context", ov: clientconfig.Overrides{Context: "prod"}, addr: "flow.example.com:9000", source: `context "prod"`, context: "prod",
			tls: true, token: "prod-token", ca: filepath.Join(dir, "pki", "ca.crt")},
		{name: "context from env", env: map[string]string{clientconfig.EnvContext: "prod"}, addr: "flow.example.com:9000", context: "prod", tls: true, token: "prod-token", ca: filepath.Join(dir, "pki", "ca.crt"), source: `context "prod"`},
		{name: "flag server keeps explicit context credentials", ov: clientconfig.Overrides{Context: "prod", Server: "flow2.example.com:9000"}, addr: "flow2.example.com:9000", source: "--server", context: "prod", tls: true, token: "prod-token", ca: filepath.Join(dir, "pki", "ca.crt")},
		{name: "flags override credentials", ov: clientconfig.Overrides{Context: "prod", CA: "/other/ca.crt", Token: "flag-token"}, env: map[string]string{clientconfig.EnvToken: "env-token"},
			addr: "flow.example.com:9000", source: `context "prod"`, context: "prod", tls: true, token: "flag-token", ca: "/other/ca.crt"},
		{name: "env token", env: map[string]string{clientconfig.EnvToken: "env-token"}, addr: "127.0.0.1:7171", source: `context "local"`, context: "local", token: "env-token"},
		{name: "env CA turns TLS on", env: map[string]string{clientconfig.EnvCA: "/ca.crt", clientconfig.EnvServer: "flow.example.com:1"}, addr: "flow.example.com:1", source: "FLOWCTL_SERVER", tls: true, ca: "/ca.crt"},
		{name: "bare host gets the default port", ov: clientconfig.Overrides{Server: "localhost"}, addr: "localhost:7070", source: "--server"},
		{name: "tls scheme", ov: clientconfig.Overrides{Server: "tls://flow.example.com:443"}, addr: "flow.example.com:443", source: "--server", tls: true},
		{name: "insecure context", ov: clientconfig.Overrides{Context: "lab"}, addr: "10.0.0.5:7070", source: `context "lab"`, context: "lab"},
		{name: "unknown context", ov: clientconfig.Overrides{Context: "nope"}, wantErr: "known: local, prod"},
		{name: "remote plaintext refused", ov: clientconfig.Overrides{Context: "remote-plain"}, wantErr: "not on this machine"},
		{name: "remote plaintext by flag refused", ov: clientconfig.Overrides{Server: "10.1.1.1:7070"}, wantErr: "insecure"},
		{name: "remote plaintext with --insecure", ov: clientconfig.Overrides{Server: "10.1.1.1:7070", Insecure: true}, addr: "10.1.1.1:7070", source: "--server"},
		{name: "token never in plaintext off this machine", ov: clientconfig.Overrides{Context: "labtoken"}, wantErr: "refusing to send the token"},
		{name: "bad port", ov: clientconfig.Overrides{Server: "localhost:99999"}, wantErr: "port"},
		{name: "bad scheme", ov: clientconfig.Overrides{Server: "ftp://x:1"}, wantErr: "unknown scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			ov := tc.ov
			ov.ConfigPath = path
			if tc.noFile {
				ov.ConfigPath = filepath.Join(dir, "absent.yaml")
			}
			got, err := clientconfig.ResolveWith(ov)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Address != tc.addr || got.Source != tc.source || got.Context != tc.context || got.UseTLS != tc.tls || got.Token != tc.token || got.TLS.CAFile != tc.ca {
				t.Fatalf("got %+v\nwant addr=%s source=%s context=%s tls=%v token=%q ca=%q", got, tc.addr, tc.source, tc.context, tc.tls, tc.token, tc.ca)
			}
		})
	}
}

func TestResolveUsesConfigEnvAndCurrentContextError(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("current-context: gone\ncontexts:\n  - name: a\n    server: 127.0.0.1:1\n"), 0o600)
	t.Setenv(clientconfig.EnvConfig, path)
	_, err := clientconfig.Resolve("", "")
	if !errors.Is(err, clientconfig.ErrUnknownContext) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Resolve = %v", err)
	}
	got, err := clientconfig.Resolve("", "a")
	if err != nil || got.Address != "127.0.0.1:1" || got.ConfigPath != path {
		t.Fatalf("Resolve(a) = %+v, %v", got, err)
	}
}

func TestNormalizeAddress(t *testing.T) {
	for _, tc := range []struct{ in, addr, scheme string }{
		{"127.0.0.1:7070", "127.0.0.1:7070", ""},
		{":9", "127.0.0.1:9", ""},
		{"::1", "[::1]:7070", ""},
		{"[::1]", "[::1]:7070", ""},
		{"[::1]:5", "[::1]:5", ""},
		{"grpc://h:1/", "h:1", "grpc"},
		{"HTTPS://h", "h:7070", "https"},
		{"unix:/run/f.sock", "unix:/run/f.sock", "unix"},
	} {
		addr, scheme, err := clientconfig.NormalizeAddress(tc.in)
		if err != nil || addr != tc.addr || scheme != tc.scheme {
			t.Errorf("NormalizeAddress(%q) = %q, %q, %v; want %q, %q", tc.in, addr, scheme, err, tc.addr, tc.scheme)
		}
	}
	for _, bad := range []string{"", "  ", "h:0", "h:x", "a b"} {
		if _, _, err := clientconfig.NormalizeAddress(bad); err == nil {
			t.Errorf("NormalizeAddress(%q) accepted", bad)
		}
	}
}
