package cli

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the tests, and every flowctl they start, a state
// directory of their own: `flowctl run` resumes from checkpoints kept
// there, and a test must not resume from another's (or the user's).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flowctl-cli-state")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_STATE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
