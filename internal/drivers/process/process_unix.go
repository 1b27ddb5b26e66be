//go:build unix && !linux

package process

import (
	"os"
	"syscall"
)

// hasPdeathsig: these systems (macOS, the BSDs) have no parent-death
// signal; the pipe watcher (watch_unix.go) kills a child whose flowctl
// died.
const hasPdeathsig = false

// sysProcAttr puts the child in a process group of its own, which the
// watcher kills as a whole.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(_ *os.Process, pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
