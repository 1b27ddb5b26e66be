package process

import (
	"errors"
	"os"
	"syscall"
)

// pipeWatch: not supported on Windows. A child there outlives a flowctl
// that is killed (a Job object would tie them; not done yet). Stdio
// components still end at stdin EOF.
const pipeWatch = false

// sysProcAttr: Windows has no process groups to signal the way Unix does;
// the child is started as it is.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup ends the process for SIGKILL and SIGTERM alike: Windows has
// no SIGTERM to send another process, so there is no graceful stop.
func signalGroup(p *os.Process, _ int, sig syscall.Signal) error {
	if p == nil {
		return errors.New("process not started")
	}
	switch sig {
	case syscall.SIGKILL, syscall.SIGTERM:
		return p.Kill()
	}
	return errors.New("signal " + sig.String() + " is not supported on windows")
}

// watcher does not exist on Windows (see pipeWatch).
type watcher struct{}

func startWatcher(int) (*watcher, error) {
	return nil, errors.New("watching a child's parent is not supported on windows")
}

func (w *watcher) pid() int { return 0 }

func (w *watcher) stop() {}
