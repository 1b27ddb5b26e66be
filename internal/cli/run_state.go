package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/state"
)

// stateLockWait is how long a run waits for another process to release
// the pipeline's state before saying it is in use.
const stateLockWait = time.Second

// stateProbeWait is how long a command that only looks at a pipeline's
// state waits for its lock before taking the pipeline as running. It is
// never 0: to bbolt, a zero timeout means waiting for ever.
const stateProbeWait = 50 * time.Millisecond

// stateRoot is --state-dir or the default.
func stateRoot(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	return state.DefaultRoot()
}

// openRunState opens the pipeline's checkpoint store, resets it for
// --from-start, and says in one line where the run resumes.
func openRunState(g *globals, o runOptions, pl *spec.Pipeline) (*state.Store, error) {
	fail := func(format string, a ...any) (*state.Store, error) {
		fmt.Fprintf(g.stderr, "flowctl run: "+format+"\n", a...)
		return nil, &exitError{code: 1}
	}
	name := pl.Name
	if name == "" {
		name = "pipeline"
	}
	root, err := stateRoot(o.stateDir)
	if err != nil {
		return fail("%v", err)
	}
	st, err := state.Open(root, name, stateLockWait)
	switch {
	case errors.Is(err, state.ErrInUse):
		return fail("pipeline %q is already running from this state directory (%v); stop it first, or give this run another --state-dir", name, err)
	case err != nil:
		return fail("checkpoints of pipeline %q: %v", name, err)
	}
	if o.fromStart {
		if err := st.Reset(); err != nil {
			st.Close()
			return fail("--from-start: %v", err)
		}
		fmt.Fprintf(g.stderr, "flowctl run: starting %q from the beginning (checkpoint in %s reset)\n", name, filepath.Dir(st.Path()))
		return st, nil
	}
	cp, err := st.Load()
	if err != nil {
		st.Close()
		return fail("checkpoints of pipeline %q: %v", name, err)
	}
	// Positions of sources the file does not have (a dlq replay's hidden
	// sources, a source since removed) are not where this run resumes.
	for src := range cp.Sources {
		if pl.Component(src) == nil {
			delete(cp.Sources, src)
		}
	}
	if where := describeCheckpoint(cp); where != "" {
		fmt.Fprintf(g.stderr, "flowctl run: resuming %q from %s (checkpoint in %s; --from-start starts over)\n", name, where, filepath.Dir(st.Path()))
	} else {
		fmt.Fprintf(g.stderr, "flowctl run: checkpoints of %q in %s\n", name, filepath.Dir(st.Path()))
	}
	return st, nil
}

// describeCheckpoint says where each source resumes, e.g.
// `ledger events.jsonl:4,718,336`; "" when no source has a position.
func describeCheckpoint(cp flow.Checkpoint) string {
	var parts []string
	for _, src := range slices.Sorted(maps.Keys(cp.Sources)) {
		var at []string
		for _, key := range slices.Sorted(maps.Keys(cp.Sources[src])) {
			at = append(at, describePosition(key, cp.Sources[src][key]))
		}
		if len(at) > 0 {
			parts = append(parts, src+" "+strings.Join(at, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// describePosition renders one source position for people: a file's
// line, a generator's next event, else the raw value.
func describePosition(key string, v []byte) string {
	var p struct {
		Line   *int64 `json:"line"`
		Offset *int64 `json:"offset"`
		Next   *int64 `json:"next"`
	}
	if err := json.Unmarshal(v, &p); err == nil {
		switch {
		case p.Line != nil:
			return fmt.Sprintf("%s:%s", filepath.Base(key), thousands(*p.Line))
		case p.Next != nil:
			return "event " + thousands(*p.Next)
		}
	}
	if key == "" {
		return string(v)
	}
	return key + "=" + string(v)
}

// thousands writes n with commas: 4718336 → 4,718,336.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// printReplayed says, after a resumed run, how many replayed events each
// checkpointing sink already held from the run before (not written twice,
// or written again in place of what was cut).
func printReplayed(w io.Writer, replayed map[string]int64) {
	for _, name := range slices.Sorted(maps.Keys(replayed)) {
		fmt.Fprintf(w, "sink %q: %s events sent again after the checkpoint were already written by the run before (kept once)\n", name, thousands(replayed[name]))
	}
}
