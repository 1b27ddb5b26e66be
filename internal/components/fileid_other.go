//go:build !unix

package components

import "os"

// ioFileID is a file's identity; this platform gives none through
// os.FileInfo, so a resumed file is recognised by its size alone.
type ioFileID struct{ dev, ino uint64 }

func ioIdentity(os.FileInfo) (ioFileID, bool) { return ioFileID{}, false }
