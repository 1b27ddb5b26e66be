//go:build windows

package sandbox

import (
	"os"
	"os/exec"
	"syscall"
)

// detachedProcess is Windows' DETACHED_PROCESS creation flag: the child
// has no console of its parent's.
const detachedProcess = 0x00000008

// detach starts cmd in a process group of its own, without the parent's
// console, so that it outlives the flowctl that started it.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP | detachedProcess}
}

// runAs: on Windows the services run as flowctl's own user.
func runAs(*exec.Cmd, *account) {}

// signalGroup ends the process: Windows has no SIGTERM to send another
// process, so there is no graceful stop (PostgreSQL is stopped by pg_ctl
// first).
func signalGroup(pid int, _ bool) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	defer p.Release()
	return p.Kill()
}

// alive reports whether a process with this pid exists.
func alive(pid int, _ string) bool {
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

// processStart is not known on Windows.
func processStart(int) string { return "" }

// lookupAccount: services run as flowctl's own user on Windows.
func serviceAccount(string) (*account, error) { return nil, nil }
