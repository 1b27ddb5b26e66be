package clientconfig_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flowctl/flowctl/internal/clientconfig"
	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/internal/tlsutil/tlstest"
)

// serve starts a real gRPC server on loopback; withHealth registers the
// standard health service.
func serve(t *testing.T, withHealth bool, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	if withHealth {
		healthpb.RegisterHealthServer(gs, health.NewServer())
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return lis.Addr().String()
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func TestDialNoServerIsOneLine(t *testing.T) {
	clearEnv(t)
	addr := freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	target, err := clientconfig.ResolveWith(clientconfig.Overrides{Server: addr, ConfigPath: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = clientconfig.Dial(context.Background(), target)
	if !errors.Is(err, clientconfig.ErrNoServer) {
		t.Fatalf("Dial = %v; want ErrNoServer", err)
	}
	var nse *clientconfig.NoServerError
	if !errors.As(err, &nse) || nse.Err == nil {
		t.Fatalf("not a NoServerError with a cause: %#v", err)
	}
	want := "no flowctl server at " + addr + ": start one with `flowctl server` (or set --server / FLOWCTL_SERVER / a context in " + cfgPath + ")"
	if err.Error() != want {
		t.Fatalf("message:\n got %s\nwant %s", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatal("message spans lines")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestDial(t *testing.T) {
	b := tlstest.New(t)
	const token = "tok-123"
	plain := serve(t, true)
	bare := serve(t, false) // no health service: still a server
	mtls := serve(t, true, tlsutil.ServerCredentials(b.ServerConfig(t)))
	tokenTLS := serve(t, true, append(tlsutil.TokenServerOptions(token), tlsutil.ServerCredentials(b.ServerConfig(t)))...)
	tokenPlain := serve(t, true, tlsutil.TokenServerOptions(token)...)

	dir := t.TempDir()
	// Context file paths are relative to the config file: copy the bundle's
	// files next to it under pki/.
	pki := filepath.Join(dir, "pki")
	os.MkdirAll(pki, 0o700)
	for _, f := range []string{b.Files.CACert, b.Files.ClientCert, b.Files.ClientKey, b.OtherClientCert, b.OtherClientKey} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(pki, filepath.Base(f)), data, 0o600)
	}
	cfg := &clientconfig.Config{Contexts: []clientconfig.Context{
		{Name: "plain", Server: plain},
		{Name: "bare", Server: bare},
		{Name: "mtls", Server: mtls, CA: "pki/ca.crt", Cert: "pki/client.crt", Key: "pki/client.key"},
		{Name: "mtls-nocert", Server: mtls, CA: "pki/ca.crt"},
		{Name: "mtls-other", Server: mtls, CA: "pki/ca.crt", Cert: "pki/other-client.crt", Key: "pki/other-client.key"},
		{Name: "mtls-plaintext", Server: mtls},
		{Name: "tls-to-plain", Server: plain, CA: "pki/ca.crt"},
		{Name: "token-tls", Server: tokenTLS, CA: "pki/ca.crt", Cert: "pki/client.crt", Key: "pki/client.key", Token: token},
		{Name: "token-tls-wrong", Server: tokenTLS, CA: "pki/ca.crt", Cert: "pki/client.crt", Key: "pki/client.key", Token: "nope"},
		{Name: "token-plain", Server: tokenPlain, Token: token},
		{Name: "token-plain-missing", Server: tokenPlain},
		{Name: "missing-ca-file", Server: mtls, CA: "pki/absent.crt"},
	}}
	path := filepath.Join(dir, "config.yaml")
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		context string
		wantErr string // empty: the connection works
	}{
		{"plain", ""},
		{"bare", ""},
		{"mtls", ""},
		{"mtls-nocert", "client certificate"},
		{"mtls-other", "client certificate"},
		{"mtls-plaintext", "connect to"},
		{"tls-to-plain", "connect to"},
		{"token-tls", ""},
		{"token-tls-wrong", "refused the credentials"},
		{"token-plain", ""},
		{"token-plain-missing", "refused the credentials"},
		{"missing-ca-file", "read CA file"},
	} {
		t.Run(tc.context, func(t *testing.T) {
			clearEnv(t)
			target, err := clientconfig.ResolveWith(clientconfig.Overrides{Context: tc.context, ConfigPath: path})
			if err != nil {
				t.Fatal(err)
			}
			conn, err := clientconfig.Dial(context.Background(), target)
			if tc.wantErr != "" {
				if err == nil {
					conn.Close()
					t.Fatalf("Dial succeeded; want an error mentioning %q", tc.wantErr)
				}
				t.Logf("error: %v", err)
				if !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, clientconfig.ErrNoServer) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("Dial = %v; want one line mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer conn.Close()
			if target.Context != tc.context {
				t.Fatalf("context %q not applied: %+v", tc.context, target)
			}
		})
	}
}
