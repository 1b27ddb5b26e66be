//go:build unix && !linux

package sandbox

import (
	"errors"
	"syscall"
)

// alive reports whether a process with this pid exists (EPERM: it does,
// as another user's). These systems give no start time to compare.
func alive(pid int, _ string) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// processStart is not read on these systems.
func processStart(int) string { return "" }
