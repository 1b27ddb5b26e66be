package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/drivers"
	"github.com/flowctl/flowctl/internal/spec"
)

// A component may declare `build:` (the command that makes its program)
// and `watch:` (globs of the sources it builds). flowctl run --watch runs
// every build once before the pipeline starts, and again when a watched
// source changes; only a build that succeeds restarts its component.
// Plain flowctl run never builds: it says how to when the program is
// missing.

// buildTimeout bounds one build; a build still running then is killed and
// counts as failed.
const buildTimeout = 5 * time.Minute

// buildTarget is one component's build.
type buildTarget struct {
	name  string
	cmd   []string
	globs []string
}

// componentBuilds lists the builds of pl's components, in file order.
func componentBuilds(pl *spec.Pipeline) []buildTarget {
	var out []buildTarget
	for _, c := range pl.Components() {
		if len(c.Build) > 0 {
			out = append(out, buildTarget{name: c.Name, cmd: c.Build, globs: c.Watch})
		}
	}
	return out
}

// matches reports whether the file abs (absolute) is one of t's sources,
// its globs being relative to dir.
func (t buildTarget) matches(dir, abs string) bool {
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		return false
	}
	rel = filepath.ToSlash(rel)
	for _, g := range t.globs {
		if filepath.IsAbs(g) {
			if spec.MatchGlob(filepath.ToSlash(g), filepath.ToSlash(abs)) {
				return true
			}
			continue
		}
		if !strings.HasPrefix(rel, "../") && spec.MatchGlob(g, rel) {
			return true
		}
	}
	return false
}

// runBuild runs t's command in dir, its output (stdout and stderr, merged)
// written to out line by line prefixed with the component's name. The
// error of a failed build ends with its last output lines.
func runBuild(ctx context.Context, out io.Writer, dir string, t buildTarget) error {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("build %s: %w", t.name, err)
	}
	defer pr.Close()
	cmd := exec.CommandContext(ctx, t.cmd[0], t.cmd[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.WaitDelay = 5 * time.Second
	lines := drivers.NewLines(t.name, out, 0)
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("build of %s: %s: %w — check the `build:` command", t.name, strings.Join(t.cmd, " "), err)
	}
	pw.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		lines.Copy(pr, true)
	}()
	err = cmd.Wait()
	// A program the build left running in the background may keep the
	// pipe open: its output is not waited for long.
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
		pr.Close()
		<-copied
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("build of %s: %s did not finish within %s and was stopped", t.name, strings.Join(t.cmd, " "), buildTimeout)
	case err != nil:
		return fmt.Errorf("build of %s failed (%v): %s", t.name, err, strings.Join(t.cmd, " "))
	}
	return nil
}

// buildAll runs every build of pl once, in file order, before the run
// starts (flowctl run --watch), and stops at the first that fails.
func buildAll(ctx context.Context, stderr io.Writer, out io.Writer, pl *spec.Pipeline, dir string) error {
	for _, t := range componentBuilds(pl) {
		fmt.Fprintf(stderr, "flowctl run: --watch: building %s: %s\n", t.name, strings.Join(t.cmd, " "))
		if err := runBuild(ctx, out, dir, t); err != nil {
			return fmt.Errorf("%w; fix it and run again", err)
		}
	}
	return nil
}

// checkBuilt is plain flowctl run's check that every component with a
// build has its program: it does not build, it says how to.
func checkBuilt(pl *spec.Pipeline, dir string) error {
	var errs []error
	for _, c := range pl.Components() {
		if len(c.Build) == 0 || len(c.Command) == 0 {
			continue
		}
		prog := c.Command[0]
		if !strings.ContainsRune(prog, '/') && !strings.ContainsRune(prog, filepath.Separator) {
			if _, err := exec.LookPath(prog); err == nil {
				continue
			}
		} else {
			p := prog
			if !filepath.IsAbs(p) {
				p = filepath.Join(componentDir(c, dir), p)
			}
			if _, err := os.Stat(p); err == nil {
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s %q: its program %s does not exist; run `flowctl run --watch`, or build it: %s",
			c.Role, c.Name, prog, strings.Join(c.Build, " ")))
	}
	return errors.Join(errs...)
}

// componentDir is the directory a component's relative paths are read
// against: its working_dir (itself relative to dir), else dir.
func componentDir(c *spec.Component, dir string) string {
	if c.WorkingDir == "" {
		return dir
	}
	if filepath.IsAbs(c.WorkingDir) {
		return c.WorkingDir
	}
	return filepath.Join(dir, c.WorkingDir)
}

// fingerprint identifies a version of a program file: a rebuilt program
// whose restart was already made is not restarted again when its write
// events arrive after the build.
type fingerprint struct {
	size int64
	mod  time.Time
}

func fingerprintOf(path string) fingerprint {
	st, err := os.Stat(path)
	if err != nil {
		return fingerprint{size: -1}
	}
	return fingerprint{size: st.Size(), mod: st.ModTime()}
}
