package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/clientconfig"
)

func init() { register("config", newConfigCmd) }

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Manage the client config file: named contexts that say which server to talk to",
		Long: `config edits the client config file ($FLOWCTL_CONFIG, else $XDG_CONFIG_HOME/flowctl/config.yaml,
else ~/.config/flowctl/config.yaml). Each context names a server and how to reach it (CA, client
certificate, token); commands that talk to a server use --server, else $FLOWCTL_SERVER, else the
context (--context, $FLOWCTL_CONTEXT, current-context), else the Unix socket of a server this user
started without --data-dir (unix:~/.local/state/flowctl/` + clientconfig.SocketName + `).
The file is written with mode 0600.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newConfigGetContextsCmd(g),
		newConfigCurrentContextCmd(g),
		newConfigUseContextCmd(g),
		newConfigSetContextCmd(g),
		newConfigDeleteContextCmd(g),
		newConfigViewCmd(g),
	)
	return cmd
}

// loadClientConfig returns the config file's path and contents.
func loadClientConfig() (string, *clientconfig.Config, error) {
	path, err := clientconfig.Path()
	if err != nil {
		return "", nil, err
	}
	cfg, err := clientconfig.Load(path)
	if err != nil {
		return "", nil, err
	}
	return path, cfg, nil
}

func newConfigGetContextsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get-contexts",
		Short: "List the contexts; * marks the current one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, cfg, err := loadClientConfig()
			if err != nil {
				return err
			}
			if len(cfg.Contexts) == 0 {
				fmt.Fprintf(g.stderr, "No contexts in %s. Add one with: flowctl config set-context NAME --server HOST:PORT\n", path)
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "CURRENT\tNAME\tSERVER\tTLS\tTOKEN")
			for _, c := range cfg.Contexts {
				cur := ""
				if c.Name == cfg.CurrentContext {
					cur = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cur, c.Name, orNone(c.Server), contextTLSMode(c), yesNo(c.Token != ""))
			}
			return tw.Flush()
		},
	}
}

// contextTLSMode summarises how a context secures its connection.
func contextTLSMode(c clientconfig.Context) string {
	switch {
	case c.Cert != "" && c.Key != "":
		return "mtls"
	case c.CA != "" || c.Cert != "" || c.ServerName != "":
		return "tls"
	case c.Insecure:
		return "insecure"
	}
	return "none"
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newConfigCurrentContextCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "current-context",
		Short: "Print the name of the current context",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, cfg, err := loadClientConfig()
			if err != nil {
				return err
			}
			if cfg.CurrentContext == "" {
				return fmt.Errorf("no current context in %s: choose one with `flowctl config use-context NAME`", path)
			}
			fmt.Fprintln(g.stdout, cfg.CurrentContext)
			return nil
		},
	}
}

func newConfigUseContextCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "use-context NAME",
		Short: "Make NAME the current context",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, cfg, err := loadClientConfig()
			if err != nil {
				return err
			}
			if err := cfg.Use(args[0]); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if err := cfg.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Switched to context %q.\n", args[0])
			return nil
		},
	}
}

func newConfigSetContextCmd(g *globals) *cobra.Command {
	var (
		c   clientconfig.Context
		use bool
	)
	cmd := &cobra.Command{
		Use:   "set-context NAME --server HOST:PORT [--ca FILE] [--cert FILE --key FILE] [--token TOKEN]",
		Short: "Add a context, or change the fields given of an existing one",
		Long: `set-context adds the context NAME, or updates only the flags given on an existing one
(an empty value clears a field). File paths are stored absolute. --use also makes it the
current context, as does adding the first context to an empty file.`,
		Example: `  flowctl config set-context local --server 127.0.0.1:7070
  flowctl config set-context prod --server flow.example.com:7070 --ca ca.crt --cert client.crt --key client.key --use`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, cfg, err := loadClientConfig()
			if err != nil {
				return err
			}
			name := args[0]
			cur, exists := cfg.Find(name)
			if !exists {
				if c.Server == "" {
					return fmt.Errorf("context %q is new: give its address with --server HOST:PORT", name)
				}
				cur = clientconfig.Context{Name: name}
			}
			fl := cmd.Flags()
			if fl.Changed("server") {
				if c.Server != "" {
					if _, _, err := clientconfig.NormalizeAddress(c.Server); err != nil {
						return fmt.Errorf("--server: %w", err)
					}
				}
				cur.Server = c.Server
			}
			for _, f := range []struct {
				flag string
				src  string
				dst  *string
			}{{"ca", c.CA, &cur.CA}, {"cert", c.Cert, &cur.Cert}, {"key", c.Key, &cur.Key}} {
				if !fl.Changed(f.flag) {
					continue
				}
				v := f.src
				if v != "" {
					if v, err = filepath.Abs(v); err != nil {
						return fmt.Errorf("--%s: %w", f.flag, err)
					}
				}
				*f.dst = v
			}
			if fl.Changed("server-name") {
				cur.ServerName = c.ServerName
			}
			if fl.Changed("token") {
				cur.Token = c.Token
			}
			if fl.Changed("insecure") {
				cur.Insecure = c.Insecure
			}
			if (cur.Cert == "") != (cur.Key == "") {
				return errors.New("a client certificate needs both --cert and --key")
			}
			first := len(cfg.Contexts) == 0
			cfg.Set(cur)
			if use || first && cfg.CurrentContext == "" {
				cfg.CurrentContext = name
			}
			if err := cfg.Save(path); err != nil {
				return err
			}
			verb := "Created"
			if exists {
				verb = "Updated"
			}
			fmt.Fprintf(g.stdout, "%s context %q in %s.\n", verb, name, path)
			if cfg.CurrentContext == name {
				fmt.Fprintf(g.stdout, "Current context is %q.\n", name)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Server, "server", "", "server address, host:port")
	f.StringVar(&c.CA, "ca", "", "CA file verifying the server certificate (turns TLS on)")
	f.StringVar(&c.Cert, "cert", "", "client certificate file (mutual TLS)")
	f.StringVar(&c.Key, "key", "", "client key file (mutual TLS)")
	f.StringVar(&c.ServerName, "server-name", "", "name to verify in the server certificate, when it differs from the address")
	f.StringVar(&c.Token, "token", "", "bearer token to send (stored in the file, mode 0600)")
	f.BoolVar(&c.Insecure, "insecure", false, "allow plaintext to a server that is not on this machine")
	f.BoolVar(&use, "use", false, "also make it the current context")
	return cmd
}

func newConfigDeleteContextCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete-context NAME",
		Short: "Remove a context",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, cfg, err := loadClientConfig()
			if err != nil {
				return err
			}
			if !cfg.Delete(args[0]) {
				return fmt.Errorf("%s: context %q: %w", path, args[0], clientconfig.ErrUnknownContext)
			}
			if err := cfg.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Deleted context %q from %s.\n", args[0], path)
			return nil
		},
	}
}

func newConfigViewCmd(g *globals) *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "view",
		Short: "Print the config file (tokens hidden unless --raw)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cfg, err := loadClientConfig()
			if err != nil {
				return err
			}
			if !raw {
				for i := range cfg.Contexts {
					if cfg.Contexts[i].Token != "" {
						cfg.Contexts[i].Token = "REDACTED"
					}
				}
			}
			out, err := cfg.Marshal()
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(out)
			return err
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "show tokens")
	return cmd
}
