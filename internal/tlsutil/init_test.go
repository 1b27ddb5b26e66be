package tlsutil_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/tlsutil"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInitWritesVerifiableFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	files, err := tlsutil.Init(dir, tlsutil.InitOptions{Hosts: []string{"flow.example.com", "10.1.2.3"}})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{
		{files.CACert, 0o644}, {files.CAKey, 0o600},
		{files.ServerCert, 0o644}, {files.ServerKey, 0o600},
		{files.ClientCert, 0o644}, {files.ClientKey, 0o600},
	} {
		st, err := os.Stat(tc.path)
		if err != nil {
			t.Fatalf("stat %s: %v", tc.path, err)
		}
		if got := st.Mode().Perm(); got != tc.mode {
			t.Errorf("%s: mode %o, want %o", filepath.Base(tc.path), got, tc.mode)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %o, want 700", st.Mode().Perm())
	}

	ca := readCert(t, files.CACert)
	if !ca.IsCA {
		t.Fatal("ca.crt is not a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	srv := readCert(t, files.ServerCert)
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "flow.example.com", "10.1.2.3"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example.com"}); err == nil {
		t.Error("server certificate verifies for a name it was not made for")
	}
	if !slices.ContainsFunc(srv.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("::1")) }) {
		t.Errorf("server IP SANs %v lack ::1", srv.IPAddresses)
	}
	cli := readCert(t, files.ClientCert)
	if _, err := cli.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate is usable as a server certificate")
	}
	// The files load as key pairs through the config helpers.
	if _, err := tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: files.ServerCert, KeyFile: files.ServerKey, ClientCAFile: files.CACert}); err != nil {
		t.Errorf("ServerConfig: %v", err)
	}
	if _, err := tlsutil.ClientConfig(tlsutil.ClientOptions{CAFile: files.CACert, CertFile: files.ClientCert, KeyFile: files.ClientKey}); err != nil {
		t.Errorf("ClientConfig: %v", err)
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	files, err := tlsutil.Init(dir, tlsutil.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(files.CAKey)

	_, err = tlsutil.Init(dir, tlsutil.InitOptions{})
	if !errors.Is(err, tlsutil.ErrExists) {
		t.Fatalf("second Init: err = %v, want ErrExists", err)
	}
	if after, _ := os.ReadFile(files.CAKey); !bytes.Equal(before, after) {
		t.Fatal("refused Init still changed ca.key")
	}

	// One leftover file is enough to refuse.
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, tlsutil.ClientKeyFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsutil.Init(dir2, tlsutil.InitOptions{}); !errors.Is(err, tlsutil.ErrExists) {
		t.Fatalf("Init over client.key: err = %v, want ErrExists", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, tlsutil.CACertFile)); err == nil {
		t.Fatal("refused Init wrote ca.crt")
	}

	if _, err := tlsutil.Init(dir, tlsutil.InitOptions{Force: true}); err != nil {
		t.Fatalf("forced Init: %v", err)
	}
	if after, _ := os.ReadFile(files.CAKey); bytes.Equal(before, after) {
		t.Fatal("forced Init kept the old CA key")
	}
}

func TestInitValidity(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	files, err := tlsutil.Init(t.TempDir(), tlsutil.InitOptions{Now: func() time.Time { return now }, CertValidity: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := readCert(t, files.ServerCert)
	if !c.NotAfter.Equal(now.Add(48 * time.Hour)) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, now.Add(48*time.Hour))
	}
	ca := readCert(t, files.CACert)
	if !ca.NotAfter.Equal(now.Add(tlsutil.DefaultCAValidity)) {
		t.Errorf("CA NotAfter = %v", ca.NotAfter)
	}
}
