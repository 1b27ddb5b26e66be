package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// globals are the flags every subcommand shares.
type globals struct {
	logLevel  string
	logFormat string
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

// logger builds the slog logger the flags ask for; it writes to stderr.
func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", g.logFormat)
}

// exitError carries an exit code without printing anything more: the
// command already told the user what went wrong.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// newRoot builds the command tree: every command when only is "", else
// the root with that one command (see onlyCommand).
func newRoot(g *globals, only string) *cobra.Command {
	root := &cobra.Command{
		Use:   "flowctl",
		Short: "Run a declared event pipeline locally, keep it running, ship it",
		Long: `flowctl runs the event pipeline declared in one file (sources → processors → sinks):
locally in one process with "flowctl run", and, from the same file, elsewhere.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		_, err := g.logger()
		return err
	}
	for _, sc := range subcommands {
		if only == "" || sc.name == only {
			root.AddCommand(sc.build(g))
		}
	}
	return root
}

// subcommand is one top-level command: its name (the first word of its
// Use) and the function that builds it.
type subcommand struct {
	name  string
	build func(*globals) *cobra.Command
}

// subcommands is filled by each subcommand's file (init, through
// register), so adding one touches only its own file.
var subcommands []subcommand

// register adds a top-level command; name must be the first word of the
// command's Use (TestSubcommandNames checks).
func register(name string, build func(*globals) *cobra.Command) {
	subcommands = append(subcommands, subcommand{name: name, build: build})
}

// onlyCommand is the subcommand args name in their first word, or "" when
// the whole tree is needed: no arguments, a flag first (--help), "help",
// "completion", cobra's hidden completion commands or an unknown word
// (cobra's suggestions look at every command). Building just the one
// command keeps the others' constructors (and the pages of code they
// touch) off start-up: `flowctl run` builds only run's flags.
func onlyCommand(args []string) string {
	if len(args) == 0 {
		return ""
	}
	for _, sc := range subcommands {
		if sc.name == args[0] {
			return sc.name
		}
	}
	return ""
}

// Main runs flowctl with args and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(g, onlyCommand(args))
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(stderr, "flowctl: %v\n", err)
	return 1
}
