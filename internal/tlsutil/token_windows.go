//go:build windows

package tlsutil

// TokenFileExposure says "" on Windows, where the file's ACL, not a file
// mode, decides who may read it.
func TokenFileExposure(string) string { return "" }
