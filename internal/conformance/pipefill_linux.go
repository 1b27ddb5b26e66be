package conformance

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// pipeFill returns how many bytes sit unread in the pipe whose write end f
// is (FIONREAD, which Linux answers on either end of a pipe).
func pipeFill(w any) (int, error) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, fmt.Errorf("stdin is a %T, not a pipe", w)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		// TIOCINQ is FIONREAD on Linux.
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, fmt.Errorf("FIONREAD: %w", errno)
	}
	return int(n), nil
}
