//go:build !unix

package cli

import "errors"

// stopPID: Windows has no SIGSTOP (the tests that use it run on Unix).
func stopPID(int) error { return errors.New("stopping a process is not supported on this system") }
