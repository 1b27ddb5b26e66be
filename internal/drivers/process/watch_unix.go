//go:build unix

package process

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// pipeWatch says whether children are watched through a pipe: where there
// is no parent-death signal (see hasPdeathsig), and in the tests of the
// watcher on Linux.
var pipeWatch = !hasPdeathsig

// watchScript is the watcher: a /bin/sh that blocks reading its stdin, the
// read end of a pipe whose only write end flowctl holds. flowctl never
// writes to it, so the read returns only when flowctl died (the kernel
// closed the write end); then the watcher SIGKILLs the child's process
// group ($1). The shell is on every Unix, so the watcher needs no binary
// of ours and works whatever program embeds this package.
const watchScript = `read -r _; kill -s KILL -- "-$1" 2>/dev/null`

// watcher is one child's watcher process.
//
//	started ──(child exits: flowctl stops it)──► gone
//	   └────(flowctl dies: stdin EOF)──► kills the child's group ──► gone
type watcher struct {
	cmd  *exec.Cmd
	held *os.File // the write end; closing it alone would trigger the kill
}

// startWatcher starts the watcher of the process group pgid.
func startWatcher(pgid int) (*watcher, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("watch pipe: %w", err)
	}
	cmd := exec.Command("/bin/sh", "-c", watchScript, "flowctl-watch", strconv.Itoa(pgid))
	cmd.Stdin = r
	cmd.Env = []string{}
	// Its own group: a signal to flowctl's group (Ctrl-C in a terminal) must
	// not end the watcher while the child lives.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start the watcher of a child (/bin/sh): %w", err)
	}
	return &watcher{cmd: cmd, held: w}, nil
}

// pid returns the watcher's pid.
func (w *watcher) pid() int { return w.cmd.Process.Pid }

// stop ends the watcher without letting it kill anything: SIGKILL first,
// then the pipe is closed. Called once the child was reaped.
func (w *watcher) stop() {
	if w == nil {
		return
	}
	_ = w.cmd.Process.Kill()
	_ = w.cmd.Wait()
	w.held.Close()
}
