package clientconfig_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/clientconfig"
)

func TestPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct {
		name, config, xdg, want string
	}{
		{"FLOWCTL_CONFIG wins", "/etc/f.yaml", "/x", "/etc/f.yaml"},
		{"XDG_CONFIG_HOME", "", "/x", "/x/flowctl/config.yaml"},
		{"home", "", "", filepath.Join(home, ".config", "flowctl", "config.yaml")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(clientconfig.EnvConfig, tc.config)
			t.Setenv("XDG_CONFIG_HOME", tc.xdg)
			got, err := clientconfig.Path()
			if err != nil || got != tc.want {
				t.Fatalf("Path() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown key", "contexts:\n  - name: a\n    sever: x:1\n", "line 3"},
		{"no name", "contexts:\n  - server: x:1\n", "has no name"},
		{"duplicate", "contexts:\n  - name: a\n  - name: a\n", "defined twice"},
		{"not yaml", "contexts: [", "config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := clientconfig.Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v; want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingAndEmpty(t *testing.T) {
	dir := t.TempDir()
	cfg, err := clientconfig.Load(filepath.Join(dir, "absent.yaml"))
	if err != nil || len(cfg.Contexts) != 0 {
		t.Fatalf("missing file: %+v, %v", cfg, err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	if cfg, err := clientconfig.Load(empty); err != nil || len(cfg.Contexts) != 0 {
		t.Fatalf("empty file: %+v, %v", cfg, err)
	}
}

func TestSaveRoundTripAndEdit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "config.yaml")
	cfg := &clientconfig.Config{}
	if !cfg.Set(clientconfig.Context{Name: "local", Server: "127.0.0.1:7070"}) {
		t.Fatal("Set of a new context reported an update")
	}
	cfg.Set(clientconfig.Context{Name: "prod", Server: "flow.example.com:7070", CA: "ca.crt", Cert: "c.crt", Key: "c.key", Token: "t"})
	if cfg.Set(clientconfig.Context{Name: "local", Server: "127.0.0.1:7171"}) {
		t.Fatal("Set of an existing context reported a new one")
	}
	if err := cfg.Use("prod"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Use("nope"); !errors.Is(err, clientconfig.ErrUnknownContext) || !strings.Contains(err.Error(), "local, prod") {
		t.Fatalf("Use(nope) = %v", err)
	}
	if err := cfg.Save(p); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if st, _ := os.Stat(filepath.Dir(p)); st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v; want 0700", st.Mode().Perm())
	}
	back, err := clientconfig.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if back.CurrentContext != "prod" || len(back.Contexts) != 2 {
		t.Fatalf("round trip: %+v", back)
	}
	if c, _ := back.Find("local"); c.Server != "127.0.0.1:7171" {
		t.Fatalf("local = %+v", c)
	}
	if c, _ := back.Find("prod"); c.Token != "t" || c.CA != "ca.crt" {
		t.Fatalf("prod = %+v", c)
	}
	data, _ := os.ReadFile(p)
	if !strings.Contains(string(data), "current-context: prod") {
		t.Fatalf("file:\n%s", data)
	}
	if !back.Delete("prod") || back.CurrentContext != "" || back.Delete("prod") {
		t.Fatalf("Delete: %+v", back)
	}
}
