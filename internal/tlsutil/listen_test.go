package tlsutil_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/internal/tlsutil/tlstest"
)

func TestGRPCServerOptions(t *testing.T) {
	b := tlstest.New(t)
	mtls := b.ServerOptions()
	serverOnly := tlsutil.ServerOptions{CertFile: mtls.CertFile, KeyFile: mtls.KeyFile}
	for _, tc := range []struct {
		name    string
		o       tlsutil.ListenOptions
		wantErr error
		errText string
		n       int
	}{
		{name: "unix socket, nothing else", o: tlsutil.ListenOptions{Addr: "unix:/run/flowctl.sock"}, n: 1},
		{name: "unix socket with a token", o: tlsutil.ListenOptions{Addr: "unix:/run/flowctl.sock", Token: "t"}, n: 3},
		{name: "loopback plaintext without a token refused", o: tlsutil.ListenOptions{Addr: "127.0.0.1:7070"}, wantErr: tlsutil.ErrNoClientAuth, errText: "--token-file"},
		{name: "localhost plaintext without a token refused", o: tlsutil.ListenOptions{Addr: "localhost:7070"}, wantErr: tlsutil.ErrNoClientAuth},
		{name: "loopback TLS without client auth refused", o: tlsutil.ListenOptions{Addr: "127.0.0.1:7070", TLS: serverOnly}, wantErr: tlsutil.ErrNoClientAuth},
		{name: "loopback plaintext with a token", o: tlsutil.ListenOptions{Addr: "127.0.0.1:7070", Token: "t"}, n: 3},
		{name: "loopback mTLS", o: tlsutil.ListenOptions{Addr: "[::1]:7070", TLS: mtls}, n: 1},
		{name: "loopback with --insecure", o: tlsutil.ListenOptions{Addr: "127.0.0.1:7070", Insecure: true}, n: 1},
		{name: "all interfaces plaintext refused", o: tlsutil.ListenOptions{Addr: ":7070"}, wantErr: tlsutil.ErrPlaintext, errText: "--tls-cert"},
		{name: "all interfaces plaintext with a token refused", o: tlsutil.ListenOptions{Addr: "0.0.0.0:7070", Token: "t"}, wantErr: tlsutil.ErrPlaintext, errText: "plaintext"},
		{name: "all interfaces with --insecure", o: tlsutil.ListenOptions{Addr: ":7070", Insecure: true}, n: 1},
		{name: "all interfaces TLS without client auth refused", o: tlsutil.ListenOptions{Addr: ":7070", TLS: serverOnly}, wantErr: tlsutil.ErrNoClientAuth},
		{name: "all interfaces TLS and a token", o: tlsutil.ListenOptions{Addr: ":7070", TLS: serverOnly, Token: "t"}, n: 3},
		{name: "mTLS anywhere", o: tlsutil.ListenOptions{Addr: ":7070", TLS: mtls}, n: 1},
		{name: "token adds interceptors", o: tlsutil.ListenOptions{Addr: ":7070", TLS: mtls, Token: "t"}, n: 3},
		{name: "broken TLS files", o: tlsutil.ListenOptions{Addr: "127.0.0.1:1", TLS: tlsutil.ServerOptions{CertFile: b.Files.ServerCert}, Token: "t"}, errText: "--tls-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := tlsutil.GRPCServerOptions(tc.o)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errText) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line wrapping %v and mentioning %q", err, tc.wantErr, tc.errText)
				}
			case tc.errText != "":
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.errText)
				}
			case err != nil:
				t.Fatal(err)
			case len(opts) != tc.n:
				t.Fatalf("%d options, want %d", len(opts), tc.n)
			}
		})
	}

	// The options really serve mTLS with a token.
	opts, err := tlsutil.GRPCServerOptions(tlsutil.ListenOptions{Addr: "127.0.0.1:0", TLS: b.ServerOptions(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	addr := startHealth(t, opts...)
	cfg := b.ClientConfig(t, b.ClientOptions())
	if u, s := check(t, addr, tlsutil.DialOptions(cfg, "tok", addr)...); u != nil || s != nil {
		t.Fatalf("right client: %v / %v", u, s)
	}
	if u, _ := check(t, addr, tlsutil.DialOptions(cfg, "", addr)...); status.Code(u) != codes.Unauthenticated {
		t.Fatalf("no token: %v", u)
	}
	if u, _ := check(t, addr, tlsutil.DialOptions(b.ClientConfig(t, b.OtherClientOptions()), "tok", addr)...); status.Code(u) != codes.Unavailable {
		t.Fatalf("other CA: %v", u)
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body, want, errText string
	}{
		{"trimmed", "  abc123\n", "abc123", ""},
		{"empty", "\n", "", "empty"},
		{"two words", "a b", "", "one word"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			os.WriteFile(p, []byte(tc.body), 0o600)
			got, err := tlsutil.ReadTokenFile(p)
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
	if _, err := tlsutil.ReadTokenFile(filepath.Join(dir, "absent")); err == nil {
		t.Fatal("missing file accepted")
	}
}
