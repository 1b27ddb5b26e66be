//go:build windows

package server

// restrictSocket does nothing on Windows: file modes do not apply to an
// AF_UNIX socket there; who may connect follows the ACL of its directory
// (the user's profile by default).
func restrictSocket(string) error { return nil }

// restrictDir does nothing on Windows, where the data directory's ACL, not
// a file mode, decides who may read it.
func restrictDir(string) (bool, error) { return false, nil }
