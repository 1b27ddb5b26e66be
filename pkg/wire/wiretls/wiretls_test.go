package wiretls

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The handshakes themselves (mutual TLS, a token refused over plaintext off
// loopback) are tested end to end in internal/tlsutil, which serves them.

func TestIsLoopback(t *testing.T) {
	cases := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:7070", true}, {"localhost:1", true}, {"[::1]:7070", true}, {"api.localhost:80", true},
		{"unix:/tmp/flowctl.sock", true}, {"dns:///127.0.0.1:1", true},
		{"10.0.0.1:7070", false}, {"flow.example.com:7070", false}, {":7070", false}, {"", false},
	}
	for _, tc := range cases {
		if got := IsLoopback(tc.addr); got != tc.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestTokenCredentials(t *testing.T) {
	for _, plaintext := range []bool{false, true} {
		c := TokenCredentials("s3cret", plaintext)
		md, err := c.GetRequestMetadata(context.Background())
		if err != nil || md[AuthHeader] != "Bearer s3cret" {
			t.Errorf("metadata = %v, %v", md, err)
		}
		if c.RequireTransportSecurity() == plaintext {
			t.Errorf("allowPlaintext=%v: RequireTransportSecurity = %v", plaintext, c.RequireTransportSecurity())
		}
	}
}

func TestClientConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    ClientOptions
	}{
		{"missing CA file", ClientOptions{CAFile: filepath.Join(dir, "nope.crt")}},
		{"CA file without PEM", ClientOptions{CAFile: notPEM}},
		{"certificate without key", ClientOptions{CertFile: notPEM}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ClientConfig(tc.o); err == nil {
				t.Error("ClientConfig succeeded")
			}
		})
	}
	if cfg, err := ClientConfig(ClientOptions{ServerName: "flow"}); err != nil || cfg.ServerName != "flow" || cfg.MinVersion == 0 {
		t.Errorf("ClientConfig = %+v, %v", cfg, err)
	}
}
