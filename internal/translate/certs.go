package translate

import (
	"fmt"

	"github.com/flowctl/flowctl/internal/tlsutil"
)

// certFiles makes a CA and, per node service, a certificate for the
// service's hostname (server and client use: nodes both accept and push),
// with flowctl's own certificate code. The CA key is written too (0600,
// mounted nowhere) so more certificates can be issued later with
// `flowctl certs`.
func certFiles(pl *plan) ([]File, error) {
	now := pl.opts.Now()
	ca, err := tlsutil.NewCA(fmt.Sprintf("flowctl %s CA", pl.p.Name), now, tlsutil.DefaultCAValidity)
	if err != nil {
		return nil, fmt.Errorf("make CA for inter-node TLS: %w", err)
	}
	files := []File{
		{Name: "tls/" + tlsutil.CACertFile, Data: ca.CertPEM, Mode: 0o644},
		{Name: "tls/" + tlsutil.CAKeyFile, Data: ca.KeyPEM, Mode: 0o600},
	}
	for _, n := range pl.nodes {
		kp, err := ca.Issue(tlsutil.CertRequest{
			CommonName: n.service,
			Hosts:      []string{n.service, "localhost", "127.0.0.1"},
			Server:     true, Client: true,
			NotBefore: now,
		})
		if err != nil {
			return nil, fmt.Errorf("certificate for service %q: %w", n.service, err)
		}
		files = append(files,
			File{Name: "tls/" + n.service + ".crt", Data: kp.CertPEM, Mode: 0o644},
			File{Name: "tls/" + n.service + ".key", Data: kp.KeyPEM, Mode: 0o600})
	}
	return files, nil
}
