package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// taggedBinaries are the flowctl binaries built with build tags, one per
// set of tags and test binary.
var taggedBinaries sync.Map // tags → func() (string, error)

// flowctlTaggedBinary builds flowctl with -tags tags (and env added to
// the build's environment, e.g. CGO_ENABLED=1) once per test binary, apart
// from flowctlBinary's default build, for the end-to-end tests of the
// optional parts.
func flowctlTaggedBinary(t *testing.T, tags string, env ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	build, _ := taggedBinaries.LoadOrStore(tags, sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "flowctl-e2e-"+strings.ReplaceAll(tags, ",", "-"))
		if err != nil {
			return "", err
		}
		path := filepath.Join(dir, "flowctl")
		cmd := exec.Command("go", "build", "-tags", tags, "-o", path, "github.com/flowctl/flowctl/cmd/flowctl")
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build -tags %s: %v\n%s", tags, err, out)
		}
		return path, nil
	}))
	path, err := build.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return path
}
