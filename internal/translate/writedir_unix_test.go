//go:build !windows

package translate

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteDirKeyNotIntoOpenFile: translating again over a key file that
// was left readable (0644) must not write the new key into that file:
// whoever opened it while it was readable (another user) would read the
// new key through that descriptor even after the chmod to 0600.
func TestWriteDirKeyNotIntoOpenFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "tls", "node.key")
	if err := os.MkdirAll(filepath.Dir(key), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	other, err := os.Open(key) // as another user could, while it was 0644
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	res := &Result{Files: []File{{Name: "tls/node.key", Data: []byte("NEW PRIVATE KEY\n"), Mode: 0o600}}}
	if err := res.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %o, want 600", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(key); string(b) != "NEW PRIVATE KEY\n" {
		t.Errorf("key content %q", b)
	}
	seen, err := io.ReadAll(other)
	if err != nil {
		t.Fatal(err)
	}
	if string(seen) == "NEW PRIVATE KEY\n" {
		t.Fatal("the new key was written into the file another user had open while it was 0644: they read it")
	}
}
