//go:build !linux

package conformance

import "errors"

// pipeFill is Linux-only (FIONREAD on a pipe's write end); elsewhere the
// credits check reports that it cannot measure.
func pipeFill(any) (int, error) {
	return 0, errors.New("measuring a pipe's fill is supported on Linux only")
}
