// Package tlstest makes throw-away certificates for tests of packages that
// talk TLS: a CA with a server and a client certificate (written by
// tlsutil.Init into a temporary directory), and a second, unrelated CA with
// its own client certificate, to prove that a server refuses strangers.
//
// Only tests import it.
package tlstest

import (
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/tlsutil"
)

// Bundle is a set of certificate files in a temporary directory.
type Bundle struct {
	// Dir holds every file; it is removed when the test ends.
	Dir string
	// Files are the CA, server and client files written by tlsutil.Init.
	Files tlsutil.Files
	// OtherCA, OtherClientCert and OtherClientKey are a second CA and a
	// client certificate it signed: valid, but not trusted by the server.
	OtherCA, OtherClientCert, OtherClientKey string
}

// New writes a Bundle; the server certificate is valid for localhost,
// 127.0.0.1, ::1 and hosts. It fails the test on any error.
func New(t testing.TB, hosts ...string) *Bundle {
	t.Helper()
	dir := t.TempDir()
	files, err := tlsutil.Init(filepath.Join(dir, "pki"), tlsutil.InitOptions{Hosts: hosts})
	if err != nil {
		t.Fatalf("tlstest: init certificates: %v", err)
	}
	other, err := tlsutil.NewCA("other CA", time.Now(), time.Hour)
	if err != nil {
		t.Fatalf("tlstest: other CA: %v", err)
	}
	oc, err := other.Issue(tlsutil.CertRequest{CommonName: "stranger", Client: true, Validity: time.Hour})
	if err != nil {
		t.Fatalf("tlstest: other client: %v", err)
	}
	b := &Bundle{
		Dir:             dir,
		Files:           files,
		OtherCA:         filepath.Join(dir, "other-ca.crt"),
		OtherClientCert: filepath.Join(dir, "other-client.crt"),
		OtherClientKey:  filepath.Join(dir, "other-client.key"),
	}
	if err := other.WriteFiles(b.OtherCA, filepath.Join(dir, "other-ca.key")); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	if err := oc.WriteFiles(b.OtherClientCert, b.OtherClientKey); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	return b
}

// ServerOptions are the options of a mutual-TLS server.
func (b *Bundle) ServerOptions() tlsutil.ServerOptions {
	return tlsutil.ServerOptions{CertFile: b.Files.ServerCert, KeyFile: b.Files.ServerKey, ClientCAFile: b.Files.CACert}
}

// ClientOptions are the options of a client the server accepts.
func (b *Bundle) ClientOptions() tlsutil.ClientOptions {
	return tlsutil.ClientOptions{CAFile: b.Files.CACert, CertFile: b.Files.ClientCert, KeyFile: b.Files.ClientKey}
}

// NoCertClientOptions trust the server but present no client certificate.
func (b *Bundle) NoCertClientOptions() tlsutil.ClientOptions {
	return tlsutil.ClientOptions{CAFile: b.Files.CACert}
}

// OtherClientOptions trust the server but present a certificate from the
// other CA.
func (b *Bundle) OtherClientOptions() tlsutil.ClientOptions {
	return tlsutil.ClientOptions{CAFile: b.Files.CACert, CertFile: b.OtherClientCert, KeyFile: b.OtherClientKey}
}

// ServerConfig loads ServerOptions, failing the test on error.
func (b *Bundle) ServerConfig(t testing.TB) *tls.Config {
	t.Helper()
	cfg, err := tlsutil.ServerConfig(b.ServerOptions())
	if err != nil {
		t.Fatalf("tlstest: server config: %v", err)
	}
	return cfg
}

// ClientConfig loads o (one of the Bundle's client options), failing the
// test on error.
func (b *Bundle) ClientConfig(t testing.TB, o tlsutil.ClientOptions) *tls.Config {
	t.Helper()
	cfg, err := tlsutil.ClientConfig(o)
	if err != nil {
		t.Fatalf("tlstest: client config: %v", err)
	}
	return cfg
}
