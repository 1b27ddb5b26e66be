//go:build !linux

package kubetest

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's; on other
// systems t.Cleanup alone stops the children.
func sysProcAttr() *syscall.SysProcAttr { return nil }
