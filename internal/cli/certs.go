package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/clientconfig"
	"github.com/flowctl/flowctl/internal/tlsutil"
)

func init() { register("certs", newCertsCmd) }

func newCertsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make the certificates that secure a flowctl server and its clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newCertsInitCmd(g))
	return cmd
}

func newCertsInitCmd(g *globals) *cobra.Command {
	var (
		dir   string
		hosts []string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "init [--dir DIR] [--host NAME]... [--force]",
		Short: "Create a local CA plus a server and a client certificate for mutual TLS",
		Long: `certs init writes a new local certificate authority (ECDSA P-256) and, signed by it,
a server certificate (valid for localhost, 127.0.0.1, ::1 and every --host) and a client
certificate: ca.crt, ca.key, server.crt, server.key, client.crt, client.key. Keys are
written with mode 0600. Existing files are never replaced unless --force is given.

It prints the flags that start "flowctl server" with mutual TLS and the context that
points clients at it.`,
		Example: `  flowctl certs init
  flowctl certs init --dir /etc/flowctl/pki --host flow.example.com --host 10.0.0.7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				d, err := defaultCertsDir()
				if err != nil {
					return err
				}
				dir = d
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return fmt.Errorf("--dir %q: %w", dir, err)
			}
			for _, h := range hosts {
				if strings.TrimSpace(h) == "" || strings.ContainsAny(h, " /:") && net.ParseIP(h) == nil {
					return fmt.Errorf("--host %q: give a DNS name or an IP address", h)
				}
			}
			files, err := tlsutil.Init(abs, tlsutil.InitOptions{Hosts: hosts, Force: force})
			if errors.Is(err, tlsutil.ErrExists) {
				return fmt.Errorf("certificates already exist in %s: keep using them, or pass --force to replace them (clients holding the old CA will be refused)", abs)
			}
			if err != nil {
				return err
			}
			printCertsInit(g.stdout, files, hosts)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for the files (default: certs/ next to the client config file)")
	f.StringSliceVar(&hosts, "host", nil, "extra DNS name or IP address of the server (repeatable)")
	f.BoolVar(&force, "force", false, "replace existing files")
	return cmd
}

// defaultCertsDir is certs/ in the directory of the client config file, so
// `flowctl certs init` with no flags keeps everything in one place.
func defaultCertsDir() (string, error) {
	p, err := clientconfig.Path()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(p), "certs"), nil
}

// printCertsInit tells the user what was written and how to use it.
func printCertsInit(w io.Writer, f tlsutil.Files, hosts []string) {
	names := append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	fmt.Fprintf(w, "Wrote a local CA and certificates to %s:\n", f.Dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range [][2]string{
		{f.CACert, "CA certificate: servers and clients trust it"},
		{f.CAKey, "CA key (0600): keep it secret; only needed to issue more certificates"},
		{f.ServerCert, "server certificate for " + strings.Join(names, ", ")},
		{f.ServerKey, "server key (0600)"},
		{f.ClientCert, "client certificate"},
		{f.ClientKey, "client key (0600)"},
	} {
		fmt.Fprintf(tw, "  %s\t%s\n", row[0], row[1])
	}
	_ = tw.Flush()
	fmt.Fprintln(w)

	// TLS secures a TCP listener; the default Unix socket needs none.
	listen, server := " --listen "+clientconfig.DefaultAddress, clientconfig.DefaultAddress
	if len(hosts) > 0 {
		// A certificate for other names means the server will be reached
		// from elsewhere: listen on every interface (TLS makes that allowed).
		listen = " --listen :" + strconv.Itoa(clientconfig.DefaultPort)
		server = net.JoinHostPort(hosts[0], strconv.Itoa(clientconfig.DefaultPort))
	}
	fmt.Fprintln(w, "Start the server with mutual TLS:")
	fmt.Fprintf(w, "  flowctl server%s --tls-cert %s --tls-key %s --tls-client-ca %s\n", listen, shellQuote(f.ServerCert), shellQuote(f.ServerKey), shellQuote(f.CACert))
	fmt.Fprintln(w, "Point clients at it:")
	fmt.Fprintf(w, "  flowctl config set-context tls --server %s --ca %s --cert %s --key %s --use\n", server, shellQuote(f.CACert), shellQuote(f.ClientCert), shellQuote(f.ClientKey))
	fmt.Fprintln(w, "or, for one command:")
	fmt.Fprintf(w, "  flowctl get pipelines --server %s --tls-ca %s --tls-cert %s --tls-key %s\n", server, shellQuote(f.CACert), shellQuote(f.ClientCert), shellQuote(f.ClientKey))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
