//go:build unix && !linux

package server

import "syscall"

// alive reports whether pid exists (a zombie counts as alive here: there
// is no /proc to tell).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// killPID sends SIGKILL to pid.
func killPID(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }
