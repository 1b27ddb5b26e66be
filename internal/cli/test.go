package cli

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/pipetest"
	"github.com/flowctl/flowctl/internal/spec"
)

func init() { register("test", newTestCmd) }

// exitTestUsage is the exit status of a usage or test file error.
const exitTestUsage = 2

func newTestCmd(g *globals) *cobra.Command {
	var (
		run     string
		verbose bool
		junit   string
		rec     recordOptions
	)
	cmd := &cobra.Command{
		Use:   "test [PATH...]",
		Short: "Run the pipeline tests (*_test.yaml files, tests: sections) and report like go test",
		Long: `test runs pipeline tests: YAML files named NAME_test.yaml next to the pipeline they test.
Each case gives events for the pipeline's sources and what each sink, and the dead-letter
sink, must be handed. The pipeline runs in this process with its real processors, external
ones included (started from the pipeline file's directory as "flowctl run" starts them);
the sources the case names emit its events instead of reading their input. The file, http
and sqlite sinks run for real, redirected into a temporary directory or to a capture server
on 127.0.0.1, and the expectations are checked against what they wrote; every other sink is
an in-memory capture (sinks: capture in a test file or case captures them all). See
docs/testing.md.

A pipeline file may also carry its cases itself, under a top-level tests: key.

A PATH is a test file, a pipeline file with a tests: section, or a directory searched
recursively for both (.git and .flowctl are skipped); none means the current directory.

--record COMPONENT -f FILE does not run tests: it attaches to the running pipeline of FILE
(started by "flowctl run" on this machine; it serves its taps on a private socket) and
writes the events leaving COMPONENT (--edge in: reaching it) as a JSON-lines fixture, one
event's data per line, which a case reads with inputs: {SOURCE: {file: FIXTURE}}.

Exit status: 0 when every case passed, 1 when one failed, 2 when a test file could not be
read or checked, or no test file was found.`,
		Example: `  flowctl test
  flowctl test examples/fanout-fanin_test.yaml -v
  flowctl test -run 'refund' --junit report.xml ./pipelines
  flowctl test --record enrich -f pipeline.yaml --limit 20 -o testdata/enriched.jsonl`,
		// Flags are parsed here so that go test's spelling (-run, -v,
		// -junit) works as well as --run.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			fs.AddFlagSet(cmd.InheritedFlags()) // --log-level, --log-format
			if err := fs.Parse(goStyleFlags(args)); err != nil {
				return cmd.FlagErrorFunc()(cmd, err)
			}
			if help, _ := fs.GetBool("help"); help {
				return cmd.Help()
			}
			if _, err := g.logger(); err != nil {
				return err
			}
			if rec.component != "" {
				if fs.NArg() > 0 {
					return fmt.Errorf("--record takes no PATH (got %s): name the pipeline file with -f", strings.Join(fs.Args(), " "))
				}
				return runRecord(cmd.Context(), g, rec)
			}
			for _, name := range []string{"file", "edge", "limit", "timeout", "output", "full", "socket"} {
				if fs.Changed(name) {
					fmt.Fprintf(g.stderr, "flowctl test: --%s goes with --record COMPONENT\n", name)
					return &exitError{code: exitTestUsage}
				}
			}
			return runTests(cmd.Context(), g, fs.Args(), run, verbose, junit)
		},
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		fmt.Fprintf(g.stderr, "flowctl test: %v\n", err)
		return &exitError{code: exitTestUsage}
	})
	f := cmd.Flags()
	f.StringVar(&run, "run", "", "run only the cases whose name matches this regular expression")
	f.BoolVarP(&verbose, "verbose", "v", false, "print every case as it runs and passes, with the components' output")
	f.StringVar(&junit, "junit", "", "also write the results as JUnit XML to this file")
	f.StringVar(&rec.component, "record", "", "record the events crossing this component of the running pipeline (-f) into a fixture, instead of running tests")
	f.StringVarP(&rec.file, "file", "f", "", "with --record: the pipeline file of the running pipeline")
	f.StringVar(&rec.edge, "edge", "", "with --record: out (what the component emits) or in (what it is handed) [out; a sink's in]")
	f.IntVar(&rec.limit, "limit", defaultRecordLimit, "with --record: stop after N events (0: at --timeout or an interrupt)")
	f.DurationVar(&rec.timeout, "timeout", defaultRecordTimeout, "with --record: stop after this long (0: no limit)")
	f.StringVarP(&rec.output, "output", "o", "", "with --record: write the fixture to this file [standard output]")
	f.BoolVar(&rec.full, "full", false, "with --record: write each event with its attributes ({id, type, source, metadata, data}), not its data only")
	f.StringVar(&rec.socket, "socket", "", "with --record: the socket of the run (as given to its --socket) [$XDG_STATE_HOME/flowctl/runs/NAME.sock]")
	return cmd
}

// goStyleFlags spells the long flags written with one dash as go test
// does (-run X, -junit=F) with two.
func goStyleFlags(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 {
			switch name {
			case "run", "junit", "verbose", "help", "log-level", "log-format",
				"record", "file", "edge", "limit", "timeout", "output", "full", "socket":
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

// runTests is the whole of `flowctl test`.
func runTests(ctx context.Context, g *globals, paths []string, run string, verbose bool, junit string) error {
	opts := pipetest.Options{Verbose: verbose, Output: g.stdout}
	if run != "" {
		re, err := regexp.Compile(run)
		if err != nil {
			fmt.Fprintf(g.stderr, "flowctl test: -run %q: %v\n", run, err)
			return &exitError{code: exitTestUsage}
		}
		opts.Run = re
	}
	// Components written as NAME@VERSION: resolved as flowctl run does.
	opts.Prepare = func(ctx context.Context, p *spec.Pipeline) error {
		return resolveComponentRefs(ctx, p, g.stderr, "flowctl test")
	}
	files, err := pipetest.Find(paths)
	if err != nil {
		fmt.Fprintf(g.stderr, "flowctl test: %v\n", err)
		return &exitError{code: exitTestUsage}
	}
	if len(files) == 0 {
		where := "."
		if len(paths) > 0 {
			where = fmt.Sprint(paths)
		}
		fmt.Fprintf(g.stderr, "flowctl test: no test files (*_test.yaml, or pipeline files with a tests: section) in %s\n", where)
		return &exitError{code: exitTestUsage}
	}
	rep := &pipetest.TextReporter{W: g.stdout, Verbose: verbose}
	var results []pipetest.FileResult
	code := 0
	for _, path := range files {
		r := pipetest.RunFile(ctx, path, opts, rep.Start, rep.Case)
		rep.File(r)
		results = append(results, r)
		switch {
		case r.Err != nil:
			code = exitTestUsage
		case r.Failed() && code == 0:
			code = 1
		}
		if ctx.Err() != nil {
			break
		}
	}
	if junit != "" {
		if err := writeJUnitFile(junit, results); err != nil {
			fmt.Fprintf(g.stderr, "flowctl test: --junit: %v\n", err)
			return &exitError{code: exitTestUsage}
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(g.stderr, "flowctl test: interrupted")
		return &exitError{code: 130}
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func writeJUnitFile(path string, results []pipetest.FileResult) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pipetest.WriteJUnit(f, results); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
