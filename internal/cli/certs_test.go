package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flowctl/flowctl/internal/clientconfig"
	"github.com/flowctl/flowctl/internal/tlsutil"
)

// runFlowctlArgs runs flowctl with args and returns the exit code and both outputs.
func runFlowctlArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// tempClientConfig points the client config at a fresh file and clears
// the variables that would override it.
func tempClientConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flowctl", "config.yaml")
	t.Setenv(clientconfig.EnvConfig, path)
	for _, k := range []string{clientconfig.EnvServer, clientconfig.EnvContext, clientconfig.EnvToken, clientconfig.EnvCA, clientconfig.EnvCert, clientconfig.EnvKey} {
		t.Setenv(k, "")
	}
	return path
}

func TestCertsInit(t *testing.T) {
	cfgPath := tempClientConfig(t)
	dir := filepath.Join(t.TempDir(), "pki")
	for _, step := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"first", []string{"certs", "init", "--dir", dir, "--host", "flow.example.com", "--host", "10.0.0.7"}, 0, []string{
			filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client.key"),
			"localhost, 127.0.0.1, ::1, flow.example.com, 10.0.0.7",
			"flowctl server --listen :7070 --tls-cert " + filepath.Join(dir, "server.crt") + " --tls-key " + filepath.Join(dir, "server.key") + " --tls-client-ca " + filepath.Join(dir, "ca.crt"),
			"flowctl config set-context tls --server flow.example.com:7070 --ca " + filepath.Join(dir, "ca.crt"),
		}, ""},
		{"again refuses", []string{"certs", "init", "--dir", dir}, 1, nil, "--force"},
		{"forced", []string{"certs", "init", "--dir", dir, "--force"}, 0, []string{"flowctl server --listen 127.0.0.1:7070 --tls-cert", "--server 127.0.0.1:7070"}, ""},
		{"bad host", []string{"certs", "init", "--dir", t.TempDir(), "--host", "a/b"}, 1, nil, "--host"},
		{"default dir next to the config", []string{"certs", "init"}, 0, []string{filepath.Join(filepath.Dir(cfgPath), "certs", "ca.crt")}, ""},
	} {
		t.Run(step.name, func(t *testing.T) {
			code, out, errs := runFlowctlArgs(t, step.args...)
			if code != step.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, step.wantCode, out, errs)
			}
			for _, w := range step.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if step.wantErr != "" && !strings.Contains(errs, step.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", step.wantErr, errs)
			}
		})
	}
	st, err := os.Stat(filepath.Join(dir, "server.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("server.key: %v %v", st.Mode(), err)
	}
}

// TestCertsInitThenConnect follows the printed instructions: a real mTLS
// server with the written files, a context made by `config set-context`,
// and a client that connects through it.
func TestCertsInitThenConnect(t *testing.T) {
	tempClientConfig(t)
	dir := filepath.Join(t.TempDir(), "pki")
	if code, _, errs := runFlowctlArgs(t, "certs", "init", "--dir", dir); code != 0 {
		t.Fatalf("certs init: %s", errs)
	}
	files := tlsutil.FilesIn(dir)
	cfg, err := tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: files.ServerCert, KeyFile: files.ServerKey, ClientCAFile: files.CACert})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(tlsutil.ServerCredentials(cfg))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	addr := lis.Addr().String()
	if code, _, errs := runFlowctlArgs(t, "config", "set-context", "secure", "--server", addr, "--ca", files.CACert, "--use"); code != 0 {
		t.Fatalf("set-context: %s", errs)
	}
	target, err := clientconfig.Resolve("", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientconfig.Dial(context.Background(), target); err == nil || !strings.Contains(err.Error(), "client certificate") {
		t.Fatalf("without a client certificate: %v", err)
	}
	if code, _, errs := runFlowctlArgs(t, "config", "set-context", "secure", "--cert", files.ClientCert, "--key", files.ClientKey); code != 0 {
		t.Fatalf("set-context: %s", errs)
	}
	target, err = clientconfig.Resolve("", "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clientconfig.Dial(context.Background(), target)
	if err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	conn.Close()
}
