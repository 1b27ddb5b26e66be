package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// ServerOptions names the PEM files of a TLS server.
type ServerOptions struct {
	// CertFile and KeyFile are the server's certificate (chain) and key.
	CertFile, KeyFile string
	// ClientCAFile, when set, turns on mutual TLS: every client must present
	// a certificate signed by one of these CAs, or the handshake fails.
	ClientCAFile string
	// RequireClientCert is implied by ClientCAFile; setting it without
	// ClientCAFile is an error (there would be nothing to verify against).
	RequireClientCert bool
}

// Enabled reports whether any TLS file is set.
func (o ServerOptions) Enabled() bool {
	return o.CertFile != "" || o.KeyFile != "" || o.ClientCAFile != ""
}

// ClientOptions names the PEM files of a TLS client.
type ClientOptions struct {
	// CAFile verifies the server; empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate for mutual TLS; both or
	// neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked against the server certificate;
	// empty means the host of the address dialled.
	ServerName string
}

// Enabled reports whether any TLS setting is present.
func (o ClientOptions) Enabled() bool {
	return o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.ServerName != ""
}

// ServerConfig loads the files into a TLS 1.2+ server configuration. With a
// ClientCAFile the configuration requires and verifies client certificates.
func ServerConfig(o ServerOptions) (*tls.Config, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("TLS server needs both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load server certificate %s / %s: %w", o.CertFile, o.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
	}
	switch {
	case o.ClientCAFile != "":
		pool, err := LoadCertPool(o.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case o.RequireClientCert:
		return nil, errors.New("requiring client certificates needs a client CA (--tls-client-ca)")
	}
	return cfg, nil
}

// ClientConfig loads the files into a TLS 1.2+ client configuration.
func ClientConfig(o ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pool, err := LoadCertPool(o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s / %s: %w", o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, errors.New("a client certificate needs both the certificate and the key file")
	}
	return cfg, nil
}

// LoadCertPool reads one or more PEM certificates from path into a pool.
func LoadCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// ServerCredentials returns the gRPC server option for cfg: TLS when cfg is
// non-nil, plaintext otherwise. Check plaintext with CheckPlaintext first.
func ServerCredentials(cfg *tls.Config) grpc.ServerOption {
	if cfg == nil {
		return grpc.Creds(insecure.NewCredentials())
	}
	return grpc.Creds(credentials.NewTLS(cfg))
}

// DialOption returns the gRPC dial option for cfg: TLS when cfg is non-nil,
// plaintext otherwise.
func DialOption(cfg *tls.Config) grpc.DialOption {
	if cfg == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg))
}

// DialOptions returns the dial options for a client: transport credentials
// from cfg and, when token is not empty, the bearer token on every call.
// addr is the address dialled; the token is refused over plaintext to a
// non-loopback address (see TokenCredentials).
func DialOptions(cfg *tls.Config, token, addr string) []grpc.DialOption {
	opts := []grpc.DialOption{DialOption(cfg)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(TokenCredentials(token, cfg == nil && IsLoopback(addr))))
	}
	return opts
}

// CheckPlaintext allows a plaintext listener (or a plaintext dial) on addr
// only when addr is a loopback address, or allowNonLoopback is set (the
// user's explicit --insecure). An empty host (":7070") listens on
// every interface, so it is not loopback.
func CheckPlaintext(addr string, allowNonLoopback bool) error {
	if allowNonLoopback || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("%s: %w: give --tls-cert and --tls-key (see `flowctl certs init`) or pass --insecure", addr, ErrPlaintext)
}

// IsLoopback reports whether addr (host:port, host, [v6]:port or
// unix:PATH) stays on this machine: localhost, 127.0.0.0/8, ::1 or a Unix
// socket.
func IsLoopback(addr string) bool {
	if IsUnix(addr) {
		return true
	}
	addr = strings.TrimPrefix(addr, "dns:///")
	addr = strings.TrimPrefix(addr, "passthrough:///")
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
