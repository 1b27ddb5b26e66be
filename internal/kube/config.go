// Package kube is a small Kubernetes API client for `flowctl apply
// --target kubernetes`: kubeconfig loading (tokens, client certificates,
// exec credential plugins), server-side apply with strict field validation,
// get, list, delete, and a dry-run diff.
//
// It is linked into the flowctl binary, so it uses the standard library and
// go.yaml.in/yaml/v3 only (no client-go): objects are plain maps, and the
// resource behind a kind comes from the server's discovery API.
package kube

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is what a client needs to reach one cluster as one user: the
// kubeconfig's chosen context, resolved (file references made absolute,
// base64 data decoded). Files named by the kubeconfig (CAFile, CertFile,
// KeyFile, TokenFile) are read when the client is made, or on each request
// for TokenFile, as kubectl does.
type Config struct {
	// Path is the kubeconfig file the configuration came from ("" when
	// built in code); errors name it.
	Path string
	// Context is the name of the context used.
	Context string
	// Namespace is the context's namespace, "default" when it sets none.
	Namespace string

	// Server is the API server's URL, e.g. https://127.0.0.1:6443.
	Server string
	// CAData (PEM) verifies the server; when empty and CAFile is empty, the
	// system's roots do.
	CAData []byte
	CAFile string
	// Insecure skips verifying the server's certificate.
	Insecure bool
	// TLSServerName overrides the name the server's certificate is checked
	// against.
	TLSServerName string

	// User is the name of the kubeconfig user (for messages).
	User string
	// Token and TokenFile authenticate with a bearer token.
	Token     string
	TokenFile string
	// CertData/KeyData (PEM), or CertFile/KeyFile, authenticate with a
	// client certificate.
	CertData []byte
	KeyData  []byte
	CertFile string
	KeyFile  string
	// Username and Password authenticate with HTTP basic auth.
	Username string
	Password string
	// Exec is a credential plugin run to get a token or a client
	// certificate.
	Exec *ExecConfig
}

// ExecConfig is a kubeconfig user's exec credential plugin.
type ExecConfig struct {
	// APIVersion is client.authentication.k8s.io/v1 or /v1beta1.
	APIVersion string
	// Command is run with Args; a relative path containing a separator was
	// resolved against the kubeconfig's directory, a bare name is looked
	// up in PATH.
	Command string
	Args    []string
	// Env is added to flowctl's environment for the command.
	Env []ExecEnv
	// InstallHint is shown when the command cannot be found.
	InstallHint string
	// InteractiveMode is Never, IfAvailable or Always; flowctl runs plugins
	// without a terminal, so Always is refused.
	InteractiveMode string
	// ProvideClusterInfo passes the cluster's server and CA to the plugin
	// in KUBERNETES_EXEC_INFO.
	ProvideClusterInfo bool
}

// ExecEnv is one environment variable for an exec plugin.
type ExecEnv struct {
	Name  string
	Value string
}

