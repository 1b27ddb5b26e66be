package cli

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the tests, and every flowctl they start, a state
// directory of their own: `flowctl run` resumes from checkpoints kept
// there, and a test must not resume from another's (or the user's). The
// test binary also re-execs itself as a registering client
// (server_socket_e2e_test.go).
func TestMain(m *testing.M) {
	if v := os.Getenv(envRegister); v != "" {
		os.Exit(registerOnce(v))
	}
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
