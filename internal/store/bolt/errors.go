package bolt

import "errors"

// ErrInUse means another process — normally another `flowctl server` — has
// the data file open. Open's error names the file and, when known, the
// other process's pid.
var ErrInUse = errors.New("data dir in use by another flowctl server")
