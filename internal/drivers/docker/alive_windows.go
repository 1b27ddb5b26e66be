//go:build windows

package docker

import "os"

// processAlive reports whether a process with this pid exists on this
// machine: on Windows, FindProcess opens it and fails when there is none.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
