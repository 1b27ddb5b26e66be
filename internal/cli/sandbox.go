package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/sandbox"
)

func init() { register("sandbox", newSandboxCmd) }

func newSandboxCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "sandbox up|down|status|logs [-f FILE]",
		Short: "A local development environment: the pipeline and the services it needs (PostgreSQL, local processes)",
		Long: `sandbox runs the services a sandbox file declares (services: PostgreSQL from the machine's
own installation, local processes, containers), each started once the ones it depends on are healthy,
and then the pipeline, with every service's address in its environment (${DB_URL},
${MOCK_PORT}, ...). Everything runs detached: up returns once all is healthy; status,
logs and down find it again through the sandbox directory, .flowctl/sandbox/NAME next to
the sandbox file, which also holds the services' data and the pipeline's checkpoints.
See docs/sandbox.md.`,
		Example: `  flowctl sandbox up
  flowctl sandbox status
  flowctl sandbox logs db --tail 50
  flowctl sandbox down --purge`,
	}
	cmd.PersistentFlags().StringVarP(&file, "file", "f", sandbox.DefaultFile, "the sandbox file")
	load := func() (*sandbox.File, error) { return sandbox.Load(file) }

	up := &cobra.Command{
		Use:   "up",
		Short: "Start the services in dependency order, health-gated, then the pipeline; print their variables",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := load()
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the flowctl binary to run the pipeline with: %w", err)
			}
			_, err = sandbox.Up(cmd.Context(), f, sandbox.Options{Exe: exe, Out: g.stderr})
			if errors.Is(err, sandbox.ErrAlreadyUp) {
				fmt.Fprintf(g.stdout, "sandbox %s is already up (flowctl sandbox down stops it)\n", f.Name)
				return sandboxStatus(cmd, g, f)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "sandbox %s is up\n", f.Name)
			return sandboxStatus(cmd, g, f)
		},
	}
	var purge bool
	down := &cobra.Command{
		Use:   "down [--purge]",
		Short: "Stop the pipeline, then the services in reverse order; keep their data unless --purge",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := load()
			if err != nil {
				return err
			}
			return sandbox.Down(f, purge, g.stdout)
		},
	}
	down.Flags().BoolVar(&purge, "purge", false, "also remove the sandbox directory: the services' data, the pipeline's checkpoints, the logs")
	status := &cobra.Command{
		Use:   "status",
		Short: "Check every service and the pipeline (exit 1 when one is down)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := load()
			if err != nil {
				return err
			}
			return sandboxStatus(cmd, g, f)
		},
	}
	var follow bool
	var tailN int
	logs := &cobra.Command{
		Use:   "logs [NAME] [--follow] [--tail N]",
		Short: `Print the log of a service or of the pipeline ("pipeline"), or of all`,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := load()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				p, err := sandbox.LogPath(f, args[0])
				if err != nil {
					return err
				}
				off, err := sandbox.Tail(g.stdout, p, tailN)
				if err != nil || !follow {
					return err
				}
				return sandbox.Follow(cmd.Context(), g.stdout, p, off)
			}
			if follow {
				return errors.New("--follow follows one log: name it (flowctl sandbox logs NAME --follow)")
			}
			names, err := sandbox.LogNames(f)
			if err != nil {
				return err
			}
			if len(names) == 0 {
				return fmt.Errorf("sandbox %s has no logs: start it with flowctl sandbox up", f.Name)
			}
			for _, n := range names {
				p, _ := sandbox.LogPath(f, n)
				fmt.Fprintf(g.stdout, "==> %s <==\n", n)
				if _, err := sandbox.Tail(g.stdout, p, tailN); err != nil {
					return err
				}
			}
			return nil
		},
	}
	logs.Flags().BoolVar(&follow, "follow", false, "keep printing what is written to the log (-f names the sandbox file)")
	logs.Flags().IntVar(&tailN, "tail", -1, "print only the last N lines [all]")
	container := &cobra.Command{
		Use:    "container SPEC",
		Short:  "Run one image service's container for the sandbox (started by up, stopped by down)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := sandbox.RunContainer(cmd.Context(), args[0], g.stdout)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.AddCommand(up, down, status, logs, container)
	return cmd
}

// sandboxStatus prints the status table and fails with exit code 1 when
// the sandbox is not up or something in it is down.
func sandboxStatus(cmd *cobra.Command, g *globals, f *sandbox.File) error {
	st, rows, err := sandbox.Status(cmd.Context(), f)
	if err != nil {
		return err
	}
	if st == nil {
		fmt.Fprintf(g.stdout, "sandbox %s is not up (flowctl sandbox up starts it)\n", f.Name)
		return &exitError{code: 1}
	}
	printSandboxRows(g.stdout, rows)
	fmt.Fprintf(g.stdout, "logs: flowctl sandbox logs NAME; directory: %s\n", f.StateDir())
	for _, r := range rows {
		if !r.OK {
			fmt.Fprintf(g.stderr, "flowctl sandbox: %s is %s\n", r.Name, r.State)
			return &exitError{code: 1}
		}
	}
	return nil
}

func printSandboxRows(w io.Writer, rows []sandbox.Row) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tADDRESS\tVARIABLES")
	for _, r := range rows {
		var vs []string
		for _, v := range r.Vars {
			vs = append(vs, v.Name+"="+v.Value)
		}
		if len(vs) == 0 {
			vs = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.State, r.Address, vs[0])
		for _, v := range vs[1:] {
			fmt.Fprintf(tw, "\t\t\t%s\n", v)
		}
	}
	tw.Flush()
}
