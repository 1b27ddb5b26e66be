//go:build unix && !linux

package process

import (
	"os"
	"syscall"
)

// sysProcAttr puts the child in a process group of its own. These systems
// have no parent-death signal: a child outlives a flowctl killed with
// SIGKILL (stdio components still end on stdin EOF).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(_ *os.Process, pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
