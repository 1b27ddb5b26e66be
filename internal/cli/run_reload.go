package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/internal/spec"
)

// exitReloadRestart is flowctl run's exit code after a SIGHUP asked for a
// change the run cannot apply in place (the dead-letter sink changed, see
// engine.Reload): the run drained and stopped so that a supervisor starts
// it again with the new file.
const exitReloadRestart = 3

// reloader applies the pipeline file again on SIGHUP (see engine.Reload).
type reloader struct {
	g     *globals
	o     runOptions
	e     *engine.Engine
	repMu sync.Mutex
	rep   *report.Reporter // nil without --report-to
	log   *slog.Logger
	path  string
	// stopRun drains and stops the run (a change that needs a restart).
	stopRun context.CancelFunc

	// mu serialises reloads (SIGHUP and --watch).
	mu       sync.Mutex
	restart  atomic.Bool
	sigs     chan os.Signal
	stopOnce sync.Once
	done     chan struct{}
	wg       sync.WaitGroup
}

// reloadPath is the file a SIGHUP reads: --reload-from, else the -f file
// (none when that is standard input).
func reloadPath(o runOptions) string {
	if o.reloadFrom != "" {
		return o.reloadFrom
	}
	if o.file == "-" {
		return ""
	}
	return o.file
}

// startReloader handles SIGHUP until stop is called.
func startReloader(ctx context.Context, g *globals, o runOptions, e *engine.Engine, log *slog.Logger, stopRun context.CancelFunc) *reloader {
	rl := &reloader{g: g, o: o, e: e, log: log, path: reloadPath(o), stopRun: stopRun,
		sigs: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(rl.sigs, syscall.SIGHUP)
	rl.wg.Add(1)
	go func() {
		defer rl.wg.Done()
		for {
			select {
			case <-rl.done:
				return
			case <-ctx.Done():
				return
			case <-rl.sigs:
				rl.reload(ctx)
			}
		}
	}()
	return rl
}

// setReporter makes a reload report the new revision through rep.
func (rl *reloader) setReporter(rep *report.Reporter) {
	rl.repMu.Lock()
	rl.rep = rep
	rl.repMu.Unlock()
}

// stop stops handling SIGHUP (once).
func (rl *reloader) stop() {
	rl.stopOnce.Do(func() {
		signal.Stop(rl.sigs)
		close(rl.done)
		rl.wg.Wait()
	})
}

// needsRestart reports whether a SIGHUP stopped the run because its change
// needs a restart.
func (rl *reloader) needsRestart() bool { return rl.restart.Load() }

// reload reads the file again and applies it to the running pipeline.
func (rl *reloader) reload(ctx context.Context) {
	if rl.path == "" {
		rl.log.Warn("SIGHUP ignored: the pipeline came from standard input; give --reload-from FILE")
		return
	}
	rl.log.Info("SIGHUP: reloading the pipeline", "file", rl.path)
	rl.reloadWith(ctx, nil)
}

// reloadWith applies the file to the running pipeline, restarting the
// components named in restart even when their spec did not change. It
// reports whether the file validated and was applied; the new pipeline
// is returned for the caller to watch.
func (rl *reloader) reloadWith(ctx context.Context, restart []string) *spec.Pipeline {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	pl, diags, err := spec.Load(rl.path, spec.Options{Registry: components.NewRegistry()})
	if err == nil && (diags.HasErrors() || pl == nil) {
		n := 0
		for _, d := range diags {
			fmt.Fprintln(rl.g.stderr, d.String())
			if d.Severity == spec.SevError {
				n++
			}
		}
		err = fmt.Errorf("%d errors above", n)
	}
	if err != nil {
		rl.log.Error("reload: the file does not validate; the run goes on unchanged", "file", rl.path, "error", err)
		fmt.Fprintf(rl.g.stderr, "flowctl run: reload: %s does not validate (%v); the run goes on unchanged\n", rl.path, err)
		return nil
	}
	if err := resolveComponentRefs(ctx, pl, rl.g.stderr, "flowctl run: reload"); err != nil {
		rl.log.Error("reload: a component cannot be resolved; the run goes on unchanged", "file", rl.path, "error", err)
		fmt.Fprintf(rl.g.stderr, "flowctl run: reload: the run goes on unchanged: %v\n", err)
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, rl.o.grace)
	defer cancel()
	// A SIGHUP may come while the components are still opening.
	for !rl.e.Stats().Ready && rctx.Err() == nil && !rl.e.Stats().Finished {
		select {
		case <-rctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	err = rl.e.ReloadRestarting(rctx, pl, restart)
	switch {
	case errors.Is(err, engine.ErrReloadNeedsRestart):
		rl.log.Warn("reload needs a restart; draining and stopping", "error", err, "exit_code", exitReloadRestart)
		fmt.Fprintf(rl.g.stderr, "flowctl run: %v; draining and stopping with exit code %d so that the run starts again with the new file\n", err, exitReloadRestart)
		rl.restart.Store(true)
		rl.stopRun()
		return nil
	case err != nil:
		rl.log.Error("reload failed; the run goes on", "error", err)
		fmt.Fprintf(rl.g.stderr, "flowctl run: %v\n", err)
		return nil
	}
	rev := int64(0)
	if rl.o.reloadRevisionFile != "" {
		b, rerr := os.ReadFile(rl.o.reloadRevisionFile)
		if rerr == nil {
			rev, rerr = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
		if rerr != nil {
			rl.log.Error("reload: cannot read the new revision", "file", rl.o.reloadRevisionFile, "error", rerr)
		}
	}
	rl.log.Info("pipeline reloaded", "file", rl.path, "revision", rev, "restarted", restart)
	rl.repMu.Lock()
	rep := rl.rep
	rl.repMu.Unlock()
	if rep != nil {
		if rev <= 0 {
			rev = rep.Revision()
		}
		// Components may have been added or removed: the server sees the
		// new set, labelled with the new revision.
		if err := rep.Update(ctx, rev, report.Components(pl)); err != nil {
			rl.log.Error("reload: report the new revision", "revision", rev, "error", err)
		}
	}
	return pl
}
