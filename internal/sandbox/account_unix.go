//go:build unix

package sandbox

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// account is an unprivileged user a service runs as.
type account struct {
	name     string
	uid, gid int
}

// serviceAccount is the account PostgreSQL runs as: flowctl's own user,
// (nil) unless that is root, which postgres refuses to run as; then the
// unprivileged user name (Debian's package creates "postgres").
func serviceAccount(name string) (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root, and there is no user %q to run it as: run flowctl as a normal user, or create the user (Debian's postgresql package does)", name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &account{name: name, uid: uid, gid: gid}, nil
}

// reachable makes sure the account a can enter every directory from dir
// up to the root: PostgreSQL, running as a, must reach its data directory.
// Directories at or below own (the sandbox's .flowctl directory, which
// flowctl made) are given the search permission (o+x, not read); one
// above it that a cannot enter is an error saying what to change.
func reachable(dir, own string, a *account) error {
	for d := dir; ; d = parentDir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm()
		st, _ := fi.Sys().(*syscall.Stat_t)
		ok := mode&0o001 != 0 ||
			(st != nil && int(st.Uid) == a.uid && mode&0o100 != 0) ||
			(st != nil && int(st.Gid) == a.gid && mode&0o010 != 0)
		if !ok {
			if isWithin(d, own) {
				if err := os.Chmod(d, mode|0o001); err != nil {
					return err
				}
			} else {
				return fmt.Errorf("PostgreSQL runs as user %q (it refuses root) and cannot enter %s: allow it with `chmod o+x %s`, or run flowctl as a normal user", a.name, d, d)
			}
		}
		if parentDir(d) == d {
			return nil
		}
	}
}

// chown gives path to the account a.
func chown(path string, a *account) error { return os.Chown(path, a.uid, a.gid) }
