package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/clientconfig"
)

func TestConfigCommands(t *testing.T) {
	path := tempClientConfig(t)
	wd, _ := os.Getwd()
	steps := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout
		wantErr  string   // substring of stderr
	}{
		{"no contexts yet", []string{"config", "get-contexts"}, 0, nil, "No contexts in " + path},
		{"no current context", []string{"config", "current-context"}, 1, nil, "use-context NAME"},
		{"new context needs a server", []string{"config", "set-context", "local"}, 1, nil, "--server"},
		{"bad server", []string{"config", "set-context", "local", "--server", "h:0"}, 1, nil, "port"},
		{"first context becomes current", []string{"config", "set-context", "local", "--server", "127.0.0.1:7070"}, 0,
			[]string{`Created context "local"`, `Current context is "local"`}, ""},
		{"second context", []string{"config", "set-context", "prod", "--server", "flow.example.com:7070", "--ca", "pki/ca.crt", "--cert", "pki/c.crt", "--key", "pki/c.key", "--token", "s3cret"}, 0,
			[]string{`Created context "prod"`}, ""},
		{"cert without key", []string{"config", "set-context", "half", "--server", "h:1", "--cert", "c.crt"}, 1, nil, "--key"},
		{"list", []string{"config", "get-contexts"}, 0, []string{
			"CURRENT   NAME    SERVER                  TLS    TOKEN",
			"*         local   127.0.0.1:7070          none   no",
			"          prod    flow.example.com:7070   mtls   yes",
		}, ""},
		{"current", []string{"config", "current-context"}, 0, []string{"local\n"}, ""},
		{"use unknown", []string{"config", "use-context", "nope"}, 1, nil, "known: local, prod"},
		{"use prod", []string{"config", "use-context", "prod"}, 0, []string{`Switched to context "prod"`}, ""},
		{"current is prod", []string{"config", "current-context"}, 0, []string{"prod\n"}, ""},
		{"update one field", []string{"config", "set-context", "prod", "--server", "flow.example.com:9000"}, 0, []string{`Updated context "prod"`}, ""},
		{"view hides the token", []string{"config", "view"}, 0, []string{"token: REDACTED", "server: flow.example.com:9000", "ca: " + filepath.Join(wd, "pki", "ca.crt")}, ""},
		{"view --raw", []string{"config", "view", "--raw"}, 0, []string{"token: s3cret"}, ""},
		{"delete", []string{"config", "delete-context", "prod"}, 0, []string{`Deleted context "prod"`}, ""},
		{"delete again", []string{"config", "delete-context", "prod"}, 1, nil, "no such context"},
		{"current cleared", []string{"config", "current-context"}, 1, nil, "no current context"},
	}
	for _, step := range steps {
		code, out, errs := runFlowctlArgs(t, step.args...)
		if code != step.wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", step.name, code, step.wantCode, out, errs)
		}
		for _, w := range step.wantOut {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", step.name, w, out)
			}
		}
		if step.wantErr != "" && !strings.Contains(errs+out, step.wantErr) {
			t.Errorf("%s: output lacks %q:\nstderr: %s", step.name, step.wantErr, errs)
		}
		if strings.Count(errs, "\n") > 1 {
			t.Errorf("%s: error spans lines:\n%s", step.name, errs)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file mode %v, %v; want 0600", st.Mode(), err)
	}
	cfg, err := clientconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Contexts) != 1 || cfg.Contexts[0].Name != "local" {
		t.Fatalf("final config: %+v", cfg)
	}
}

func TestConfigSetContextClearsAndKeepsFields(t *testing.T) {
	path := tempClientConfig(t)
	if code, _, errs := runFlowctlArgs(t, "config", "set-context", "x", "--server", "127.0.0.1:1", "--ca", "/ca.crt", "--token", "t", "--use"); code != 0 {
		t.Fatal(errs)
	}
	// An empty value clears; flags not given are kept.
	if code, _, errs := runFlowctlArgs(t, "config", "set-context", "x", "--ca", ""); code != 0 {
		t.Fatal(errs)
	}
	cfg, err := clientconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cfg.Find("x")
	if c.CA != "" || c.Token != "t" || c.Server != "127.0.0.1:1" || cfg.CurrentContext != "x" {
		t.Fatalf("context: %+v current %q", c, cfg.CurrentContext)
	}
}
