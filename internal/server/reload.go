package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/internal/store"
)

// childExitReloadRestart is the exit code of `flowctl run` after a SIGHUP
// whose change needs a restart (see internal/cli/run_reload.go).
const childExitReloadRestart = 3

// childExitDropped is the exit code of a `flowctl run` that finished but
// dropped events for want of a dead-letter sink (see checkDrops in
// internal/cli/run_report.go): the run completed.
const childExitDropped = 4

// reloadSettle is how long, beyond the grace, a reload may take before
// the server gives up on it and restarts the child.
const reloadSettle = 5 * time.Second

// reloadable says whether going from old (applied with directory oldDir)
// to next (with nextDir) can be applied to a running child in place; if
// not, why.
func reloadable(old, next *parsed, oldDir, nextDir string) (bool, string) {
	switch {
	case old == nil || old.pl == nil || next == nil || next.pl == nil:
		return false, "the applied file does not validate"
	case oldDir != nextDir:
		return false, "the file was applied from another directory"
	}
	if _, err := graph.CheckReload(old.pl, next.pl); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// reloadChild makes the running child c apply desired in place: it writes
// the new file where the child reloads from, sends SIGHUP and waits
// (bounded) until every component reports the new revision. It returns
// false, with c untouched or gone, when the change cannot be applied so:
// the caller restarts the child. Called with the pipeline's lock held.
func (r *reconciler) reloadChild(ctx context.Context, c *child, desired store.Pipeline) bool {
	log := r.opts.log.With(logKeyPipeline, desired.Name, logKeyRevision, desired.Revision, logKeyPID, c.pid)
	next, cur := parseSpec("", desired.Spec), parseSpec("", []byte(c.spec))
	if ok, why := reloadable(cur, next, c.dir, desired.Dir); !ok {
		log.Info("restarting the pipeline for the new revision", logKeyReason, why)
		return false
	}
	// A child still starting up may not handle SIGHUP yet.
	if len(r.components(desired.Name, c.revision())) < len(report.Components(cur.pl)) {
		log.Info("restarting the pipeline for the new revision", logKeyReason, "the running child has not registered every component yet")
		return false
	}
	if filepath.Ext(r.specPath(desired)) != filepath.Ext(c.reloadPath) {
		log.Info("restarting the pipeline for the new revision", logKeyReason, "the file changed format")
		return false
	}
	if err := r.writeReloadFiles(c, desired); err != nil {
		log.Warn("cannot hand the new revision to the child; restarting it", logKeyError, err)
		return false
	}
	c.mu.Lock()
	c.reloadingRev = desired.Revision
	c.mu.Unlock()
	sig, ok := c.h.(signaler)
	if !ok {
		log.Info("restarting the pipeline for the new revision", logKeyReason, "its driver cannot signal the child")
		return false
	}
	if err := sig.Signal(syscall.SIGHUP); err != nil {
		log.Warn("cannot signal the child; restarting it", logKeyError, err)
		return false
	}
	want := len(report.Components(next.pl))
	deadline := time.NewTimer(r.opts.grace + reloadSettle)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if got := len(r.components(desired.Name, desired.Revision)); got >= want {
			break
		}
		select {
		case <-c.exited:
			log.Info("the child stopped to apply the new revision; starting it again")
			return false
		case <-deadline.C:
			log.Warn("the child did not apply the new revision in time; restarting it")
			return false
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	// The run's record first, then the running revision: whoever sees
	// revision 2 running finds the run of revision 2 in the history too.
	if err := c.updateRun(func(run *store.Run) error {
		c.spec = string(desired.Spec)
		c.reloadingRev = 0
		run.Revision = desired.Revision
		return r.opts.store.UpdateRun(ctx, *run)
	}); err != nil {
		log.Warn("record the run's new revision", logKeyError, err)
	}
	c.rev.Store(desired.Revision)
	log.Info("pipeline reloaded in place", logKeyRun, c.run.ID)
	return true
}

// writeReloadFiles writes desired's file and revision where c reloads
// them from, each replaced at once (written aside, then renamed), plus the
// usual per-revision copy.
func (r *reconciler) writeReloadFiles(c *child, desired store.Pipeline) error {
	text := escapeVars(desired.Spec)
	if err := os.WriteFile(r.specPath(desired), text, 0o600); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	return errors.Join(
		writeAtomic(c.reloadPath, text),
		writeAtomic(c.revisionPath, []byte(strconv.FormatInt(desired.Revision, 10)+"\n")),
	)
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
