//go:build !windows

package server

import (
	"fmt"
	"os"
)

// restrictSocket makes the socket at path 0600: only this user (and root)
// may connect.
func restrictSocket(path string) error { return os.Chmod(path, 0o600) }

// restrictDir takes group and other permissions away from dir.
func restrictDir(dir string) (bool, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	if !st.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dir)
	}
	if st.Mode().Perm()&0o077 == 0 {
		return false, nil
	}
	if err := os.Chmod(dir, st.Mode().Perm()&0o700); err != nil {
		return false, fmt.Errorf("make the data dir %s private (0700): %w", dir, err)
	}
	return true, nil
}
