//go:build windows

package sandbox

import "os"

// lockSandbox: on Windows no lock is taken (it would need LockFileEx);
// two `up`s of one sandbox at once are not prevented there — the
// documentation says so. PostgreSQL still refuses a second server on one
// data directory.
func lockSandbox(dir, _ string) (unlock func(), err error) {
	return func() {}, os.MkdirAll(dir, 0o700)
}
