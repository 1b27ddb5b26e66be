package kubetest

import "syscall"

// sysProcAttr makes the kernel kill a child when the test binary dies (a
// test timeout's panic, a kill -9), so no etcd or API server outlives it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
