//go:build unix

package external

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) this process has used,
// for benchmarks that report it per operation beside the wall time: on a
// shared machine it is the steadier figure.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
