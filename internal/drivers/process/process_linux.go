package process

import (
	"os"
	"syscall"
)

// sysProcAttr puts the child in a process group of its own (signals reach
// its children too) and has the kernel SIGKILL it when flowctl's thread
// that started it dies, so no child outlives its flowctl.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(_ *os.Process, pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
