package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
)

// flowctl run --watch: the pipeline file and the local programs its
// components run are watched (fsnotify). A saved pipeline file is applied
// in place, as SIGHUP does (an invalid edit prints its FILE:LINE:COL errors
// and the running version goes on); a changed program (a rebuilt binary, an
// edited script) restarts only the components that run it, drained first.
// A component with `build:` is built again when one of its `watch:`
// sources changes, and restarted only when the build succeeds
// (run_watch_build.go). Directories are watched rather than files, because
// editors and compilers replace a file by renaming a new one over it.

// watchDebounce is how long the watcher waits for more changes after
// one, so that a save written in several steps is applied once.
const watchDebounce = 300 * time.Millisecond

// watcher drives reloads from file changes.
type watcher struct {
	rl  *reloader
	fsw *fsnotify.Watcher
	dir string // the pipeline's directory: builds run there, globs are read from there

	mu sync.Mutex
	// progs maps a watched program file (absolute) to the components
	// that run it.
	progs map[string][]string
	// prints is the version of each program last started, so that a
	// program that did not change since (its write events arriving after
	// a build already restarted it) restarts nothing.
	prints map[string]fingerprint
	// builds are the components' build commands and their sources.
	builds []buildTarget
	// running are the names of the running pipeline's components.
	running map[string]bool
	// deep are the directories whose new subdirectories are watched too
	// (a `**` glob, or one with several segments).
	deep map[string]bool
	dirs map[string]bool
	done chan struct{}
	wg   sync.WaitGroup
}

// maxWatchedDirs bounds the directories a `watch:` glob adds.
const maxWatchedDirs = 2000

