package archtest

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// binaryForbidden are packages (prefixes) that must never be linked into
// the flowctl binary, with why.
var binaryForbidden = []struct{ prefix, why string }{
	{"github.com/nats-io/nats-server", "the NATS server runs only in tests (internal/natstest); flowctl speaks to NATS through the nats.go client"},
	{module + "/internal/natstest", "a test helper: it links the NATS server"},
	{module + "/internal/pgtest", "a test helper"},
	{module + "/internal/llmtest", "a test helper: the stand-in chat completions endpoint"},
	{module + "/internal/wasmtest", "a test helper: it builds Wasm modules with the go command and rustc"},
	{"github.com/twmb/franz-go/pkg/kfake", "kfake, franz-go's in-process Kafka-protocol fake, runs only in tests (internal/kafkatest); flowctl speaks to Kafka through the kgo client"},
	{module + "/internal/kafkatest", "a test helper: it links kfake"},
	{"github.com/duckdb", "DuckDB (cgo, a native library) is linked only with -tags duckdb: the default binary stays pure Go (internal/components/sink_duckdb.go)"},
	{"go.duckdb.org", "DuckDB's native library is linked only with -tags duckdb"},
}

// TestBinaryDeps reads `go list -deps ./cmd/flowctl` (the packages linked
// into the binary, for this platform) and fails on a forbidden one.
func TestBinaryDeps(t *testing.T) {
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goCmd, "list", "-deps", module+"/cmd/flowctl")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	deps := strings.Fields(string(out))
	found := false
	for _, d := range deps {
		if d == "github.com/nats-io/nats.go" {
			found = true // the client is linked: the check below is not vacuous
		}
		for _, f := range binaryForbidden {
			if d == f.prefix || strings.HasPrefix(d, f.prefix+"/") {
				t.Errorf("flowctl links %s: %s", d, f.why)
			}
		}
	}
	if !found {
		t.Errorf("go list did not list github.com/nats-io/nats.go among flowctl's %d packages: the list is not the binary's", len(deps))
	}
}
