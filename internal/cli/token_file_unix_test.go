//go:build !windows

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenFileOpenToOthersWarns: a token file other users can read would
// let them open the dashboard (or drive the server) while the token looks
// like a guard; flowctl says so, with the fix, and stays quiet for a file
// only its owner can read.
func TestTokenFileOpenToOthersWarns(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.yaml")
	writeFileAt(t, pf, `
name: tokperm
sources: [{name: gen, type: generate, config: {count: 3, data: {k: 1}}}]
sinks: [{name: out, type: file, inputs: [gen], config: {path: out.jsonl}}]
`)
	tok := filepath.Join(dir, "token")
	for _, tc := range []struct {
		perm os.FileMode
		warn bool
	}{{0o600, false}, {0o644, true}, {0o640, true}} {
		writeFileAt(t, tok, "a-token-of-mine\n")
		if err := os.Chmod(tok, tc.perm); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runFlowctl(t, "", "run", "-f", pf, "--http", "127.0.0.1:0", "--http-token", tok,
			"--state-dir", t.TempDir(), "--socket", filepath.Join(dir, "s.sock"), "--from-start")
		if code != 0 {
			t.Fatalf("mode %o: exit %d\n%s", tc.perm, code, stderr)
		}
		warned := strings.Contains(stderr, "flowctl run: warning: --http-token "+tok+": mode ") &&
			strings.Contains(stderr, "chmod 600 "+tok)
		if warned != tc.warn {
			t.Errorf("mode %o: warned %v, want %v:\n%s", tc.perm, warned, tc.warn, stderr)
		}
		if strings.Contains(stderr, "a-token-of-mine") {
			t.Errorf("mode %o: the token is on stderr:\n%s", tc.perm, stderr)
		}
	}
}
