package tlsutil

import (
	"crypto/tls"
	"crypto/x509"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flowctl/flowctl/pkg/wire/wiretls"
)

// The client side lives in pkg/wire/wiretls, public because the SDK dials
// flowctl with it; these names keep flowctl's own callers unchanged.

// ClientOptions is wiretls.ClientOptions.
type ClientOptions = wiretls.ClientOptions

// ClientConfig is wiretls.ClientConfig.
func ClientConfig(o ClientOptions) (*tls.Config, error) { return wiretls.ClientConfig(o) }

// LoadCertPool is wiretls.LoadCertPool.
func LoadCertPool(path string) (*x509.CertPool, error) { return wiretls.LoadCertPool(path) }

// DialOption is wiretls.DialOption.
func DialOption(cfg *tls.Config) grpc.DialOption { return wiretls.DialOption(cfg) }

// DialOptions is wiretls.DialOptions.
func DialOptions(cfg *tls.Config, token, addr string) []grpc.DialOption {
	return wiretls.DialOptions(cfg, token, addr)
}

// TokenCredentials is wiretls.TokenCredentials.
func TokenCredentials(token string, allowPlaintext bool) credentials.PerRPCCredentials {
	return wiretls.TokenCredentials(token, allowPlaintext)
}

// IsLoopback is wiretls.IsLoopback.
func IsLoopback(addr string) bool { return wiretls.IsLoopback(addr) }

// IsUnix is wiretls.IsUnix.
func IsUnix(addr string) bool { return wiretls.IsUnix(addr) }
