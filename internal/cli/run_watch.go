package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/flowctl/flowctl/internal/spec"
)

// flowctl run --watch: the pipeline file and the local programs its
// components run are watched (fsnotify). A saved pipeline file is applied
// in place, as SIGHUP does (an invalid edit prints its FILE:LINE:COL errors
// and the running version goes on); a changed program (a rebuilt binary, an
// edited script) restarts only the components that run it, drained first.
// Directories are watched rather than files, because editors and
// compilers replace a file by renaming a new one over it.

// watchDebounce is how long the watcher waits for more changes after
// one, so that a save written in several steps is applied once.
const watchDebounce = 300 * time.Millisecond

// watcher drives reloads from file changes.
type watcher struct {
	rl  *reloader
	fsw *fsnotify.Watcher

	mu sync.Mutex
	// progs maps a watched program file (absolute) to the components
	// that run it.
	progs map[string][]string
	dirs  map[string]bool
	done  chan struct{}
	wg    sync.WaitGroup
}

// startWatcher watches rl's file and pl's local programs until stop.
func startWatcher(ctx context.Context, rl *reloader, pl *spec.Pipeline, dir string) (*watcher, error) {
	if rl.path == "" {
		return nil, fmt.Errorf("--watch needs the pipeline in a file (not standard input)")
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("--watch: %w", err)
	}
	w := &watcher{rl: rl, fsw: fsw, dirs: map[string]bool{}, done: make(chan struct{})}
	if err := w.watch(pl, dir); err != nil {
		fsw.Close()
		return nil, err
	}
	w.wg.Add(1)
	go w.loop(ctx, dir)
	return w, nil
}

func (w *watcher) stop() {
	if w == nil {
		return
	}
	close(w.done)
	w.fsw.Close()
	w.wg.Wait()
}

// watch sets the watched files: the pipeline file and every local
// program of pl's components (their directories, in fact).
func (w *watcher) watch(pl *spec.Pipeline, dir string) error {
	progs := componentPrograms(pl, dir)
	want := map[string]bool{filepath.Dir(absPath(w.rl.path)): true}
	for f := range progs {
		want[filepath.Dir(f)] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.progs = progs
	for d := range want {
		if w.dirs[d] {
			continue
		}
		if err := w.fsw.Add(d); err != nil {
			return fmt.Errorf("--watch %s: %w", d, err)
		}
		w.dirs[d] = true
	}
	return nil
}

// componentPrograms maps each local file a component's command runs — the
// executable when it is a path, and every argument naming a file of the
// component's directory (a script) — to the components running it.
func componentPrograms(pl *spec.Pipeline, dir string) map[string][]string {
	out := map[string][]string{}
	for _, c := range pl.Components() {
		if c.Runner != spec.RunProcess || len(c.Command) == 0 {
			continue
		}
		base := dir
		if c.WorkingDir != "" {
			base = c.WorkingDir
			if !filepath.IsAbs(base) {
				base = filepath.Join(dir, base)
			}
		}
		for i, a := range c.Command {
			if i == 0 && !strings.ContainsRune(a, '/') && !strings.ContainsRune(a, filepath.Separator) {
				continue // found on PATH: an interpreter, not the user's program
			}
			if strings.HasPrefix(a, "-") {
				continue
			}
			p := a
			if !filepath.IsAbs(p) {
				p = filepath.Join(base, p)
			}
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				p = absPath(p)
				if !containsString(out[p], c.Name) {
					out[p] = append(out[p], c.Name)
				}
			}
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// loop collects changes and applies them after watchDebounce of quiet.
func (w *watcher) loop(ctx context.Context, dir string) {
	defer w.wg.Done()
	file := absPath(w.rl.path)
	var timer <-chan time.Time
	fileChanged := false
	restart := map[string]bool{}
	for {
		select {
		case <-w.done:
			return
		case <-ctx.Done():
			return
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.rl.log.Warn("--watch", "error", err)
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Rename) && !ev.Has(fsnotify.Chmod) {
				continue
			}
			name := absPath(ev.Name)
			w.mu.Lock()
			comps := w.progs[name]
			w.mu.Unlock()
			switch {
			case name == file:
				fileChanged = true
			case len(comps) > 0:
				for _, c := range comps {
					restart[c] = true
				}
			default:
				continue
			}
			timer = time.After(watchDebounce)
		case <-timer:
			timer = nil
			names := make([]string, 0, len(restart))
			for c := range restart {
				names = append(names, c)
			}
			sort.Strings(names)
			switch {
			case len(names) > 0:
				fmt.Fprintf(w.rl.g.stderr, "flowctl run: --watch: %s changed: restarting %s\n", w.changedWhat(names), strings.Join(names, ", "))
			case fileChanged:
				fmt.Fprintf(w.rl.g.stderr, "flowctl run: --watch: %s changed: applying it\n", w.rl.path)
			}
			pl := w.rl.reloadWith(ctx, names)
			if pl != nil {
				if err := w.watch(pl, dir); err != nil {
					w.rl.log.Warn("--watch", "error", err)
				}
				fmt.Fprintln(w.rl.g.stderr, "flowctl run: --watch: applied")
			}
			fileChanged = false
			clear(restart)
		}
	}
}

// changedWhat names the programs of the components restarted.
func (w *watcher) changedWhat(names []string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var files []string
	for f, comps := range w.progs {
		for _, c := range comps {
			if containsString(names, c) {
				files = append(files, filepath.Base(f))
				break
			}
		}
	}
	sort.Strings(files)
	return strings.Join(files, ", ")
}
