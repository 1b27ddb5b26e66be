//go:build unix

package components

import (
	"os"
	"syscall"
)

// ioFileID is a file's identity: device and inode.
type ioFileID struct{ dev, ino uint64 }

// ioIdentity returns fi's device and inode; ok is false where the platform
// does not say.
func ioIdentity(fi os.FileInfo) (id ioFileID, ok bool) {
	st, isStat := fi.Sys().(*syscall.Stat_t)
	if !isStat {
		return ioFileID{}, false
	}
	return ioFileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true //nolint:unconvert // Dev's type differs by platform
}
