package sdk

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/wire/wiretls"
)

// controlPlaneTLS is how the SDK secures its connection to the control
// plane: the files of EnvTLSCA, EnvTLSCert, EnvTLSKey and EnvTLSServerName
// (or WithControlPlaneTLS / WithControlPlaneServerName), a ready
// configuration (WithControlPlaneTLSConfig) and the bearer token.
type controlPlaneTLS struct {
	files  wiretls.ClientOptions
	config *tls.Config // wins over files
	forced bool        // the endpoint said tls:// or https://
	token  string
}

// enabled reports whether the SDK dials the control plane over TLS.
func (c controlPlaneTLS) enabled() bool {
	return c.config != nil || c.forced || c.files.Enabled()
}

// describe names the mode for logs and errors.
func (c controlPlaneTLS) describe() string {
	switch {
	case !c.enabled():
		return "plaintext"
	case c.hasClientCert():
		return "mutual TLS"
	default:
		return "TLS"
	}
}

// hasClientCert reports whether a client certificate is configured.
func (c controlPlaneTLS) hasClientCert() bool {
	if c.config != nil {
		return len(c.config.Certificates) > 0 || c.config.GetClientCertificate != nil
	}
	return c.files.CertFile != ""
}

// splitEndpoint removes a tls:// or https:// scheme (which asks for TLS with
// the system's roots unless a CA is given) and a grpc:// or tcp:// one.
func splitEndpoint(endpoint string) (addr string, forceTLS bool) {
	scheme, rest, ok := strings.Cut(endpoint, "://")
	if !ok {
		return endpoint, false
	}
	switch strings.ToLower(scheme) {
	case "tls", "https":
		return strings.TrimSuffix(rest, "/"), true
	case "grpc", "tcp", "http":
		return strings.TrimSuffix(rest, "/"), false
	}
	return endpoint, false // a gRPC target such as dns:///host:port
}

// dialOptions turns the settings into gRPC dial options for addr. A token
// is sent only over TLS or to an address on this machine; asking for one
// in plaintext elsewhere is an error rather than a silent leak or a
// silently missing token.
func (c controlPlaneTLS) dialOptions(addr string) ([]grpc.DialOption, *tls.Config, error) {
	var cfg *tls.Config
	if c.enabled() {
		if c.config != nil {
			cfg = c.config.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = c.files.ServerName
			}
		} else {
			var err error
			if cfg, err = wiretls.ClientConfig(c.files); err != nil {
				return nil, nil, fmt.Errorf("control plane TLS (%s, %s, %s): %w", EnvTLSCA, EnvTLSCert, EnvTLSKey, err)
			}
		}
	}
	if c.token != "" && cfg == nil && !wiretls.IsLoopback(addr) {
		return nil, nil, fmt.Errorf("%s is set but the control plane %s is not on this machine and TLS is off: "+
			"refusing to send the token in plaintext; set %s to the CA that signed the control plane's certificate", EnvToken, addr, EnvTLSCA)
	}
	return wiretls.DialOptions(cfg, c.token, addr), cfg, nil
}

// permanent reports whether a failed Register cannot succeed by retrying:
// the TLS handshake failed (a certificate the other side refuses, a
// server that does not speak TLS, or one that does while the SDK does
// not), or the control plane refused the token.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		return true
	case codes.Unavailable:
		msg := status.Convert(err).Message()
		for _, s := range []string{"tls:", "x509:", "authentication handshake failed", "server preface", "transport level security"} {
			if strings.Contains(msg, s) {
				return true
			}
		}
	}
	return false
}

