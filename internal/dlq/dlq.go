package dlq

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// ErrNotFile means the pipeline's dead-letter sink does not write a file
// that can be read back.
var ErrNotFile = errors.New("the dead-letter sink is not a file")

// ErrNoDeadLetter means the pipeline declares no dead-letter sink.
var ErrNoDeadLetter = errors.New("the pipeline has no dead_letter sink")

// File returns the absolute path of p's dead-letter file, resolved like
// the file sink resolves it (against the pipeline file's directory).
func File(p *spec.Pipeline) (string, error) {
	dl := p.DeadLetter
	if dl == nil {
		return "", ErrNoDeadLetter
	}
	if dl.Runner != spec.RunBuiltin || dl.Type != "file" {
		what := dl.Type
		if dl.Runner != spec.RunBuiltin {
			what = string(dl.Runner)
		}
		return "", fmt.Errorf("%w: it is %s", ErrNotFile, what)
	}
	path, _ := dl.Config["path"].(string)
	if !filepath.IsAbs(path) && p.File != "" && p.File != "-" {
		path = filepath.Join(filepath.Dir(p.File), path)
	}
	return filepath.Abs(path)
}

// SourceName is the name of the hidden source that replays the dead
// letters of component: its checkpoint (where the replay got to in the
// dead-letter file) is kept under it. A colon cannot appear in a
// component's name, so it never clashes with one.
func SourceName(component string) string { return "dlq:" + component }

// Entry is one dead letter of the file.
type Entry struct {
	flow.DeadLetter
	// Line is its line number in the file (1-based); End the byte offset
	// just after it.
	Line int64
	End  int64
	// Replayed: a replay of its component acknowledged it.
	Replayed bool
}

// Read returns the dead letters of the file at path, in file order
// (oldest first), up to limit bytes (-1: all). A last line without a
// newline (a write that had not finished) is left out; skipped counts the
// lines that are no dead letter. A missing file holds none.
func Read(path string, limit int64) (entries []Entry, skipped int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var r io.Reader = f
	if limit >= 0 {
		r = io.LimitReader(f, limit)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var off, line int64
	for {
		b, err := br.ReadBytes('\n')
		if err == io.EOF {
			return entries, skipped, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", path, err)
		}
		off += int64(len(b))
		line++
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		d, err := flow.ParseDeadLetter(b)
		if err != nil {
			skipped++
			continue
		}
		entries = append(entries, Entry{DeadLetter: d, Line: line, End: off})
	}
}

// MarkReplayed sets Replayed on the entries that a replay committed in
// cp: those of component C that end at or before the offset the source
// SourceName(C) committed for path.
func MarkReplayed(entries []Entry, cp flow.Checkpoint, path string) {
	at := map[string]int64{}
	for i := range entries {
		c := entries[i].Component
		off, ok := at[c]
		if !ok {
			off = committedOffset(cp, c, path)
			at[c] = off
		}
		entries[i].Replayed = entries[i].End <= off
	}
}

func committedOffset(cp flow.Checkpoint, component, path string) int64 {
	v, ok := cp.Sources[SourceName(component)][path]
	if !ok {
		return 0
	}
	var p struct {
		Offset int64 `json:"offset"`
	}
	if json.Unmarshal(v, &p) != nil {
		return 0
	}
	return p.Offset
}

// Limit is how far a replay may read the dead-letter file: the length
// its sink committed in cp (what lies past it was written after the last
// checkpoint and the pipeline's next run writes it again), or -1 (all)
// when there is no checkpoint of it.
func Limit(p *spec.Pipeline, cp flow.Checkpoint, path string) int64 {
	if p.DeadLetter == nil {
		return -1
	}
	if sc, ok := cp.Sinks[p.DeadLetter.Name]; ok && sc.Key == path {
		return sc.Position
	}
	return -1
}

// Part is one component's dead letters going to one target.
type Part struct {
	From string // the component that failed them
	To   string // where they are re-injected
	N    int    // how many are to be replayed
}

// Pipeline builds the one-off pipeline of a replay from p: the original
// sources are left out; for each part a hidden source reads the
// dead-letter file at path (up to limit) and feeds the original events of
// From's dead letters to To; To and everything downstream of a target
// stay as they are, with inputs from what was left out removed. File
// sinks append (a replay never starts a file over, even when there is no
// checkpoint of it); with one they resume at its length as usual.
func Pipeline(p *spec.Pipeline, parts []Part, path string, limit int64) (*spec.Pipeline, error) {
	children := map[string][]string{}
	for _, c := range p.Components() {
		for _, in := range c.Inputs {
			children[in.From] = append(children[in.From], c.Name)
		}
	}
	keep := map[string]bool{}
	feeds := map[string][]string{}    // target → hidden sources
	asSource := map[string][]string{} // a source whose dead letters are replayed → hidden sources in its place
	var walk func(string)
	walk = func(name string) {
		if keep[name] {
			return
		}
		keep[name] = true
		for _, ch := range children[name] {
			walk(ch)
		}
	}
	for _, pt := range parts {
		c := p.Component(pt.To)
		switch {
		case c == nil || c == p.DeadLetter:
			return nil, fmt.Errorf("no processor or sink %q in pipeline %q", pt.To, p.Name)
		case c.Role == flow.RoleSource:
			// Events a source rejected (a malformed line) are sent
			// again from its place: to what it feeds.
			for _, ch := range children[pt.To] {
				walk(ch)
			}
			asSource[pt.To] = append(asSource[pt.To], SourceName(pt.From))
			continue
		}
		walk(pt.To)
		feeds[pt.To] = append(feeds[pt.To], SourceName(pt.From))
	}
	rp := *p
	rp.Sources, rp.Processors, rp.Sinks = nil, nil, nil
	for _, pt := range parts {
		rp.Sources = append(rp.Sources, &spec.Component{
			Name: SourceName(pt.From), Role: flow.RoleSource, Runner: spec.RunBuiltin,
			Type:        components.DeadLetterSourceType,
			Config:      flow.Config{"path": path, "component": pt.From, "until": int(limit)},
			Parallelism: 1, Ordered: true,
		})
	}
	for _, c := range p.Components() {
		if !keep[c.Name] {
			continue
		}
		cc := *c
		cc.Inputs = nil
		for _, in := range c.Inputs {
			if keep[in.From] {
				cc.Inputs = append(cc.Inputs, in)
			}
			for _, s := range asSource[in.From] {
				cc.Inputs = append(cc.Inputs, spec.Input{From: s, Types: in.Types})
			}
		}
		for _, s := range feeds[c.Name] {
			cc.Inputs = append(cc.Inputs, spec.Input{From: s})
		}
		appendOnly(&cc)
		switch cc.Role {
		case flow.RoleProcessor:
			rp.Processors = append(rp.Processors, &cc)
		case flow.RoleSink:
			rp.Sinks = append(rp.Sinks, &cc)
		}
	}
	if p.DeadLetter != nil {
		dl := *p.DeadLetter
		appendOnly(&dl)
		rp.DeadLetter = &dl
	}
	return &rp, nil
}

// appendOnly makes a built-in file sink append: its mode only matters
// when there is no checkpoint of it, and a replay must never empty a file
// the pipeline wrote.
func appendOnly(c *spec.Component) {
	if c.Role != flow.RoleSink || c.Runner != spec.RunBuiltin || c.Type != "file" {
		return
	}
	cfg := maps.Clone(c.Config)
	delete(cfg, "append")
	cfg["mode"] = "append"
	c.Config = cfg
}
