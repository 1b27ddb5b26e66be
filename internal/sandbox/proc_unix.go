//go:build unix

package sandbox

import (
	"errors"
	"os/exec"
	"syscall"
)

// detach starts cmd in a session (and process group) of its own, so that
// it outlives the flowctl that started it and is stopped as a group.
func detach(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
}

// runAs runs cmd as the account a (nil: as flowctl's own user).
func runAs(cmd *exec.Cmd, a *account) {
	if a == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid)}
}

// signalGroup asks the process group led by pid to stop (SIGTERM), or
// kills it (SIGKILL). A leader that is not a group leader any more is
// signalled alone.
func signalGroup(pid int, kill bool) error {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		err = syscall.Kill(pid, sig)
	}
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
