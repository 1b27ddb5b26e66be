//go:build windows

package components

// syncDir is a no-op on Windows: a directory cannot be opened for
// fsync there, and NTFS journals renames itself.
func syncDir(string) error { return nil }
