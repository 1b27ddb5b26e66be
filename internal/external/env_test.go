package external

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/spec"
)

// TestArgvRelativeDir: with the pipeline given by a relative path
// (flowctl run -f examples/x/pipeline.yaml), a relative command and working
// directory resolve once, against the file's directory, to absolute paths.
func TestArgvRelativeDir(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	for _, d := range []string{"bin", "examples/x/work"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rt := &Runtime{Dir: "examples/x"}
	cases := []struct {
		name     string
		c        spec.Component
		wantArgs []string
		wantDir  string
	}{
		{"relative command", spec.Component{Command: []string{"../../bin/proc"}, Args: []string{"-v"}},
			[]string{filepath.Join(root, "bin/proc"), "-v"}, filepath.Join(root, "examples/x")},
		{"relative working_dir", spec.Component{Command: []string{"./run.sh"}, WorkingDir: "work"},
			[]string{filepath.Join(root, "examples/x/work/run.sh")}, filepath.Join(root, "examples/x/work")},
		{"command in PATH", spec.Component{Command: []string{"python3", "p.py"}},
			[]string{"python3", "p.py"}, filepath.Join(root, "examples/x")},
		{"absolute command", spec.Component{Command: []string{"/usr/bin/env"}},
			[]string{"/usr/bin/env"}, filepath.Join(root, "examples/x")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args, dir := argv(rt, &tc.c)
			if !slices.Equal(args, tc.wantArgs) || dir != tc.wantDir {
				t.Errorf("argv = %q in %q, want %q in %q", args, dir, tc.wantArgs, tc.wantDir)
			}
		})
	}

	// And the resolved command really starts from its working directory.
	script := filepath.Join(root, "bin", "proc")
	if err := os.WriteFile(script, []byte("#!/bin/sh\npwd\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	args, dir := argv(rt, &spec.Component{Command: []string{"../../bin/proc"}})
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("start %q in %q: %v", args[0], dir, err)
	}
	if got := strings.TrimSpace(string(out)); got != filepath.Join(root, "examples/x") {
		t.Errorf("ran in %q", got)
	}
}

// TestBuildEnvOursWins: a pipeline file's values of flowctl's own
// variables (written for another setup) are replaced and reported; other
// variables, PORT among them, are the user's.
func TestBuildEnvOursWins(t *testing.T) {
	rt := &Runtime{Endpoint: "127.0.0.1:4000", HeartbeatInterval: time.Second}
	c := &spec.Component{Name: "p", Env: map[string]string{
		"FLOWCTL_ENDPOINT":   "localhost:8080",
		"ENABLE_FLOWCTL":     "false",
		"FLOWCTL_TOKEN":      "mine",
		"FLOWCTL_SERVICE_ID": "p", // the same value: nothing to report
		"PORT":               "127.0.0.1:9999",
		"MY_SETTING":         "x",
		"FLOWCTL_TTL":        "30s", // tuning: the user's
	}}
	env, overridden, err := BuildEnv(rt, c, Launch{Env: map[string]string{"PORT": "127.0.0.1:1234"}})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"FLOWCTL_ENDPOINT": "127.0.0.1:4000", "ENABLE_FLOWCTL": "true", "FLOWCTL_TOKEN": "",
		"FLOWCTL_SERVICE_ID": "p", "FLOWCTL_COMPONENT_ID": "p", "PORT": "127.0.0.1:9999", "MY_SETTING": "x",
		"FLOWCTL_TTL": "30s", "FLOWCTL_HEARTBEAT_INTERVAL": "1s",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	if want := []string{"ENABLE_FLOWCTL", "FLOWCTL_ENDPOINT", "FLOWCTL_TOKEN"}; !slices.Equal(overridden, want) {
		t.Errorf("overridden = %v, want %v", overridden, want)
	}
}

// TestBuildEnvConfigEnvNames: a config key the component's metadata.json
// maps to a variable of its own (ConfigEnv) is passed under that name too,
// as the earlier flowctl did; the file's env still wins over it.
func TestBuildEnvConfigEnvNames(t *testing.T) {
	rt := &Runtime{Endpoint: "127.0.0.1:4000"}
	c := &spec.Component{Name: "sink",
		Config:    map[string]any{"database_path": "./x.duckdb", "start_ledger": 5, "network": "testnet"},
		ConfigEnv: map[string]string{"database_path": "DUCKDB_PATH", "start_ledger": "START_AT", "network": "STELLAR_NETWORK"},
		Env:       map[string]string{"STELLAR_NETWORK": "mainnet"},
	}
	env, _, err := BuildEnv(rt, c, Launch{})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"DUCKDB_PATH": "./x.duckdb", "DATABASE_PATH": "./x.duckdb",
		"START_AT": "5", "START_LEDGER": "5",
		"STELLAR_NETWORK": "mainnet", "NETWORK": "testnet",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
}
