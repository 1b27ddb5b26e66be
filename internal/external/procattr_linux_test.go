package external

import "syscall"

// childProcAttr puts a test's child in its own process group and kills it
// when the test process dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
