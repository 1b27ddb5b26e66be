package process

import (
	"os"
	"syscall"
)

// hasPdeathsig: Linux's kernel SIGKILLs a child when flowctl's thread that
// started it dies, so no pipe watcher is needed.
const hasPdeathsig = true

// sysProcAttr puts the child in a process group of its own (signals reach
// its children too) and, unless the pipe watcher stands in (tests of the
// watcher), has the kernel SIGKILL it when flowctl's thread that started
// it dies, so no child outlives its flowctl.
func sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if !pipeWatch {
		a.Pdeathsig = syscall.SIGKILL
	}
	return a
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(_ *os.Process, pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
