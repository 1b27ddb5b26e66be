package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names Init writes inside its directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	ClientCertFile = "client.crt"
	ClientKeyFile  = "client.key"
)

// Default lifetimes of the certificates Init makes.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 2 * 365 * 24 * time.Hour
)

// InitOptions tunes Init. The zero value makes certificates valid for
// localhost, 127.0.0.1 and ::1.
type InitOptions struct {
	// Hosts are extra DNS names or IP addresses for the server certificate,
	// added to localhost, 127.0.0.1 and ::1.
	Hosts []string
	// Force overwrites existing files instead of failing with ErrExists.
	Force bool
	// CAValidity and CertValidity are the lifetimes; zero means the defaults.
	CAValidity, CertValidity time.Duration
	// ClientName is the client certificate's common name ["flowctl-client"].
	ClientName string
	// Now is the clock; nil means time.Now. Tests pin it.
	Now func() time.Time
}

// Files names the files Init wrote, as paths joined with its directory.
type Files struct {
	Dir        string
	CACert     string
	CAKey      string
	ServerCert string
	ServerKey  string
	ClientCert string
	ClientKey  string
}

// FilesIn returns the paths Init uses inside dir, without touching the disk.
func FilesIn(dir string) Files {
	return Files{
		Dir:        dir,
		CACert:     filepath.Join(dir, CACertFile),
		CAKey:      filepath.Join(dir, CAKeyFile),
		ServerCert: filepath.Join(dir, ServerCertFile),
		ServerKey:  filepath.Join(dir, ServerKeyFile),
		ClientCert: filepath.Join(dir, ClientCertFile),
		ClientKey:  filepath.Join(dir, ClientKeyFile),
	}
}

// all lists the paths in write order.
func (f Files) all() []string {
	return []string{f.CACert, f.CAKey, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey}
}

// Init creates dir (0700) and writes a new local CA (ECDSA P-256), a server
// certificate for localhost, 127.0.0.1, ::1 and opts.Hosts, and a client
// certificate, all signed by that CA. Keys are written 0600, certificates
// 0644. When any of the files exists and opts.Force is false it writes
// nothing and returns an error wrapping ErrExists that names the file.
func Init(dir string, opts InitOptions) (Files, error) {
	files := FilesIn(dir)
	if !opts.Force {
		for _, p := range files.all() {
			if _, err := os.Stat(p); err == nil {
				return files, fmt.Errorf("%s: %w (use --force to replace them)", p, ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return files, fmt.Errorf("check %s: %w", p, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, fmt.Errorf("create certificate directory: %w", err)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	caValid, certValid := opts.CAValidity, opts.CertValidity
	if caValid <= 0 {
		caValid = DefaultCAValidity
	}
	if certValid <= 0 {
		certValid = DefaultCertValidity
	}
	clientName := opts.ClientName
	if clientName == "" {
		clientName = "flowctl-client"
	}

	ca, err := NewCA("flowctl local CA", now(), caValid)
	if err != nil {
		return files, err
	}
	hosts := append([]string{"localhost", "127.0.0.1", "::1"}, opts.Hosts...)
	// The server certificate is also good for client authentication: a
	// `flowctl node` both serves its upstreams and dials its downstreams
	// with the one --tls-cert it is given.
	srv, err := ca.Issue(CertRequest{CommonName: "flowctl-server", Hosts: hosts, Server: true, Client: true, NotBefore: now(), Validity: certValid})
	if err != nil {
		return files, err
	}
	cli, err := ca.Issue(CertRequest{CommonName: clientName, Client: true, NotBefore: now(), Validity: certValid})
	if err != nil {
		return files, err
	}
	if err := ca.WriteFiles(files.CACert, files.CAKey); err != nil {
		return files, err
	}
	if err := srv.WriteFiles(files.ServerCert, files.ServerKey); err != nil {
		return files, err
	}
	if err := cli.WriteFiles(files.ClientCert, files.ClientKey); err != nil {
		return files, err
	}
	return files, nil
}

// KeyPair is a certificate with its private key, kept in memory.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// WriteFiles writes the certificate (0644) and the key (0600). An existing
// key file gets its mode tightened to 0600 as well.
func (kp *KeyPair) WriteFiles(certPath, keyPath string) error {
	if err := writeFile(certPath, kp.CertPEM, 0o644); err != nil {
		return err
	}
	return writeFile(keyPath, kp.KeyPEM, 0o600)
}

// CA is a certificate authority that can issue certificates; Init uses one,
// and tests make their own (tlstest).
type CA struct {
	KeyPair
}

// CertRequest describes a certificate for CA.Issue.
type CertRequest struct {
	// CommonName is the subject's CN.
	CommonName string
	// Hosts become DNS or IP subject alternative names.
	Hosts []string
	// Server and Client choose the extended key usages.
	Server, Client bool
	// NotBefore is the start of validity (zero: now); Validity the lifetime
	// (zero: DefaultCertValidity).
	NotBefore time.Time
	Validity  time.Duration
}

// NewCA makes a self-signed ECDSA P-256 CA valid from notBefore for validity.
func NewCA(name string, notBefore time.Time, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	if notBefore.IsZero() {
		notBefore = time.Now()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"flowctl"}},
		NotBefore:             notBefore.Add(-time.Minute),
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	kp, err := sign(tmpl, tmpl, key, key)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA: %w", err)
	}
	return &CA{KeyPair: *kp}, nil
}

// Issue makes a new key and a certificate for it signed by the CA.
func (ca *CA) Issue(req CertRequest) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %q: %w", req.CommonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	nb := req.NotBefore
	if nb.IsZero() {
		nb = time.Now()
	}
	validity := req.Validity
	if validity <= 0 {
		validity = DefaultCertValidity
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: []string{"flowctl"}},
		NotBefore:    nb.Add(-time.Minute),
		NotAfter:     nb.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if req.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	seen := map[string]bool{}
	for _, h := range req.Hosts {
		h = strings.TrimSpace(h)
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	kp, err := sign(tmpl, ca.Cert, key, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %q: %w", req.CommonName, err)
	}
	return kp, nil
}

func sign(tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) (*KeyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n, nil
}

// writeFile writes data through a temporary file and a rename, so a reader
// never sees half a key, and sets perm even when the file already existed.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
