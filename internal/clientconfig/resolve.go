package clientconfig

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/tlsutil"
)

// Overrides are what the command line says; empty fields defer to the
// environment, then to the config file.
type Overrides struct {
	// Server is --server.
	Server string
	// Context is --context.
	Context string
	// CA, Cert, Key are --tls-ca, --tls-cert, --tls-key (client side).
	CA, Cert, Key string
	// Token is --token.
	Token string
	// Insecure is --insecure: plaintext to a server off this machine.
	Insecure bool
	// ConfigPath replaces Path() (tests, --config).
	ConfigPath string
}

// Target is a resolved server: where it is and how to talk to it.
type Target struct {
	// Address is host:port (or unix:PATH) to dial.
	Address string
	// Source says where Address came from: "--server", "FLOWCTL_SERVER",
	// `context "NAME"` or "default".
	Source string
	// Context is the context whose credentials are used, if any.
	Context string
	// ConfigPath is the config file consulted (it may not exist).
	ConfigPath string
	// TLS holds the client TLS files; TLS is used when UseTLS is true.
	TLS    tlsutil.ClientOptions
	UseTLS bool
	// Token is the bearer token, empty for none.
	Token string
	// Insecure allows plaintext to a server off this machine.
	Insecure bool
}

// Resolve finds the server for a command given its --server and --context
// flags; see ResolveWith.
func Resolve(flagServer, flagContext string) (Target, error) {
	return ResolveWith(Overrides{Server: flagServer, Context: flagContext})
}

// ResolveWith finds the server. The address is the first of: o.Server,
// $FLOWCTL_SERVER, the selected context's server, DefaultSocket. The
// selected context is o.Context, else $FLOWCTL_CONTEXT, else the file's
// current-context. A context named by flag or environment always supplies
// its credentials; the current-context supplies them only when its server is
// the address being dialled, so `--server 127.0.0.1:7070` against a local
// plaintext server is not spoiled by a remote current context. TLS files and
// the token from flags or environment win over the context's.
//
// Plaintext to an address off this machine is refused unless Insecure is
// set, and a token is never sent in plaintext off this machine.
func ResolveWith(o Overrides) (Target, error) {
	path := o.ConfigPath
	if path == "" {
		p, err := Path()
		if err != nil {
			return Target{}, err
		}
		path = p
	}
	cfg, err := Load(path)
	if err != nil {
		return Target{}, err
	}
	t := Target{ConfigPath: path}

	name, explicit := o.Context, true
	if name == "" {
		name = os.Getenv(EnvContext)
	}
	if name == "" {
		name, explicit = cfg.CurrentContext, false
	}
	var ctx *Context
	if name != "" {
		c, ok := cfg.Find(name)
		if !ok {
			return Target{}, fmt.Errorf("config %s: %w", path, cfg.unknown(name))
		}
		ctx = &c
	}

	switch {
	case o.Server != "":
		t.Address, t.Source = o.Server, "--server"
	case os.Getenv(EnvServer) != "":
		t.Address, t.Source = os.Getenv(EnvServer), EnvServer
	case ctx != nil && ctx.Server != "":
		t.Address, t.Source = ctx.Server, fmt.Sprintf("context %q", ctx.Name)
	default:
		sock, err := DefaultSocket()
		if err != nil {
			return Target{}, fmt.Errorf("%w: name the server with --server or %s", err, EnvServer)
		}
		t.Address, t.Source = sock, "default"
	}
	addr, scheme, err := NormalizeAddress(t.Address)
	if err != nil {
		return Target{}, fmt.Errorf("server address from %s: %w", t.Source, err)
	}
	t.Address = addr

	if ctx != nil && !explicit && ctx.Server != "" {
		if own, _, err := NormalizeAddress(ctx.Server); err != nil || own != addr {
			ctx = nil // the current context describes another server
		}
	}
	if ctx != nil {
		t.Context = ctx.Name
		base := filepath.Dir(path)
		t.TLS = tlsutil.ClientOptions{
			CAFile:     expandPath(base, ctx.CA),
			CertFile:   expandPath(base, ctx.Cert),
			KeyFile:    expandPath(base, ctx.Key),
			ServerName: ctx.ServerName,
		}
		t.Token = ctx.Token
		t.Insecure = ctx.Insecure
	}
	for _, ov := range []struct {
		dst       *string
		flag, env string
	}{
		{&t.TLS.CAFile, o.CA, EnvCA},
		{&t.TLS.CertFile, o.Cert, EnvCert},
		{&t.TLS.KeyFile, o.Key, EnvKey},
		{&t.Token, o.Token, EnvToken},
	} {
		if ov.flag != "" {
			*ov.dst = ov.flag
		} else if v := os.Getenv(ov.env); v != "" {
			*ov.dst = v
		}
	}
	t.Insecure = t.Insecure || o.Insecure
	t.UseTLS = t.TLS.Enabled() || scheme == "tls" || scheme == "https"

	if !t.UseTLS && !tlsutil.IsLoopback(t.Address) {
		if !t.Insecure {
			return Target{}, fmt.Errorf("server %s (from %s) is not on this machine and no TLS is configured: set a CA (ca in the context, --tls-ca or %s), or allow plaintext with insecure: true / --insecure", t.Address, t.Source, EnvCA)
		}
		if t.Token != "" {
			return Target{}, fmt.Errorf("server %s: refusing to send the token in plaintext off this machine: configure TLS (ca in the context, --tls-ca or %s)", t.Address, EnvCA)
		}
	}
	return t, nil
}