// probe dials addr as the gRPC client would, with cfg (nil: plaintext),
// and reads the server's first bytes, to report the error a failed
// Register may have hidden. With TLS 1.3 a server refuses a client
// certificate only after the client's side of the handshake is done, and
// gRPC, which writes its preface at once, then often sees "broken pipe"
// instead of the server's alert; a TLS server given plaintext just hangs
// up. A gRPC server sends its HTTP/2 settings first thing, so a healthy one
// answers the read at once. probe returns nil when the read succeeds (or
// times out), the TLS error, errPlaintextRefused, or the dial error.
func probe(ctx context.Context, addr string, cfg *tls.Config) error {
	if _, _, err := net.SplitHostPort(addr); err != nil || strings.Contains(addr, "://") {
		return nil // a gRPC target (dns:///..., unix:...): leave it to gRPC
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var conn net.Conn
	var err error
	if cfg != nil {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"h2"}
		conn, err = (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if cfg == nil {
		// Provoke a TLS server into hanging up. Over TLS write nothing: a
		// write racing the server's alert could lose it again.
		_, _ = conn.Write([]byte(http2Preface))
	}
	var b [1]byte
	_, err = conn.Read(b[:])
	switch {
	case err == nil && cfg == nil && b[0] == tlsAlertRecord:
		return fmt.Errorf("%w: it answered with a TLS alert", errPlaintextRefused)
	case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	case cfg == nil:
		return fmt.Errorf("%w: %w", errPlaintextRefused, err)
	}
	return err
}

const (
	// http2Preface opens every HTTP/2 connection (RFC 9113, 3.4).
	http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// tlsAlertRecord is the content type of a TLS alert record.
	tlsAlertRecord = 0x15
)

// errPlaintextRefused is wrapped by probe's error when a server hangs up on
// a plaintext HTTP/2 connection: it most likely wants TLS.
var errPlaintextRefused = errors.New("the control plane closed a plaintext connection without answering")

// isTLSError reports whether err comes from the TLS layer (a handshake or
// certificate failure), or is a plaintext connection a server refused,
// rather than a network error.
func isTLSError(err error) bool {
	if err == nil {
		return false
	}
	var verr *tls.CertificateVerificationError
	var herr tls.RecordHeaderError
	if errors.As(err, &verr) || errors.As(err, &herr) || errors.Is(err, errPlaintextRefused) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:")
}

// connectHint says what to check after Register failed with err.
func (c controlPlaneTLS) connectHint(err error) string {
	msg := err.Error()
	if s, ok := status.FromError(err); ok {
		msg = s.Message()
	}
	switch {
	case status.Code(err) == codes.Unauthenticated && c.token == "":
		return fmt.Sprintf("the control plane requires a bearer token: set %s", EnvToken)
	case status.Code(err) == codes.Unauthenticated:
		return fmt.Sprintf("the control plane refused the token: check %s", EnvToken)
	case !c.enabled() && (strings.Contains(msg, "server preface") || errors.Is(err, errPlaintextRefused)):
		return fmt.Sprintf("the control plane may require TLS: set %s (and %s, %s for mutual TLS)", EnvTLSCA, EnvTLSCert, EnvTLSKey)
	case c.enabled() && strings.Contains(msg, "certificate required") && !c.hasClientCert():
		return fmt.Sprintf("the control plane requires a client certificate (mutual TLS): set %s and %s", EnvTLSCert, EnvTLSKey)
	case c.enabled() && (strings.Contains(msg, "certificate required") || strings.Contains(msg, "unknown certificate authority") || strings.Contains(msg, "bad certificate")):
		// Go's client sends no certificate when the server's list of
		// acceptable CAs does not include its issuer: the server then
		// says "certificate required" although one is configured.
		return fmt.Sprintf("the control plane refused the client certificate: %s must be signed by a CA the control plane trusts (its --tls-client-ca)", EnvTLSCert)
	case c.enabled() && strings.Contains(msg, "x509:"):
		return fmt.Sprintf("the control plane's certificate did not verify: check %s (and %s)", EnvTLSCA, EnvTLSServerName)
	case c.enabled() && (strings.Contains(msg, "first record does not look like a TLS handshake") || strings.Contains(msg, "authentication handshake failed")):
		return fmt.Sprintf("the TLS handshake failed: is the control plane serving TLS? unset %s, %s, %s for a plaintext one", EnvTLSCA, EnvTLSCert, EnvTLSKey)
	default:
		return fmt.Sprintf("is flowctl running? check %s", EnvEndpoint)
	}
}
