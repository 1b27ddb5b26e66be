package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/flowctl/flowctl/internal/componentref"
)

// TestComponentRefConfigEnvMapping runs a file of the earlier flowctl's
// quickstart shape: a component given by reference (`type:
// NAME@VERSION`) whose metadata.json says which variable it reads a config
// key from (config_schema's `env`, env_mapping). The published
// duckdb-consumer reads `database_path` from DUCKDB_PATH, not
// DATABASE_PATH; flowctl must pass it there, as the earlier flowctl did.
// The component is a real stdio source (a shell script) installed by hand
// in the cache; it reports the variables it was given as its one event.
func TestComponentRefConfigEnvMapping(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the component is a POSIX shell script")
	}
	bin := flowctlBinary(t)
	cache := t.TempDir()
	dir := filepath.Join(cache, "withobsrvr", "env-probe", "v1.0.0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nprintf '{\"data\":{\"duckdb\":\"%s\",\"upper\":\"%s\",\"pass\":\"%s\",\"own\":\"%s\"}}\\n' \"$DUCKDB_PATH\" \"$DATABASE_PATH\" \"$STELLAR_PASSPHRASE\" \"$MY_PATH\"\n"
	if err := os.WriteFile(filepath.Join(dir, componentref.BinaryName), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	meta := `{"name":"env-probe","type":"source",
  "config_schema":{"database_path":{"type":"string","default":"./stellar_data.duckdb","env":"DUCKDB_PATH"},
                   "other":{"type":"string","env":"MY_PATH"}},
  "env_mapping":{"network_passphrase":"STELLAR_PASSPHRASE"}}`
	if err := os.WriteFile(filepath.Join(dir, componentref.MetadataFile), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	pipeline := filepath.Join(work, "pipeline.yaml")
	if err := os.WriteFile(pipeline, []byte(`apiVersion: flowctl/v1
kind: Pipeline
metadata: {name: quickstart}
spec:
  sources:
    - id: probe
      type: env-probe@v1.0.0
      protocol: stdio
      config:
        database_path: ./pipeline.duckdb
        network_passphrase: Test SDF Network ; September 2015
        other: from-config
      env:
        MY_PATH: from-env
  sinks:
    - id: out
      type: file
      inputs: [probe]
      config: {path: out.jsonl}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runWithEnv(t, bin, []string{componentref.EnvCache + "=" + cache, componentref.EnvRegistry + "=" + closedPort(t)},
		"run", "-f", pipeline, "--state-dir", t.TempDir(), "--grace", "5s")
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, errOut)
	}
	lines := readLines(t, filepath.Join(work, "out.jsonl"))
	if len(lines) != 1 {
		t.Fatalf("%d events out, want 1\n%s", len(lines), errOut)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("%s: %v", lines[0], err)
	}
	want := map[string]string{
		"duckdb": "./pipeline.duckdb",                 // config_schema env
		"upper":  "./pipeline.duckdb",                 // flowctl's upper-cased key, as before
		"pass":   "Test SDF Network ; September 2015", // env_mapping
		"own":    "from-env",                          // the file's env wins over a mapping
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q (event %s)", k, got[k], w, lines[0])
		}
	}
}