// The kubeconfig file, as far as flowctl reads it. Unknown fields
// (preferences, extensions) are ignored, as kubectl does.
type kubeconfigFile struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server                   string `yaml:"server"`
			CertificateAuthority     string `yaml:"certificate-authority"`
			CertificateAuthorityData string `yaml:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
			TLSServerName            string `yaml:"tls-server-name"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Token                 string `yaml:"token"`
			TokenFile             string `yaml:"tokenFile"`
			ClientCertificate     string `yaml:"client-certificate"`
			ClientCertificateData string `yaml:"client-certificate-data"`
			ClientKey             string `yaml:"client-key"`
			ClientKeyData         string `yaml:"client-key-data"`
			Username              string `yaml:"username"`
			Password              string `yaml:"password"`
			Exec                  *struct {
				APIVersion string   `yaml:"apiVersion"`
				Command    string   `yaml:"command"`
				Args       []string `yaml:"args"`
				Env        []struct {
					Name  string `yaml:"name"`
					Value string `yaml:"value"`
				} `yaml:"env"`
				InstallHint        string `yaml:"installHint"`
				InteractiveMode    string `yaml:"interactiveMode"`
				ProvideClusterInfo bool   `yaml:"provideClusterInfo"`
			} `yaml:"exec"`
			AuthProvider *struct {
				Name string `yaml:"name"`
			} `yaml:"auth-provider"`
		} `yaml:"user"`
	} `yaml:"users"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster   string `yaml:"cluster"`
			User      string `yaml:"user"`
			Namespace string `yaml:"namespace"`
		} `yaml:"context"`
	} `yaml:"contexts"`
}

// KubeconfigPath is the kubeconfig file LoadConfig reads when given no
// path: the first entry of $KUBECONFIG (a list, like PATH), else
// ~/.kube/config. kubectl merges every file of $KUBECONFIG; flowctl reads
// the first only.
func KubeconfigPath() (string, error) {
	if env := os.Getenv("KUBECONFIG"); env != "" {
		for _, p := range filepath.SplitList(env) {
			if p != "" {
				return p, nil
			}
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("kubeconfig: $KUBECONFIG is not set and there is no home directory: %w", err)
	}
	return filepath.Join(home, ".kube", "config"), nil
}

// LoadConfig reads the kubeconfig at path (or, when path is "", the file
// KubeconfigPath names) and resolves the context named context, or the
// file's current-context when context is "".
func LoadConfig(path, context string) (*Config, error) {
	if path == "" {
		p, err := KubeconfigPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("kubeconfig %s: no such file (pass a kubeconfig, set KUBECONFIG, or create ~/.kube/config)", path)
		}
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return ParseConfig(data, path, context)
}

// ParseConfig resolves context (or the current-context) of the kubeconfig
// data; path names it in errors, and relative file names in it are taken
// relative to path's directory.
func ParseConfig(data []byte, path, context string) (*Config, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("kubeconfig %s: %s", path, fmt.Sprintf(format, args...))
	}
	var f kubeconfigFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, fail("%v", err)
	}
	var contexts []string
	for _, c := range f.Contexts {
		contexts = append(contexts, c.Name)
	}
	list := func(names []string) string {
		if len(names) == 0 {
			return "none defined"
		}
		return strings.Join(names, ", ")
	}

	name := context
	if name == "" {
		name = f.CurrentContext
		if name == "" {
			return nil, fail("no current-context, and no context was chosen (contexts: %s)", list(contexts))
		}
	}
	i := -1
	for j, c := range f.Contexts {
		if c.Name == name {
			i = j
			break
		}
	}
	if i < 0 {
		return nil, fail("context %q not found (contexts: %s)", name, list(contexts))
	}
	ctx := f.Contexts[i].Context

	cfg := &Config{Path: path, Context: name, Namespace: ctx.Namespace, User: ctx.User}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	dir := filepath.Dir(path)
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	decode := func(what, s string) ([]byte, error) {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, fail("%s: not base64: %v", what, err)
		}
		return b, nil
	}

	if ctx.Cluster == "" {
		return nil, fail("context %q names no cluster", name)
	}
	var clusters []string
	found := false
	for _, c := range f.Clusters {
		clusters = append(clusters, c.Name)
		if c.Name != ctx.Cluster || found {
			continue
		}
		found = true
		cl := c.Cluster
		if cl.Server == "" {
			return nil, fail("cluster %q has no server", c.Name)
		}
		cfg.Server = strings.TrimSuffix(cl.Server, "/")
		cfg.CAFile = resolve(cl.CertificateAuthority)
		if cl.CertificateAuthorityData != "" {
			b, err := decode(fmt.Sprintf("cluster %q: certificate-authority-data", c.Name), cl.CertificateAuthorityData)
			if err != nil {
				return nil, err
			}
			cfg.CAData = b
		}
		cfg.Insecure = cl.InsecureSkipTLSVerify
		cfg.TLSServerName = cl.TLSServerName
	}
	if !found {
		return nil, fail("context %q names cluster %q, which is not defined (clusters: %s)", name, ctx.Cluster, list(clusters))
	}

	if ctx.User == "" {
		return cfg, nil // anonymous
	}
	var users []string
	found = false
	for _, u := range f.Users {
		users = append(users, u.Name)
		if u.Name != ctx.User || found {
			continue
		}
		found = true
		us := u.User
		what := func(field string) string { return fmt.Sprintf("user %q: %s", u.Name, field) }
		cfg.Token = us.Token
		cfg.TokenFile = resolve(us.TokenFile)
		cfg.CertFile = resolve(us.ClientCertificate)
		cfg.KeyFile = resolve(us.ClientKey)
		if us.ClientCertificateData != "" {
			b, err := decode(what("client-certificate-data"), us.ClientCertificateData)
			if err != nil {
				return nil, err
			}
			cfg.CertData = b
		}
		if us.ClientKeyData != "" {
			b, err := decode(what("client-key-data"), us.ClientKeyData)
			if err != nil {
				return nil, err
			}
			cfg.KeyData = b
		}
		hasCert := len(cfg.CertData) > 0 || cfg.CertFile != ""
		hasKey := len(cfg.KeyData) > 0 || cfg.KeyFile != ""
		if hasCert != hasKey {
			return nil, fail("%s", what("a client certificate needs both client-certificate(-data) and client-key(-data)"))
		}
		cfg.Username, cfg.Password = us.Username, us.Password
		if us.AuthProvider != nil {
			return nil, fail("%s", what(fmt.Sprintf("auth-provider %q is not supported (use an exec credential plugin, as current kubectl does)", us.AuthProvider.Name)))
		}
		if e := us.Exec; e != nil {
			switch e.APIVersion {
			case execV1, execV1beta1:
			case "":
				return nil, fail("%s", what(fmt.Sprintf("exec has no apiVersion (%s or %s)", execV1, execV1beta1)))
			default:
				return nil, fail("%s", what(fmt.Sprintf("exec apiVersion %q is not supported (%s or %s)", e.APIVersion, execV1, execV1beta1)))
			}
			if e.Command == "" {
				return nil, fail("%s", what("exec has no command"))
			}
			x := &ExecConfig{
				APIVersion:         e.APIVersion,
				Command:            e.Command,
				Args:               e.Args,
				InstallHint:        e.InstallHint,
				InteractiveMode:    e.InteractiveMode,
				ProvideClusterInfo: e.ProvideClusterInfo,
			}
			// As kubectl: a command with a path separator is relative to
			// the kubeconfig; a bare name is looked up in PATH.
			if strings.ContainsRune(x.Command, '/') || strings.ContainsRune(x.Command, filepath.Separator) {
				x.Command = resolve(x.Command)
			}
			for _, v := range e.Env {
				x.Env = append(x.Env, ExecEnv{Name: v.Name, Value: v.Value})
			}
			cfg.Exec = x
		}
	}
	if !found {
		return nil, fail("context %q names user %q, which is not defined (users: %s)", name, ctx.User, list(users))
	}
	return cfg, nil
}
