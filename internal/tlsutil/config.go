package tlsutil

import (
	"crypto/tls"
	"errors"
	"fmt"

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

// ServerCredentials returns the gRPC server option for cfg: TLS when cfg is
// non-nil, plaintext otherwise. Check plaintext with CheckPlaintext first.
func ServerCredentials(cfg *tls.Config) grpc.ServerOption {
	if cfg == nil {
		return grpc.Creds(insecure.NewCredentials())
	}
	return grpc.Creds(credentials.NewTLS(cfg))
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
