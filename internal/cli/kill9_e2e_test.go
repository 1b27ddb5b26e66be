package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// flowctlProc is a `flowctl run` (or any flowctl command) started by an
// end-to-end test that kills it and runs it again: the kill -9 tests of
// the connectors.
type flowctlProc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	// exited is closed once the process was reaped; err is then its
	// error. Closed, not sent on, so that every reader (the test and its
	// cleanup) sees it.
	exited chan struct{}
	err    error
}

// startFlowctl starts bin with args and flowctl's environment plus env.
// The test's cleanup kills it if it still runs.
func startFlowctl(t *testing.T, bin string, env []string, args ...string) *flowctlProc {
	t.Helper()
	p := &flowctlProc{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// waitOutput polls count every 10 ms until ok holds, and fails the test
// when flowctl ends first or ctx does.
func (p *flowctlProc) waitOutput(t *testing.T, ctx context.Context, what string, count func() (lines, distinct int), ok func(lines, distinct int) bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		lines, distinct := count()
		if ok(lines, distinct) {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("flowctl ended (%v) before %s:\n%s", p.err, what, p.stderr.String())
		case <-ctx.Done():
			p.cmd.Process.Kill()
			t.Fatalf("no %s after %d polls (%d lines, %d distinct):\n%s", what, i, lines, distinct, p.stderr.String())
		case <-tick.C:
		}
	}
}

// kill9 kills flowctl with SIGKILL and waits until it is gone.
func (p *flowctlProc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// stop stops flowctl with SIGTERM and fails the test unless it ends
// cleanly before ctx does.
func (p *flowctlProc) stop(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("flowctl, stopped with SIGTERM: %v\n%s", p.err, p.stderr.String())
		}
	case <-ctx.Done():
		t.Fatalf("flowctl did not stop after SIGTERM:\n%s", p.stderr.String())
	}
}
