package server

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestBindSocketNeverOpen: on Linux the socket is 0600 from the moment it
// exists, not only once ListenSocket's chmod has run: under a umask of 000
// and in a directory that was already open to everyone, another user
// connecting between the bind and the chmod would keep a connection that
// drives the server.
func TestBindSocketNeverOpen(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	path := filepath.Join(dir, "run.sock")
	lis, err := bindSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Fatalf("the socket is %o as soon as it is bound, before the chmod: any local user may connect; want 600", got)
	}
}
