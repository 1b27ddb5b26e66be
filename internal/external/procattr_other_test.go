//go:build !linux

package external

import "syscall"

// childProcAttr: only Linux has a parent-death signal; elsewhere the child
// is started plainly.
func childProcAttr() *syscall.SysProcAttr { return nil }
