package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunSIGHUP runs `flowctl run` and sends SIGHUP after each rewrite of
// its file: a file that does not validate is ignored, a changed filter and
// a new sink are applied in place (the process keeps running), a new
// dead-letter sink makes it drain and exit with code 3.
func TestRunSIGHUP(t *testing.T) {
	bin := flowctlBinary(t)
	dir := t.TempDir()
	pf := filepath.Join(dir, "pipeline.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(pf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v1 := reloadPipelineText("data.i % 2 == 0")
	write(v1)
	cmd := exec.Command(bin, "run", "-f", pf, "--grace", "5s", "--state-dir", t.TempDir())
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})
	out := filepath.Join(dir, "reload.jsonl")
	hup := func(what string, until func() bool) {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, what, until)
	}
	waitFor(t, 10*time.Second, "output", func() bool { return countLines(out) >= 5 })

	steps := []struct {
		name, text, want string
	}{
		{"invalid file", strings.Replace(v1, "inputs: [gen]", "inputs: [nope]", 1), "the run goes on unchanged"},
		{"changed filter", reloadPipelineText("data.i % 5 == 0"), "component reloaded"},
	}
	for _, st := range steps {
		write(st.text)
		hup(st.name+" to be logged", func() bool { return strings.Contains(stderr.String(), st.want) })
		select {
		case err := <-exited:
			t.Fatalf("after SIGHUP with %s the run ended: %v", st.name, err)
		default:
		}
	}
	// Output after the reload follows the new filter.
	n := countLines(out)
	waitFor(t, 10*time.Second, "output after the reload", func() bool { return countLines(out) >= n+5 })
	ids := readIDs(t, out)
	for _, i := range ids[len(ids)-3:] {
		if i%5 != 0 {
			t.Fatalf("id %d written after the reload; the new filter keeps multiples of 5 (ids %v)", i, ids)
		}
	}

	// A new sink is added in place.
	write(strings.Replace(reloadPipelineText("data.i % 5 == 0"), "sinks:\n", "sinks:\n  - {name: more, type: drop, inputs: [gen]}\n", 1))
	hup("the new sink to start", func() bool {
		return strings.Contains(stderr.String(), `msg="component started"`) && strings.Contains(stderr.String(), "component=more")
	})
	select {
	case err := <-exited:
		t.Fatalf("after SIGHUP adding a sink the run ended: %v", err)
	default:
	}

	// A new dead-letter sink cannot be added in place: drain, exit 3.
	write(reloadPipelineText("data.i % 5 == 0") + "dead_letter: {name: failed, type: drop}\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitReloadRestart {
			t.Fatalf("exit after a SIGHUP needing a restart: %v, want code %d", err, exitReloadRestart)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the run did not stop after a SIGHUP needing a restart")
	}
	if !strings.Contains(stderr.String(), "the change needs a restart of the run") {
		t.Errorf("stderr does not say why it stopped:\n%s", stderr.String())
	}
}
