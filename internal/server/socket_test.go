//go:build !windows

package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListenSocket: the socket is 0600 in a directory created 0700; a
// live server's socket is left alone, a dead one's replaced; a file that
// is not a socket and a path too long for sockaddr_un are refused in one
// line; closing the listener removes the socket.
func TestListenSocket(t *testing.T) {
	base, err := os.MkdirTemp("", "fs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "state")
	path := filepath.Join(dir, "flowctl.sock")

	lis, err := ListenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	// Something accepts on it: a second server is refused.
	if _, err := ListenSocket(path); !errors.Is(err, ErrServerRunning) || !strings.Contains(err.Error(), "flowctl status") {
		t.Fatalf("second listen = %v, want ErrServerRunning pointing at flowctl status", err)
	}
	// A dead server's socket: the file stays, nothing accepts.
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	lis.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the stale socket should still be there: %v", err)
	}
	lis, err = ListenSocket(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	lis.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("closing did not remove the socket: %v", err)
	}

	plain := filepath.Join(base, "plain")
	os.WriteFile(plain, []byte("x"), 0o600)
	if _, err := ListenSocket(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen on a regular file = %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "x" {
		t.Error("the regular file was touched")
	}
	long := filepath.Join(base, strings.Repeat("d", 120), "flowctl.sock")
	if _, err := ListenSocket(long); err == nil || !strings.Contains(err.Error(), "shorter --data-dir") {
		t.Errorf("listen on a too long path = %v", err)
	}
}

// TestPrivateDir: a new data dir is 0700, an open one is tightened.
func TestPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if tightened, err := PrivateDir(dir); err != nil || tightened {
		t.Fatalf("new dir: %v, %v", tightened, err)
	}
	os.Chmod(dir, 0o755)
	if tightened, err := PrivateDir(dir); err != nil || !tightened {
		t.Fatalf("open dir: %v, %v", tightened, err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("mode %o", st.Mode().Perm())
	}
}
