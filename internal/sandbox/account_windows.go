//go:build windows

package sandbox

// account is an unprivileged user a service runs as; never used on
// Windows, where services run as flowctl's own user.
type account struct {
	name     string
	uid, gid int
}

// reachable: nothing to do, services run as flowctl's own user.
func reachable(string, string, *account) error { return nil }

// chown: never called on Windows (there is no account to give to).
func chown(string, *account) error { return nil }
