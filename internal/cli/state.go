package cli

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/state"
)

func init() { register("state", newStateCmd) }

func newStateCmd(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "state ls | show PIPELINE | reset PIPELINE",
		Short: "Show or reset the checkpoints flowctl run resumes from",
		Long: `Every pipeline that flowctl run ran keeps a checkpoint in --state-dir: where each source
that can be replayed (file, generate) got to, and how much of each file sink holds those
events. The next run resumes there.

  ls              the pipelines that have a checkpoint
  show PIPELINE   each source's position and each sink's committed length
  reset PIPELINE  forget it: the next run starts from the beginning (like run --from-start)

flowctl server keeps each pipeline's checkpoint in its data directory, under
pipelines/NAME/state; pass that as --state-dir.`,
		Example: `  flowctl state ls
  flowctl state show w1
  flowctl state reset w1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			fail := func(format string, a ...any) error {
				fmt.Fprintf(g.stderr, "flowctl state: "+format+"\n", a...)
				return &exitError{code: 1}
			}
			root, err := stateRoot(dir)
			if err != nil {
				return fail("%v", err)
			}
			verb := args[0]
			if verb == "ls" || verb == "list" {
				if len(args) != 1 {
					return fail("ls takes no pipeline name")
				}
				return stateList(g, root)
			}
			if verb != "show" && verb != "reset" {
				return fail("unknown %q: use ls, show PIPELINE or reset PIPELINE", verb)
			}
			if len(args) != 2 {
				return fail("%s needs the pipeline's name (flowctl state ls lists them)", verb)
			}
			name := args[1]
			if _, err := os.Stat(filepath.Join(state.Dir(root, name), state.FileName)); err != nil {
				return fail("pipeline %q has no checkpoint in %s (flowctl state ls lists those that do)", name, root)
			}
			st, err := state.Open(root, name, stateLockWait)
			if errors.Is(err, state.ErrInUse) {
				return fail("pipeline %q is running; stop it first (%v)", name, err)
			}
			if err != nil {
				return fail("%v", err)
			}
			defer st.Close()
			if verb == "reset" {
				if err := st.Reset(); err != nil {
					return fail("%v", err)
				}
				fmt.Fprintf(g.stdout, "pipeline %q: checkpoint reset; the next run starts from the beginning\n", name)
				return nil
			}
			return stateShow(g, st, name)
		},
	}
	cmd.Flags().StringVar(&dir, "state-dir", "", "directory of the checkpoints [$XDG_STATE_HOME/flowctl/checkpoints or ~/.local/state/flowctl/checkpoints]")
	return cmd
}

func stateList(g *globals, root string) error {
	names, err := state.List(root)
	if err != nil {
		fmt.Fprintf(g.stderr, "flowctl state: %v\n", err)
		return &exitError{code: 1}
	}
	if len(names) == 0 {
		fmt.Fprintf(g.stderr, "no checkpoints in %s\n", root)
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tUPDATED\tPATH")
	for _, n := range names {
		updated := "-"
		if st, err := state.Open(root, n, stateProbeWait); err == nil {
			if t := st.Updated(); !t.IsZero() {
				updated = t.Local().Format(time.DateTime)
			}
			st.Close()
		} else if errors.Is(err, state.ErrInUse) {
			updated = "running"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n, updated, state.Dir(root, n))
	}
	return tw.Flush()
}

func stateShow(g *globals, st *state.Store, name string) error {
	cp, err := st.Load()
	if err != nil {
		fmt.Fprintf(g.stderr, "flowctl state: %v\n", err)
		return &exitError{code: 1}
	}
	fmt.Fprintf(g.stdout, "pipeline %q (%s)\n", name, st.Path())
	if t := st.Updated(); !t.IsZero() {
		fmt.Fprintf(g.stdout, "committed %s\n", t.Local().Format(time.RFC3339))
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tROLE\tAT\tRAW")
	for _, src := range slices.Sorted(maps.Keys(cp.Sources)) {
		for _, key := range slices.Sorted(maps.Keys(cp.Sources[src])) {
			v := cp.Sources[src][key]
			fmt.Fprintf(tw, "%s\tsource\t%s\t%s\n", src, describePosition(key, v), v)
		}
	}
	for _, snk := range slices.Sorted(maps.Keys(cp.Sinks)) {
		sc := cp.Sinks[snk]
		fmt.Fprintf(tw, "%s\tsink\t%s bytes of %s\t\n", snk, thousands(sc.Position), sc.Key)
	}
	return tw.Flush()
}
