package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/spec"
)

func init() { register("graph", newGraphCmd) }

func newGraphCmd(g *globals) *cobra.Command {
	var file, format string
	cmd := &cobra.Command{
		Use:   "graph [-f] FILE",
		Short: "Print the pipeline's graph as Mermaid or Graphviz DOT text",
		Long: `Validates the pipeline file, then prints the graph its inputs declare: sources, processors
and sinks in different shapes, edges labelled with the event types they select, the dead-letter
sink dashed. Mermaid renders in GitHub and GitLab markdown; DOT renders with Graphviz.
An invalid file prints its diagnostics (as "flowctl validate" does) and exits 1.`,
		Example: `  flowctl graph -f pipeline.yaml
  flowctl graph -f pipeline.yaml --format dot | dot -Tsvg > pipeline.svg`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := graphFileArg(file, args)
			if err != nil {
				fmt.Fprintf(g.stderr, "flowctl graph: %v\n", err)
				return &exitError{code: 2}
			}
			var render func(*graph.Graph) string
			switch format {
			case "mermaid":
				render = graph.Mermaid
			case "dot":
				render = graph.DOT
			default:
				fmt.Fprintf(g.stderr, "flowctl graph: --format %q: use mermaid or dot\n", format)
				return &exitError{code: 2}
			}
			p, diags, err := spec.Load(path, spec.Options{Registry: components.NewRegistry(), Stdin: g.stdin})
			if err != nil {
				fmt.Fprintf(g.stderr, "flowctl graph: %v\n", err)
				return &exitError{code: 1}
			}
			graphPrintDiagnostics(g.stderr, diags)
			if diags.HasErrors() {
				return &exitError{code: 1}
			}
			gr, err := graph.Build(p)
			if err != nil {
				// spec validation reports these with positions first; this
				// is the last line of defence.
				fmt.Fprintf(g.stderr, "flowctl graph: %s: %v\n", path, err)
				return &exitError{code: 1}
			}
			_, err = io.WriteString(g.stdout, render(gr))
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the pipeline file (- reads standard input)")
	cmd.Flags().StringVar(&format, "format", "mermaid", "output format: mermaid or dot")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"mermaid", "dot"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// graphFileArg takes the pipeline file from -f or the one argument, not both.
func graphFileArg(flagValue string, args []string) (string, error) {
	switch {
	case flagValue != "" && len(args) > 0:
		return "", fmt.Errorf("give the pipeline file once: -f %s or %s, not both", flagValue, args[0])
	case flagValue != "":
		return flagValue, nil
	case len(args) == 1:
		return args[0], nil
	}
	return "", fmt.Errorf("which pipeline file? use -f FILE")
}

// graphPrintDiagnostics writes each diagnostic on its own line, errors and
// warnings alike, as `file:line:col: message — hint`.
func graphPrintDiagnostics(w io.Writer, diags spec.Diagnostics) {
	for _, d := range diags {
		fmt.Fprintln(w, d.String())
	}
}