// NormalizeAddress accepts host:port, a bare host (DefaultPort is added),
// :port (loopback), unix:PATH, and an optional scheme grpc://, tcp://,
// tls:// or https:// (the last two ask for TLS). It returns the address to
// dial and the scheme, lowercased ("" when none).
func NormalizeAddress(s string) (addr, scheme string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", fmt.Errorf("empty server address")
	}
	if strings.HasPrefix(s, "unix:") {
		return s, "unix", nil
	}
	if sch, rest, ok := strings.Cut(s, "://"); ok {
		scheme = strings.ToLower(sch)
		switch scheme {
		case "grpc", "tcp", "tls", "https", "http":
		default:
			return "", "", fmt.Errorf("%q: unknown scheme %q (use host:port, tls://host:port or unix:PATH)", s, sch)
		}
		s = strings.TrimSuffix(rest, "/")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host name or IP (IPv6 possibly bracketed).
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return net.JoinHostPort(s, strconv.Itoa(DefaultPort)), scheme, nil
		}
		host = strings.Trim(s, "[]")
		if host == "" || strings.ContainsAny(host, "/ ") {
			return "", "", fmt.Errorf("%q is not host:port", s)
		}
		return net.JoinHostPort(host, strconv.Itoa(DefaultPort)), scheme, nil
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	return net.JoinHostPort(host, port), scheme, nil
}

// expandPath resolves ~/ and paths relative to the config file's directory.
func expandPath(base, p string) string {
	if p == "" {
		return ""
	}
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// TLSConfig loads the client TLS configuration, nil for plaintext.
func (t Target) TLSConfig() (*tls.Config, error) {
	if !t.UseTLS {
		return nil, nil
	}
	cfg, err := tlsutil.ClientConfig(t.TLS)
	if err != nil {
		return nil, fmt.Errorf("TLS for %s: %w", t.Address, err)
	}
	return cfg, nil
}

// DialOptions returns the gRPC options that reach the target: transport
// credentials and, with a token, per-RPC credentials.
func (t Target) DialOptions() ([]grpc.DialOption, error) {
	cfg, err := t.TLSConfig()
	if err != nil {
		return nil, err
	}
	return tlsutil.DialOptions(cfg, t.Token, t.Address), nil
}
