package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/dlq"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/state"
)

func init() { register("dlq", newDLQCmd) }

// dlqOptions are the flags of dlq and its subcommands.
type dlqOptions struct {
	file      string
	stateDir  string
	component string
	to        string
	n         int
	output    string
	dryRun    bool
	grace     time.Duration
}

func newDLQCmd(g *globals) *cobra.Command {
	var o dlqOptions
	cmd := &cobra.Command{
		Use:   "dlq ls|show|replay -f FILE",
		Short: "List, show and replay the dead letters of a pipeline",
		Long: `dlq reads the dead-letter file of a pipeline (its dead_letter sink must be type: file):
every event a component gave up on, with the component, the error, the attempts and the
original event.

  ls      dead letters per failing component and per error, and how many were replayed
  show    the entries, oldest first (--component, -n, -o json)
  replay  re-inject the original events at the component that failed them (or --to NAME)

replay runs the same pipeline once, without its sources: a hidden source reads the
dead-letter file and feeds the target; everything downstream runs as usual, with the
pipeline's checkpoints (same --state-dir), so file sinks go on where the pipeline left them
and events that fail again are appended to the dead-letter file for a later replay. What
was replayed is committed once written, so nothing is replayed twice, also after a replay
that was killed. Fix the pipeline file first (the expression, the endpoint), then replay.

replay needs the pipeline stopped: it refuses while the pipeline runs (its state is
locked). Replaying through a running pipeline is not supported yet.`,
		Example: `  flowctl dlq ls -f pipeline.yaml
  flowctl dlq show -f pipeline.yaml --component usd -n 5
  flowctl dlq replay -f pipeline.yaml --dry-run
  flowctl dlq replay -f pipeline.yaml --component usd`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&o.file, "file", "f", "", "the pipeline file")
	pf.StringVar(&o.stateDir, "state-dir", "", "directory of the checkpoints, as given to flowctl run [$XDG_STATE_HOME/flowctl/checkpoints or ~/.local/state/flowctl/checkpoints]")

	ls := &cobra.Command{
		Use:   "ls -f FILE",
		Short: "Dead letters per failing component and per error, and how many were replayed",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return dlqList(g, o) },
	}
	show := &cobra.Command{
		Use:   "show -f FILE [--component C] [-n N] [-o json]",
		Short: "The dead letters, oldest first",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return dlqShow(g, o) },
	}
	show.Flags().StringVar(&o.component, "component", "", "only the dead letters of this component")
	show.Flags().IntVarP(&o.n, "number", "n", 0, "only the newest N (0: all)")
	show.Flags().StringVarP(&o.output, "output", "o", "text", "text or json")
	replay := &cobra.Command{
		Use:   "replay -f FILE [--component C] [--to NAME] [--dry-run]",
		Short: "Re-inject the original events of the dead letters not yet replayed (the pipeline must be stopped)",
		Long: `replay re-injects the original events of the dead letters not replayed yet at the
component that failed them (or --to NAME), in a one-off run of the same pipeline without its
sources and with its checkpoints: sinks go on where the pipeline left them, events that fail
again are appended to the dead-letter file, and what was replayed is committed once written,
so a second replay (or one after a replay was killed) replays nothing twice.

Stop the pipeline first: replay refuses while it runs (its state is locked). Replaying
through a running pipeline is not supported yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dlqReplay(cmd.Context(), g, o)
		},
	}
	replay.Flags().StringVar(&o.component, "component", "", "only the dead letters of this component")
	replay.Flags().StringVar(&o.to, "to", "", "re-inject at this processor or sink instead of the component that failed them")
	replay.Flags().BoolVar(&o.dryRun, "dry-run", false, "say what would be replayed where, and replay nothing")
	replay.Flags().DurationVar(&o.grace, "grace", engine.DefaultGrace, "how long a stopped replay may drain")
	cmd.AddCommand(ls, show, replay)
	return cmd
}

// dlqFile is a pipeline and its dead-letter file.
type dlqFile struct {
	pl   *spec.Pipeline
	reg  *flow.Registry
	name string // the pipeline's name, as its state is kept under
	path string // the dead-letter file, absolute
	root string // the state directory
}

// loadDLQ loads and validates the pipeline file and finds its dead-letter
// file.
func loadDLQ(g *globals, o dlqOptions, fail func(string, ...any) error) (*dlqFile, error) {
	if o.file == "" {
		return nil, fail("no pipeline file given: use -f FILE")
	}
	reg := components.NewRegistry()
	pl, diags, err := spec.Load(o.file, spec.Options{Registry: reg, Stdin: g.stdin})
	if err != nil {
		return nil, fail("%v", err)
	}
	if diags.HasErrors() || pl == nil {
		for _, d := range diags {
			fmt.Fprintln(g.stderr, d.String())
		}
		return nil, fail("%s does not validate; fix the errors above (flowctl validate -f %s checks it)", o.file, o.file)
	}
	d := &dlqFile{pl: pl, reg: reg, name: pl.Name}
	if d.name == "" {
		d.name = "pipeline"
	}
	d.path, err = dlq.File(pl)
	switch {
	case errors.Is(err, dlq.ErrNoDeadLetter):
		return nil, fail("pipeline %q has no dead_letter sink, so it keeps no dead letters — add one (dead_letter: {type: file, config: {path: failed.jsonl}})", d.name)
	case errors.Is(err, dlq.ErrNotFile):
		return nil, fail("pipeline %q: %v — flowctl dlq reads only a dead-letter file (dead_letter: {type: file, config: {path: failed.jsonl}})", d.name, err)
	case err != nil:
		return nil, fail("%v", err)
	}
	if d.root, err = stateRoot(o.stateDir); err != nil {
		return nil, fail("%v", err)
	}
	return d, nil
}

// checkpoint returns the pipeline's committed checkpoint without creating
// a state file; running is true when the pipeline holds its state.
func (d *dlqFile) checkpoint() (cp flow.Checkpoint, running bool, err error) {
	if _, err := os.Stat(filepath.Join(state.Dir(d.root, d.name), state.FileName)); err != nil {
		return flow.Checkpoint{}, false, nil
	}
	st, err := state.Open(d.root, d.name, stateProbeWait)
	if errors.Is(err, state.ErrInUse) {
		return flow.Checkpoint{}, true, nil
	}
	if err != nil {
		return flow.Checkpoint{}, false, err
	}
	defer st.Close()
	cp, err = st.Load()
	return cp, false, err
}

// entries reads the dead letters, marking those already replayed.
func (d *dlqFile) entries(gl *globals, cp flow.Checkpoint, limit int64, fail func(string, ...any) error) ([]dlq.Entry, error) {
	es, skipped, err := dlq.Read(d.path, limit)
	if err != nil {
		return nil, fail("%v", err)
	}
	if skipped > 0 {
		fmt.Fprintf(gl.stderr, "flowctl dlq: %s: skipped %s that hold no dead letter\n", d.path, plural(skipped, "line"))
	}
	dlq.MarkReplayed(es, cp, d.path)
	return es, nil
}

func dlqFail(g *globals) func(string, ...any) error {
	return func(format string, a ...any) error {
		fmt.Fprintf(g.stderr, "flowctl dlq: "+format+"\n", a...)
		return &exitError{code: 1}
	}
}

// dlqList is `flowctl dlq ls`.
func dlqList(gl *globals, o dlqOptions) error {
	fail := dlqFail(gl)
	d, err := loadDLQ(gl, o, fail)
	if err != nil {
		return err
	}
	cp, running, err := d.checkpoint()
	if err != nil {
		return fail("checkpoints of pipeline %q: %v", d.name, err)
	}
	es, err := d.entries(gl, cp, -1, fail)
	if err != nil {
		return err
	}
	if len(es) == 0 {
		fmt.Fprintf(gl.stdout, "no dead letters in %s\n", d.path)
		return nil
	}
	replayed := 0
	type errCount struct {
		err      string
		n, done  int
		firstIdx int
	}
	type comp struct {
		name    string
		n, done int
		errs    map[string]*errCount
	}
	var order []*comp
	byName := map[string]*comp{}
	for i, e := range es {
		c := byName[e.Component]
		if c == nil {
			c = &comp{name: e.Component, errs: map[string]*errCount{}}
			byName[e.Component] = c
			order = append(order, c)
		}
		ec := c.errs[e.Error]
		if ec == nil {
			ec = &errCount{err: e.Error, firstIdx: i}
			c.errs[e.Error] = ec
		}
		c.n++
		ec.n++
		if e.Replayed {
			c.done++
			ec.done++
			replayed++
		}
	}
	replayedCol := func(n int) string {
		if running {
			return "?"
		}
		return fmt.Sprint(n)
	}
	fmt.Fprintf(gl.stdout, "%s: %s", d.path, plural(len(es), "dead letter"))
	if running {
		fmt.Fprintf(gl.stdout, "; pipeline %q is running, so which were replayed is not known (its state is locked)\n", d.name)
	} else {
		fmt.Fprintf(gl.stdout, ", %d replayed, %d to replay\n", replayed, len(es)-replayed)
	}
	const topErrors = 3
	tw := tabwriter.NewWriter(gl.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tDEAD LETTERS\tREPLAYED\tERROR")
	for _, c := range order {
		errs := make([]*errCount, 0, len(c.errs))
		for _, ec := range c.errs {
			errs = append(errs, ec)
		}
		slices.SortFunc(errs, func(a, b *errCount) int {
			if a.n != b.n {
				return b.n - a.n
			}
			return a.firstIdx - b.firstIdx
		})
		first := "(all errors)"
		if len(errs) == 1 {
			first = clip(errs[0].err, 100)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.name, c.n, replayedCol(c.done), first)
		if len(errs) == 1 {
			continue
		}
		for i, ec := range errs {
			if i == topErrors {
				rest := 0
				for _, r := range errs[i:] {
					rest += r.n
				}
				fmt.Fprintf(tw, "\t%d\t\t(%d other errors)\n", rest, len(errs)-i)
				break
			}
			fmt.Fprintf(tw, "\t%d\t%s\t%s\n", ec.n, replayedCol(ec.done), clip(ec.err, 100))
		}
	}
	return tw.Flush()
}

// dlqShowEntry is one entry of `dlq show -o json`.
type dlqShowEntry struct {
	Line      int64                `json:"line"`
	Component string               `json:"component"`
	Error     string               `json:"error"`
	Attempts  int                  `json:"attempts"`
	Replayed  *bool                `json:"replayed,omitempty"`
	Event     flow.DeadLetterEvent `json:"event"`
}

// dlqShow is `flowctl dlq show`.
func dlqShow(gl *globals, o dlqOptions) error {
	fail := dlqFail(gl)
	if o.output != "text" && o.output != "json" {
		return fail("-o %q: use text or json", o.output)
	}
	d, err := loadDLQ(gl, o, fail)
	if err != nil {
		return err
	}
	cp, running, err := d.checkpoint()
	if err != nil {
		return fail("checkpoints of pipeline %q: %v", d.name, err)
	}
	es, err := d.entries(gl, cp, -1, fail)
	if err != nil {
		return err
	}
	if o.component != "" {
		es = slices.DeleteFunc(es, func(e dlq.Entry) bool { return e.Component != o.component })
	}
	if o.n > 0 && len(es) > o.n {
		es = es[len(es)-o.n:]
	}
	if o.output == "json" {
		out := make([]dlqShowEntry, 0, len(es))
		for _, e := range es {
			se := dlqShowEntry{Line: e.Line, Component: e.Component, Error: e.Error, Attempts: e.Attempts, Event: e.Event}
			if !running {
				r := e.Replayed
				se.Replayed = &r
			}
			out = append(out, se)
		}
		enc := json.NewEncoder(gl.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(es) == 0 {
		fmt.Fprintf(gl.stdout, "no dead letters in %s\n", d.path)
		return nil
	}
	tw := tabwriter.NewWriter(gl.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tCOMPONENT\tID\tTYPE\tATTEMPTS\tREPLAYED\tERROR\tDATA")
	for _, e := range es {
		replayed := "no"
		switch {
		case running:
			replayed = "?"
		case e.Replayed:
			replayed = "yes"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Line, e.Component, e.Event.ID, e.Event.Type,
			e.Attempts, replayed, clip(e.Error, 60), clip(string(e.Event.Data), 60))
	}
	return tw.Flush()
}

// dlqReplay is `flowctl dlq replay`.
func dlqReplay(ctx context.Context, gl *globals, o dlqOptions) error {
	fail := dlqFail(gl)
	if o.grace <= 0 {
		return fail("--grace %s: give a positive duration such as 10s", o.grace)
	}
	d, err := loadDLQ(gl, o, fail)
	if err != nil {
		return err
	}
	st, err := state.Open(d.root, d.name, stateLockWait)
	switch {
	case errors.Is(err, state.ErrInUse):
		return fail("pipeline %q is running (its state in %s is locked): stop it first — replaying through a running pipeline is not supported yet", d.name, state.Dir(d.root, d.name))
	case err != nil:
		return fail("checkpoints of pipeline %q: %v", d.name, err)
	}
	defer st.Close()
	cp, err := st.Load()
	if err != nil {
		return fail("checkpoints of pipeline %q: %v", d.name, err)
	}
	limit := dlq.Limit(d.pl, cp, d.path)
	es, err := d.entries(gl, cp, limit, fail)
	if err != nil {
		return err
	}
	var parts []dlq.Part
	at := map[string]int{}
	seen := false
	for _, e := range es {
		if o.component != "" && e.Component != o.component {
			continue
		}
		seen = true
		if e.Replayed {
			continue
		}
		i, ok := at[e.Component]
		if !ok {
			to := o.to
			if to == "" {
				to = e.Component
			}
			i = len(parts)
			at[e.Component] = i
			parts = append(parts, dlq.Part{From: e.Component, To: to})
		}
		parts[i].N++
	}
	switch {
	case o.component != "" && !seen:
		return fail("no dead letters of component %q in %s (flowctl dlq ls -f %s lists them)", o.component, d.path, o.file)
	case len(parts) == 0:
		fmt.Fprintf(gl.stdout, "nothing to replay: every dead letter in %s was replayed\n", d.path)
		return nil
	}
	for _, pt := range parts {
		if o.to == "" && d.pl.Component(pt.To) == nil {
			return fail("component %q, which failed %s, is no longer in %s: replay them elsewhere with --component %s --to NAME", pt.From, plural(pt.N, "dead letter"), o.file, pt.From)
		}
	}
	rp, err := dlq.Pipeline(d.pl, parts, d.path, limit)
	if err != nil {
		return fail("%v", err)
	}
	if o.dryRun {
		for _, pt := range parts {
			fmt.Fprintf(gl.stdout, "would replay %s of %q to %s\n", plural(pt.N, "event"), pt.From, pt.To)
		}
		fmt.Fprintf(gl.stdout, "components that would run: %s (dry run: nothing replayed)\n", strings.Join(replayNames(rp), ", "))
		return nil
	}
	if err := components.RegisterReplay(d.reg); err != nil {
		return fail("%v", err)
	}
	log, err := gl.logger()
	if err != nil {
		return err
	}
	eopts := engine.Options{Grace: o.grace, Logger: log, Checkpoints: st}
	if hasExternal(rp) {
		ext, err := external.NewManager(rp, external.ManagerOptions{Logger: log, Dir: filepath.Dir(d.pl.File), Output: gl.componentOutput()})
		if err != nil {
			return fail("%v", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), o.grace)
			defer cancel()
			_ = ext.Close(cctx)
		}()
		eopts.External = func(c *spec.Component, _ flow.BuildContext) (any, error) { return ext.Build(c) }
	}
	e, err := engine.New(rp, d.reg, eopts)
	if err != nil {
		return fail("%v", err)
	}
	runErr := e.Run(ctx)
	stats := e.Stats()
	printSummary(gl.stderr, d.name+" (dlq replay)", stats, runOutcome(ctx.Err() != nil, runErr))
	var failedAgain, dropped int64
	out := map[string]int64{}
	for _, c := range stats.Components {
		if c.Role == flow.RoleSource {
			out[c.Name] = c.Out
		}
		failedAgain += c.DeadLettered
		dropped += c.Dropped
	}
	for _, pt := range parts {
		n := out[dlq.SourceName(pt.From)]
		what := plural(pt.N, "event")
		if n != int64(pt.N) {
			what = fmt.Sprintf("%d of %s", n, what)
		}
		fmt.Fprintf(gl.stdout, "replayed %s of %q to %s\n", what, pt.From, pt.To)
	}
	if failedAgain > 0 {
		fmt.Fprintf(gl.stdout, "%d failed again (appended to %s; replay them once fixed)\n", failedAgain, d.path)
	} else {
		fmt.Fprintln(gl.stdout, "0 failed again")
	}
	if dropped > 0 {
		fmt.Fprintf(gl.stdout, "%d dropped (on_error: drop)\n", dropped)
	}
	if runErr != nil {
		return fail("replay of pipeline %q failed: %v; what was written is committed, run replay again to go on", d.name, runErr)
	}
	if ctx.Err() != nil {
		return fail("replay of pipeline %q stopped; what was written is committed, run replay again to go on", d.name)
	}
	return nil
}

// replayNames lists the components of a replay pipeline in file order.
func replayNames(p *spec.Pipeline) []string {
	var out []string
	for _, c := range p.Components() {
		out = append(out, c.Name)
	}
	if p.DeadLetter != nil {
		out = append(out, p.DeadLetter.Name)
	}
	return out
}
