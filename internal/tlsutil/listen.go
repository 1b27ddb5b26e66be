package tlsutil

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
)

// ListenOptions is what a server's flags say about securing one listener.
type ListenOptions struct {
	// Addr is the listen address, host:port.
	Addr string
	// TLS names the server's files; when none is set the listener is
	// plaintext, which CheckPlaintext must allow.
	TLS ServerOptions
	// InsecureListen is --insecure-listen: plaintext on a non-loopback
	// address.
	InsecureListen bool
	// Token, when not empty, is the bearer token every call must carry,
	// except the full method names in TokenExempt.
	Token       string
	TokenExempt []string
}

// GRPCServerOptions checks o and returns the gRPC server options for it:
// TLS (mutual when a client CA is given) or plaintext, then the token
// interceptors. Plaintext on a non-loopback address without InsecureListen
// is refused with ErrPlaintext.
func GRPCServerOptions(o ListenOptions) ([]grpc.ServerOption, error) {
	var opts []grpc.ServerOption
	if o.TLS.Enabled() {
		cfg, err := ServerConfig(o.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, ServerCredentials(cfg))
	} else {
		if err := CheckPlaintext(o.Addr, o.InsecureListen); err != nil {
			return nil, err
		}
		opts = append(opts, ServerCredentials(nil))
	}
	if o.Token != "" {
		opts = append(opts, TokenServerOptions(o.Token, o.TokenExempt...)...)
	}
	return opts, nil
}

// ReadTokenFile reads a bearer token from path, without surrounding
// white space. An empty file is an error: it would silently turn
// authentication off.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("token file " + path + " is empty")
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", errors.New("token file " + path + ": the token must be one word")
	}
	return tok, nil
}
