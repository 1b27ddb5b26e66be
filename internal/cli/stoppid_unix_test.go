//go:build unix

package cli

import "syscall"

// stopPID stops the process pid (SIGSTOP): it lives on but runs no more.
func stopPID(pid int) error { return syscall.Kill(pid, syscall.SIGSTOP) }
