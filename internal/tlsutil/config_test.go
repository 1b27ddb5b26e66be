package tlsutil_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/internal/tlsutil/tlstest"
)

func TestIsLoopbackAndCheckPlaintext(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		loopback bool
	}{
		{"127.0.0.1:7070", true},
		{"127.9.9.9:1", true},
		{"[::1]:7070", true},
		{"::1", true},
		{"localhost:7070", true},
		{"LOCALHOST", true},
		{"dns:///localhost:7070", true},
		{"unix:/run/flowctl.sock", true},
		{":7070", false},
		{"0.0.0.0:7070", false},
		{"[::]:7070", false},
		{"10.0.0.1:7070", false},
		{"flow.example.com:7070", false},
		{"localhost.example.com:7070", false},
		{"", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if got := tlsutil.IsLoopback(tc.addr); got != tc.loopback {
				t.Fatalf("IsLoopback(%q) = %v, want %v", tc.addr, got, tc.loopback)
			}
			err := tlsutil.CheckPlaintext(tc.addr, false)
			if tc.loopback != (err == nil) {
				t.Fatalf("CheckPlaintext(%q, false) = %v", tc.addr, err)
			}
			if err != nil && (!errors.Is(err, tlsutil.ErrPlaintext) || !strings.Contains(err.Error(), "--insecure")) {
				t.Fatalf("error %q should wrap ErrPlaintext and mention --insecure", err)
			}
			if err := tlsutil.CheckPlaintext(tc.addr, true); err != nil {
				t.Fatalf("CheckPlaintext(%q, true) = %v", tc.addr, err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	b := tlstest.New(t)
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"server without key", func() error {
			_, err := tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: b.Files.ServerCert})
			return err
		}, "--tls-key"},
		{"server key mismatch", func() error {
			_, err := tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: b.Files.ServerCert, KeyFile: b.Files.ClientKey})
			return err
		}, "load server certificate"},
		{"require client cert without CA", func() error {
			_, err := tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: b.Files.ServerCert, KeyFile: b.Files.ServerKey, RequireClientCert: true})
			return err
		}, "--tls-client-ca"},
		{"client CA not PEM", func() error {
			_, err := tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: b.Files.ServerCert, KeyFile: b.Files.ServerKey, ClientCAFile: junk})
			return err
		}, "no PEM certificate"},
		{"client CA missing", func() error {
			_, err := tlsutil.ClientConfig(tlsutil.ClientOptions{CAFile: filepath.Join(b.Dir, "nope.crt")})
			return err
		}, "read CA file"},
		{"client cert without key", func() error {
			_, err := tlsutil.ClientConfig(tlsutil.ClientOptions{CertFile: b.Files.ClientCert})
			return err
		}, "both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestServerConfigModes(t *testing.T) {
	b := tlstest.New(t)
	cfg := b.ServerConfig(t)
	if cfg.MinVersion < 0x0303 {
		t.Errorf("MinVersion = %x, want TLS 1.2+", cfg.MinVersion)
	}
	if cfg.ClientCAs == nil || cfg.ClientAuth.String() != "RequireAndVerifyClientCert" {
		t.Errorf("ClientAuth = %v, want RequireAndVerifyClientCert", cfg.ClientAuth)
	}
	plain, err := tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: b.Files.ServerCert, KeyFile: b.Files.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	if plain.ClientAuth.String() != "NoClientCert" {
		t.Errorf("without a client CA: ClientAuth = %v", plain.ClientAuth)
	}
}
