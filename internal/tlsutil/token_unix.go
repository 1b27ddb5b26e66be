//go:build !windows

package tlsutil

import (
	"fmt"
	"os"
)

// TokenFileExposure says, in a few words, why other users of this machine
// may read or change the token file at path ("" when only its owner can):
// a token they can read lets them drive whatever it guards, one they can
// write lets them choose it. It does not fail: a file it cannot stat is
// reported by whoever reads it.
func TokenFileExposure(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	perm := st.Mode().Perm()
	switch {
	case perm&0o004 != 0:
		return fmt.Sprintf("mode %04o: every user of this machine can read it", perm)
	case perm&0o002 != 0:
		return fmt.Sprintf("mode %04o: every user of this machine can change it", perm)
	case perm&0o040 != 0:
		return fmt.Sprintf("mode %04o: the users of its group can read it", perm)
	case perm&0o020 != 0:
		return fmt.Sprintf("mode %04o: the users of its group can change it", perm)
	}
	return ""
}
