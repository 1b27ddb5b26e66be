package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerListenRules: the server refuses, in one line naming what to
// add, TCP without a token or client certificates, plaintext off
// loopback even with a token, and TLS flags on the Unix socket; it checks
// before it listens or touches the data dir. --insecure-listen is still
// accepted as the hidden former name of --insecure.
func TestServerListenRules(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	writeFileAt(t, token, "s3cret\n")
	dataDir := filepath.Join(dir, "data")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"loopback TCP without credentials", []string{"--listen", "127.0.0.1:0"}, []string{"--listen 127.0.0.1:0", "--token-file", "--tls-client-ca", "--insecure"}},
		{"all interfaces with only a token", []string{"--listen", "0.0.0.0:0", "--token-file", token}, []string{"--tls-cert and --tls-key", "plaintext"}},
		{"all interfaces without anything", []string{"--listen", ":0"}, []string{"--tls-cert and --tls-key"}},
		{"TLS on the socket", []string{"--tls-cert", "a.crt", "--tls-key", "a.key"}, []string{"add --listen HOST:PORT", "flowctl.sock"}},
		{"empty socket path", []string{"--listen", "unix:"}, []string{"unix:PATH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runFlowctl(t, "", append([]string{"server", "--data-dir", dataDir}, tc.args...)...)
			if code != 1 || stdout != "" {
				t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "flowctl server: ") {
				t.Errorf("stderr is not one line of flowctl server:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("a refused start touched the data dir: %v", err)
			}
		})
	}
	code, _, stderr := runFlowctl(t, "", "server", "--listen", "127.0.0.1:0", "--insecure-listen", "--keep-runs", "-1")
	if code != 1 || !strings.Contains(stderr, "--keep-runs") {
		t.Errorf("--insecure-listen is not accepted any more: exit %d\n%s", code, stderr)
	}
	_, help, _ := runFlowctl(t, "", "server", "--help")
	for _, w := range []string{"--insecure ", "flowctl.sock", "--token-file"} {
		if !strings.Contains(help, w) {
			t.Errorf("server --help lacks %q", w)
		}
	}
	if strings.Contains(help, "--insecure-listen") {
		t.Error("server --help shows the hidden --insecure-listen")
	}
}

// TestServerInsecureTokenInClear: --insecure with a token on an address
// other machines reach sends the token across the network in plaintext;
// the server says so before it listens (192.0.2.1 is a documentation
// address this machine does not have, so nothing is served).
func TestServerInsecureTokenInClear(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	writeFileAt(t, token, "s3cret\n")
	if err := os.Chmod(token, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runFlowctl(t, "", "server", "--data-dir", filepath.Join(dir, "data"),
		"--listen", "192.0.2.1:0", "--insecure", "--token-file", token)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the address is not this machine's):\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "flowctl server: warning: --insecure: the token crosses the network in clear") {
		t.Errorf("no warning that the token travels in plaintext:\n%s", stderr)
	}
	if strings.Contains(stderr, "s3cret") {
		t.Errorf("the token is on stderr:\n%s", stderr)
	}
}
