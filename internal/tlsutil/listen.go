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
	// Addr is the listen address: host:port, or unix:PATH for a Unix
	// socket.
	Addr string
	// TLS names the server's files; when none is set the listener is
	// plaintext, which CheckListen must allow.
	TLS ServerOptions
	// Insecure is --insecure (formerly --insecure-listen): serve TCP
	// without TLS or client authentication.
	Insecure bool
	// Token, when not empty, is the bearer token every call must carry,
	// except the full method names in TokenExempt.
	Token       string
	TokenExempt []string
}

// CheckListen applies flowctl's listening rules to o, so that no other
// user of this machine (and nobody elsewhere) can drive the server:
//
//   - a Unix socket is guarded by its file mode (0600 in a 0700 directory):
//     anything goes;
//   - TCP needs the client to prove who it is: a bearer token
//     (--token-file) or a client certificate (--tls-client-ca), because any
//     local user can connect to a loopback port (ErrNoClientAuth);
//   - TCP on an address other machines reach needs TLS: a token in
//     plaintext would cross the network readable (ErrPlaintext).
//
// Insecure (--insecure) lifts both TCP rules.
func CheckListen(o ListenOptions) error {
	if IsUnix(o.Addr) || o.Insecure {
		return nil
	}
	if !o.TLS.Enabled() && !IsLoopback(o.Addr) {
		return fmt.Errorf("--listen %s: %w: add --tls-cert and --tls-key (`flowctl certs init` makes them); a token alone would cross the network in plaintext (--insecure allows it anyway)", o.Addr, ErrPlaintext)
	}
	if o.Token == "" && o.TLS.ClientCAFile == "" {
		return fmt.Errorf("--listen %s: %w: add --token-file FILE or --tls-client-ca (mutual TLS), or pass --insecure; the default Unix socket needs neither", o.Addr, ErrNoClientAuth)
	}
	return nil
}

// GRPCServerOptions checks o with CheckListen and returns the gRPC server
// options for it: TLS (mutual when a client CA is given) or plaintext,
// then the token interceptors.
func GRPCServerOptions(o ListenOptions) ([]grpc.ServerOption, error) {
	if err := CheckListen(o); err != nil {
		return nil, err
	}
	var opts []grpc.ServerOption
	if o.TLS.Enabled() {
		cfg, err := ServerConfig(o.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, ServerCredentials(cfg))
	} else {
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
