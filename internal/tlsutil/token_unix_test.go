//go:build !windows

package tlsutil_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/flowctl/flowctl/internal/tlsutil"
)

// TestTokenFileExposure: a token file only its owner can read and write
// is quiet; one other users can read or write is reported with its mode.
func TestTokenFileExposure(t *testing.T) {
	for _, tc := range []struct {
		name string
		perm os.FileMode
		want string
	}{
		{"owner only", 0o600, ""},
		{"owner read only", 0o400, ""},
		{"world readable", 0o644, "mode 0644: every user of this machine can read it"},
		{"world writable", 0o602, "mode 0602: every user of this machine can change it"},
		{"group readable", 0o640, "mode 0640: the users of its group can read it"},
		{"group writable", 0o620, "mode 0620: the users of its group can change it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(p, []byte("tok\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.perm); err != nil {
				t.Fatal(err)
			}
			if got := tlsutil.TokenFileExposure(p); got != tc.want {
				t.Errorf("TokenFileExposure = %q, want %q", got, tc.want)
			}
		})
	}
	if got := tlsutil.TokenFileExposure(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("a missing file: %q, want \"\"", got)
	}
}
