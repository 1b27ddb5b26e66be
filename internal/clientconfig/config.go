package clientconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/store"
)

// DefaultPort is the port of a server address given without one.
const DefaultPort = 7070

// DefaultAddress is the loopback TCP address suggested for
// `flowctl server --listen` when a server is to be reached over TCP. By
// default a server listens on its Unix socket instead (DefaultSocket).
const DefaultAddress = "127.0.0.1:7070"

// SocketName is the file name of the server's Unix socket in its data
// directory: `flowctl server` listens on <data-dir>/flowctl.sock unless
// --listen says otherwise.
const SocketName = "flowctl.sock"

// SocketPath is the socket of a server whose data directory is dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// DefaultSocket is the address clients dial when no flag, environment
// variable or context names one: unix:PATH of the socket of a server
// started by this user without --data-dir (store.DefaultDataDir).
func DefaultSocket() (string, error) {
	dir, err := store.DefaultDataDir()
	if err != nil {
		return "", err
	}
	return "unix:" + SocketPath(dir), nil
}

// Environment variables read by Resolve and Path.
const (
	EnvConfig  = "FLOWCTL_CONFIG"   // path of the config file
	EnvServer  = "FLOWCTL_SERVER"   // server address, above any context
	EnvContext = "FLOWCTL_CONTEXT"  // context name, above current-context
	EnvToken   = "FLOWCTL_TOKEN"    // bearer token, above the context's
	EnvCA      = "FLOWCTL_TLS_CA"   // CA file verifying the server
	EnvCert    = "FLOWCTL_TLS_CERT" // client certificate file
	EnvKey     = "FLOWCTL_TLS_KEY"  // client key file
)

// Context is one named server with the credentials to reach it.
type Context struct {
	// Name identifies the context (`flowctl config use-context NAME`).
	Name string `yaml:"name"`
	// Server is host:port, or unix:PATH.
	Server string `yaml:"server"`
	// CA verifies the server certificate; setting it (or Cert/Key) turns TLS on.
	CA string `yaml:"ca,omitempty"`
	// Cert and Key are the client certificate for mutual TLS.
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `yaml:"server-name,omitempty"`
	// Token is sent as `authorization: Bearer <token>`.
	Token string `yaml:"token,omitempty"`
	// Insecure allows plaintext to a server that is not on this machine.
	Insecure bool `yaml:"insecure,omitempty"`
}

// Config is the whole file.
type Config struct {
	CurrentContext string    `yaml:"current-context,omitempty"`
	Contexts       []Context `yaml:"contexts"`
}

// Path returns the config file's path: $FLOWCTL_CONFIG, else
// $XDG_CONFIG_HOME/flowctl/config.yaml, else ~/.config/flowctl/config.yaml.
func Path() (string, error) {
	if p := os.Getenv(EnvConfig); p != "" {
		return p, nil
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "flowctl", "config.yaml"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the config file: %w (set %s)", err, EnvConfig)
	}
	return filepath.Join(home, ".config", "flowctl", "config.yaml"), nil
}

// Load reads the file at path. A missing file is an empty Config, not an
// error. Unknown keys are errors, so a typo does not silently drop a
// setting.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, c := range cfg.Contexts {
		if c.Name == "" {
			return nil, fmt.Errorf("config %s: context #%d has no name", path, i+1)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("config %s: context %q is defined twice", path, c.Name)
		}
		seen[c.Name] = true
	}
	return cfg, nil
}

// Save writes the file with mode 0600 (it may hold a token and key paths),
// creating its directory with 0700, through a temporary file and a rename.
func (c *Config) Save(path string) error {
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// Marshal encodes the config as YAML indented by two spaces.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// Find returns the named context.
func (c *Config) Find(name string) (Context, bool) {
	for _, x := range c.Contexts {
		if x.Name == name {
			return x, true
		}
	}
	return Context{}, false
}

// Names lists the context names in file order.
func (c *Config) Names() []string {
	names := make([]string, 0, len(c.Contexts))
	for _, x := range c.Contexts {
		names = append(names, x.Name)
	}
	return names
}

// Set adds ctx, or replaces the context of the same name; it reports
// whether the context is new.
func (c *Config) Set(ctx Context) (created bool) {
	for i, x := range c.Contexts {
		if x.Name == ctx.Name {
			c.Contexts[i] = ctx
			return false
		}
	}
	c.Contexts = append(c.Contexts, ctx)
	return true
}

// Use makes name the current context; it must exist.
func (c *Config) Use(name string) error {
	if _, ok := c.Find(name); !ok {
		return c.unknown(name)
	}
	c.CurrentContext = name
	return nil
}

// Delete removes the named context (and clears current-context if it was
// that one); it reports whether there was one.
func (c *Config) Delete(name string) bool {
	i := slices.IndexFunc(c.Contexts, func(x Context) bool { return x.Name == name })
	if i < 0 {
		return false
	}
	c.Contexts = slices.Delete(c.Contexts, i, i+1)
	if c.CurrentContext == name {
		c.CurrentContext = ""
	}
	return true
}

func (c *Config) unknown(name string) error {
	if len(c.Contexts) == 0 {
		return fmt.Errorf("context %q: %w: the config has none; add one with `flowctl config set-context %s --server HOST:PORT`", name, ErrUnknownContext, name)
	}
	return fmt.Errorf("context %q: %w; known: %s", name, ErrUnknownContext, strings.Join(c.Names(), ", "))
}