// startWatcher watches rl's file and pl's local programs until stop.
func startWatcher(ctx context.Context, rl *reloader, pl *spec.Pipeline, dir string) (*watcher, error) {
	if rl.path == "" {
		return nil, fmt.Errorf("--watch needs the pipeline in a file (not standard input)")
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("--watch: %w", err)
	}
	w := &watcher{rl: rl, fsw: fsw, dir: absPath(dir), dirs: map[string]bool{}, deep: map[string]bool{},
		prints: map[string]fingerprint{}, done: make(chan struct{})}
	if err := w.watch(pl); err != nil {
		fsw.Close()
		return nil, err
	}
	w.wg.Add(1)
	go w.loop(ctx)
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

// watch sets the watched files: the pipeline file, every local program
// of pl's components and the sources of their builds (their directories,
// in fact).
func (w *watcher) watch(pl *spec.Pipeline) error {
	progs := componentPrograms(pl, w.dir)
	builds := componentBuilds(pl)
	// want maps each directory to whether it must be watched (the
	// pipeline's and the programs'), or only may (a glob's).
	want := map[string]bool{filepath.Dir(absPath(w.rl.path)): true}
	for f := range progs {
		want[filepath.Dir(f)] = true
	}
	deep := map[string]bool{}
	for _, t := range builds {
		for _, g := range t.globs {
			root, isDeep := spec.GlobRoot(filepath.ToSlash(g))
			if !filepath.IsAbs(root) {
				root = filepath.Join(w.dir, filepath.FromSlash(root))
			}
			if !isDeep {
				may(want, root)
				continue
			}
			deep[root] = true
			for _, d := range subdirs(root, maxWatchedDirs) {
				may(want, d)
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.progs, w.builds, w.deep = progs, builds, deep
	w.running = map[string]bool{}
	for _, c := range pl.Components() {
		w.running[c.Name] = true
	}
	for f := range progs {
		if _, ok := w.prints[f]; !ok {
			w.prints[f] = fingerprintOf(f)
		}
	}
	var errs []error
	for d, must := range want {
		if w.dirs[d] {
			continue
		}
		if err := w.fsw.Add(d); err != nil {
			if must {
				errs = append(errs, fmt.Errorf("--watch %s: %w", d, err))
			} else {
				// A glob's directory that does not exist yet is looked
				// for again after the next applied save of the file.
				w.rl.log.Warn("--watch: a directory of the watch: globs cannot be watched", "dir", d, "error", err)
			}
			continue
		}
		w.dirs[d] = true
	}
	return errors.Join(errs...)
}

// may adds d to the directories watched if it can be.
func may(want map[string]bool, d string) {
	if _, ok := want[d]; !ok {
		want[d] = false
	}
}

// subdirs lists root and the directories below it, at most max of them,
// leaving out hidden ones (.git and the like).
func subdirs(root string, max int) []string {
	var out []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if len(out) >= max {
			return filepath.SkipAll
		}
		out = append(out, p)
		return nil
	})
	return out
}

// underDeep reports whether the directory d is below a deep glob root.
func (w *watcher) underDeep(d string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for root := range w.deep {
		if rel, err := filepath.Rel(root, d); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// addDir watches a directory created below a deep glob root.
func (w *watcher) addDir(d string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dirs[d] || len(w.dirs) >= maxWatchedDirs {
		return
	}
	if err := w.fsw.Add(d); err == nil {
		w.dirs[d] = true
	}
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
		base := componentDir(c, dir)
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
func (w *watcher) loop(ctx context.Context) {
	defer w.wg.Done()
	file := absPath(w.rl.path)
	var timer <-chan time.Time
	fileChanged := false
	changedProgs := map[string]bool{}
	changedSrc := map[string][]string{} // component to build → its changed sources
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
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(name); err == nil && st.IsDir() && w.underDeep(name) {
					w.addDir(name)
				}
			}
			w.mu.Lock()
			_, isProg := w.progs[name]
			var built []string
			for _, t := range w.builds {
				if t.matches(w.dir, name) {
					built = append(built, t.name)
				}
			}
			w.mu.Unlock()
			switch {
			case name == file:
				fileChanged = true
			case isProg || len(built) > 0:
				if isProg {
					changedProgs[name] = true
				}
				for _, c := range built {
					if !containsString(changedSrc[c], name) {
						changedSrc[c] = append(changedSrc[c], name)
					}
				}
			default:
				continue
			}
			timer = time.After(watchDebounce)
		case <-timer:
			timer = nil
			w.apply(ctx, fileChanged, changedProgs, changedSrc)
			fileChanged = false
			clear(changedProgs)
			clear(changedSrc)
		}
	}
}

// apply makes one round of changes: the builds of changed sources first
// (a failed one keeps its component as it runs), then the restart of the
// components whose program changed or was rebuilt, together with the
// pipeline file when it was saved.
func (w *watcher) apply(ctx context.Context, fileChanged bool, changedProgs map[string]bool, changedSrc map[string][]string) {
	stderr := w.rl.g.stderr
	why := map[string][]string{} // component to restart → why
	var added []string           // components the file adds, built
	builds := map[string]buildTarget{}
	for _, c := range slices.Sorted(maps.Keys(changedSrc)) {
		if t, ok := w.build(c); ok {
			builds[c] = t
		}
	}
	// A round applies the file as it is on disk: a component it adds, or
	// whose build it changes, is built first (even in a round started by
	// a source), and a build that fails keeps the running version of
	// everything.
	for _, t := range w.newBuilds() {
		fmt.Fprintf(stderr, "flowctl run: --watch: %s has a new build for %s: %s\n", w.rl.path, t.name, strings.Join(t.cmd, " "))
		if err := runBuild(ctx, w.rl.g.componentOutput(), w.dir, t); err != nil {
			w.rl.log.Error("--watch: build failed; the run goes on unchanged", "component", t.name, "error", err)
			fmt.Fprintf(stderr, "flowctl run: --watch: %v; the run goes on unchanged\n", err)
			return
		}
		w.builtNow(t.name, changedProgs)
		delete(builds, t.name)
		if w.isRunning(t.name) {
			why[t.name] = append(why[t.name], t.name+" rebuilt")
		} else {
			added = append(added, t.name)
		}
	}
	for _, c := range slices.Sorted(maps.Keys(builds)) {
		t := builds[c]
		fmt.Fprintf(stderr, "flowctl run: --watch: %s changed: building %s: %s\n", w.relNames(changedSrc[c]), c, strings.Join(t.cmd, " "))
		if err := runBuild(ctx, w.rl.g.componentOutput(), w.dir, t); err != nil {
			w.rl.log.Error("--watch: build failed; the component goes on running its previous version", "component", c, "error", err)
			fmt.Fprintf(stderr, "flowctl run: --watch: %v; %s goes on running its previous version\n", err, c)
			continue
		}
		w.builtNow(c, changedProgs)
		why[c] = append(why[c], c+" rebuilt")
	}
	w.mu.Lock()
	for f := range changedProgs {
		fp := fingerprintOf(f)
		if fp == w.prints[f] {
			continue // already running this version
		}
		w.prints[f] = fp
		for _, c := range w.progs[f] {
			why[c] = append(why[c], filepath.Base(f)+" changed")
		}
	}
	w.mu.Unlock()
	names := slices.Sorted(maps.Keys(why))
	if len(names) == 0 && len(added) == 0 && !fileChanged {
		return
	}
	if len(names) > 0 {
		var what []string
		for _, c := range names {
			for _, x := range why[c] {
				if !containsString(what, x) {
					what = append(what, x)
				}
			}
		}
		sort.Strings(what)
		fmt.Fprintf(stderr, "flowctl run: --watch: %s: restarting %s\n", strings.Join(what, ", "), strings.Join(names, ", "))
	}
	switch {
	case len(added) > 0:
		fmt.Fprintf(stderr, "flowctl run: --watch: %s built: applying %s\n", strings.Join(added, ", "), w.rl.path)
	case fileChanged && len(names) == 0:
		fmt.Fprintf(stderr, "flowctl run: --watch: %s changed: applying it\n", w.rl.path)
	}
	pl := w.rl.reloadWith(ctx, names)
	if pl != nil {
		if err := w.watch(pl); err != nil {
			w.rl.log.Warn("--watch", "error", err)
		}
		fmt.Fprintln(stderr, "flowctl run: --watch: applied")
	}
}

// builtNow records the programs of component c as just built: they are
// started below, so their write events, still to come, are not a change of
// their own.
func (w *watcher) builtNow(c string, changedProgs map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for f, comps := range w.progs {
		if containsString(comps, c) {
			w.prints[f] = fingerprintOf(f)
			delete(changedProgs, f)
		}
	}
}

// newBuilds are the builds of the saved pipeline file that are not those
// of the running one (a new component, or a changed command). A file that
// does not validate has none: applying it reports its errors.
func (w *watcher) newBuilds() []buildTarget {
	pl, diags, err := spec.Load(w.rl.path, spec.Options{Registry: components.NewRegistry()})
	if err != nil || pl == nil || diags.HasErrors() {
		return nil
	}
	var out []buildTarget
	for _, t := range componentBuilds(pl) {
		if old, ok := w.build(t.name); !ok || !slices.Equal(old.cmd, t.cmd) {
			out = append(out, t)
		}
	}
	return out
}

// isRunning reports whether component c is in the running pipeline.
func (w *watcher) isRunning(c string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running[c]
}

// build finds the build of component c.
func (w *watcher) build(c string) (buildTarget, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.builds {
		if t.name == c {
			return t, true
		}
	}
	return buildTarget{}, false
}

// relNames writes files relative to the pipeline's directory.
func (w *watcher) relNames(files []string) string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		if rel, err := filepath.Rel(w.dir, f); err == nil {
			f = filepath.ToSlash(rel)
		}
		out = append(out, f)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
