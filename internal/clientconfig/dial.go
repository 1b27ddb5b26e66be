package clientconfig

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// DialTimeout bounds Dial's connection check when ctx has no earlier
// deadline.
const DialTimeout = 3 * time.Second

// NoServerError says nothing accepted a connection at the address. Its
// message is one line telling the user how to get a server.
type NoServerError struct {
	Address    string
	ConfigPath string
	Err        error // the dial error, for errors.As/Is; not printed
}

// Error implements error.
func (e *NoServerError) Error() string {
	where := e.ConfigPath
	if where == "" {
		where = "the flowctl config file"
		if p, err := Path(); err == nil {
			where = p
		}
	}
	return fmt.Sprintf("no flowctl server at %s: start one with `flowctl server` (or set --server / %s / a context in %s)", e.Address, EnvServer, where)
}

// Unwrap returns the dial error.
func (e *NoServerError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNoServer) true.
func (e *NoServerError) Is(target error) bool { return target == ErrNoServer }

// Dial connects to the target and checks, within DialTimeout (or ctx's
// deadline if sooner), that a server answers: a TCP connect (nothing
// listening → *NoServerError), then a gRPC health check over the
// configured transport, which surfaces TLS and token failures as clear
// errors. A server without the health service still counts as answering.
// extra options are appended (interceptors, for instance).
func Dial(ctx context.Context, t Target, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts, err := t.DialOptions()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DialTimeout)
		defer cancel()
	}

	network, hostport := "tcp", t.Address
	if p, ok := strings.CutPrefix(t.Address, "unix:"); ok {
		network, hostport = "unix", strings.TrimPrefix(p, "//")
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, hostport)
	if network == "unix" && errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("server %s: permission denied: the socket admits only the user who started the server; run this command as that user, or have the server listen on TCP with a token (--listen HOST:PORT --token-file FILE)", t.Address)
	}
	if err != nil {
		return nil, &NoServerError{Address: t.Address, ConfigPath: t.ConfigPath, Err: err}
	}
	raw.Close()

	conn, err := grpc.NewClient(t.Address, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", t.Address, err)
	}
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
	switch status.Code(err) {
	case codes.OK, codes.NotFound, codes.Unimplemented:
		return conn, nil
	case codes.Unauthenticated:
		conn.Close()
		return nil, fmt.Errorf("server %s refused the credentials: %s: set the token in the context, --token or %s", t.Address, status.Convert(err).Message(), EnvToken)
	}
	conn.Close()
	msg := status.Convert(err).Message()
	if t.UseTLS {
		// With TLS 1.3 the server judges the client certificate after the
		// client thinks the handshake is done, so gRPC only sees a broken
		// pipe; a handshake of our own reads the server's alert.
		if d := diagnoseTLS(ctx, network, hostport, t); d != "" {
			msg = d
		}
	}
	hint := ""
	switch {
	case strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate") || strings.Contains(msg, "unknown certificate authority"):
		hint = ": the server wants a client certificate it trusts (cert and key in the context, or --tls-cert/--tls-key)"
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate"):
		hint = ": the server's certificate is not trusted (ca in the context, or --tls-ca)"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		hint = ": the server speaks plaintext; remove ca/cert/key from the context"
	case strings.Contains(msg, "error reading server preface") || strings.Contains(msg, "EOF"):
		if !t.UseTLS {
			hint = ": the server may require TLS (set ca in the context, or --tls-ca)"
		}
	}
	return nil, fmt.Errorf("connect to %s: %s%s", t.Address, msg, hint)
}

// diagnoseTLS makes a TLS connection, completes the handshake and waits
// briefly for the server's first bytes, returning the TLS error it saw ("" if
// none): a rejected client certificate arrives as an alert on that read.
func diagnoseTLS(ctx context.Context, network, hostport string, t Target) string {
	cfg, err := t.TLSConfig()
	if err != nil {
		return err.Error()
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		if h, _, err := net.SplitHostPort(hostport); err == nil {
			cfg.ServerName = h
		}
	}
	cfg.NextProtos = []string{"h2"}
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, network, hostport)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var buf [1]byte
	if _, err := c.Read(buf[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ""
		}
		return err.Error()
	}
	return ""
}
