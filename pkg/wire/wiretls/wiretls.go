package wiretls

import (
	"context"
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

// AuthHeader is the gRPC metadata key of the bearer token.
const AuthHeader = "authorization"

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

// tokenCreds sends the bearer token with every call.
type tokenCreds struct {
	token          string
	allowPlaintext bool
}

// TokenCredentials returns per-RPC credentials that send
// `authorization: Bearer <token>`. Unless allowPlaintext is true they demand
// a TLS transport, so gRPC refuses to send the token in the clear; pass
// IsLoopback(addr) to allow plaintext only to this machine.
func TokenCredentials(token string, allowPlaintext bool) credentials.PerRPCCredentials {
	return tokenCreds{token: token, allowPlaintext: allowPlaintext}
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t tokenCreds) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	return map[string]string{AuthHeader: "Bearer " + t.token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (t tokenCreds) RequireTransportSecurity() bool { return !t.allowPlaintext }

var _ credentials.PerRPCCredentials = tokenCreds{}

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

// IsUnix reports whether addr names a Unix socket (unix:PATH).
func IsUnix(addr string) bool {
	return strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "unix-abstract:")
}
