package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// ErrServerRunning is returned by ListenSocket when a live server already
// answers on the socket.
var ErrServerRunning = errors.New("another flowctl server is serving on it")

// probeTimeout bounds ListenSocket's check whether a socket file left
// behind still has a server behind it.
const probeTimeout = time.Second

// maxSocketPath is the longest Unix socket path the platform's sockaddr_un
// holds (its sun_path less the terminating NUL).
func maxSocketPath() int {
	switch runtime.GOOS {
	case "darwin", "freebsd", "netbsd", "openbsd", "dragonfly", "ios":
		return 103
	}
	return 107
}

// ListenSocket listens on a Unix socket at path that only this user can
// connect to, as Docker and containerd do:
//
//  1. the directory is created 0700 if missing;
//  2. a socket file left by a server that died is removed, but a live
//     server answering on it is left alone (ErrServerRunning);
//  3. the socket is made 0600 before anything is served on it: on Linux
//     it is 0600 from the moment it exists (bindSocket), whatever the
//     umask and the directory's mode; elsewhere it is chmod-ed right
//     after the bind, and a directory this function creates 0700 keeps
//     others out meanwhile.
//
// Closing the listener removes the socket file.
func ListenSocket(path string) (net.Listener, error) {
	if n := len(path); n > maxSocketPath() {
		return nil, fmt.Errorf("socket path %s is %d bytes, longer than the %d this system allows: use a shorter --data-dir or --listen unix:PATH", path, n, maxSocketPath())
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the socket's directory: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&fs.ModeSocket == 0 && runtime.GOOS != "windows" {
			return nil, fmt.Errorf("%s exists and is not a socket: move it away or give --listen unix:PATH", path)
		}
		c, err := net.DialTimeout("unix", path, probeTimeout)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w (`flowctl status --server unix:%s` asks it)", path, ErrServerRunning, path)
		}
		// Nothing accepts: the file is what a dead server left behind.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
		}
	}
	lis, err := bindSocket(path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := restrictSocket(path); err != nil {
		lis.Close()
		return nil, fmt.Errorf("restrict the socket %s to this user: %w", path, err)
	}
	return lis, nil
}

// PrivateDir creates dir 0700, or takes group and other permissions away
// from it if it exists: it holds the socket, the state and the pipelines'
// files. It reports whether it had to tighten an existing directory.
func PrivateDir(dir string) (tightened bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("create the data dir: %w", err)
	}
	return restrictDir(dir)
}
