package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
)

func init() { register("validate", newValidateCmd) }

// validateReport is the `-o json` output of validate.
type validateReport struct {
	File        string            `json:"file"`
	Valid       bool              `json:"valid"`
	Components  int               `json:"components"`
	Errors      int               `json:"errors"`
	Warnings    int               `json:"warnings"`
	Diagnostics []spec.Diagnostic `json:"diagnostics"`
}

func newValidateCmd(g *globals) *cobra.Command {
	var file, output string
	cmd := &cobra.Command{
		Use:   "validate [-f FILE | FILE]",
		Short: "Check a pipeline file and report every problem with its line and column",
		Long: `validate reads a pipeline file (YAML or JSON, flat or flowctl/v1) and reports every
mistake at once as FILE:LINE:COL: message — hint, then a one-line summary. It exits 1
when there is any error; warnings alone leave it at 0. Use "-" to read standard input.`,
		Example: `  flowctl validate -f pipeline.yaml
  flowctl validate pipeline.yaml -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := fileArg(file, args)
			if err != nil {
				return err
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: use text or json", output)
			}
			pl, diags, err := spec.Load(path, spec.Options{Registry: components.NewRegistry(), Stdin: g.stdin})
			if err != nil {
				return err
			}
			name := path
			if path == "-" {
				name = spec.StdinName
			}
			diags = append(diags, refWarnings(pl, name)...)
			rep := validateReport{File: name, Valid: !diags.HasErrors(), Diagnostics: diags}
			if rep.Diagnostics == nil {
				rep.Diagnostics = []spec.Diagnostic{}
			}
			for _, d := range diags {
				if d.Severity == spec.SevError {
					rep.Errors++
				} else {
					rep.Warnings++
				}
			}
			if pl != nil {
				rep.Components = len(pl.Components())
				if pl.DeadLetter != nil {
					rep.Components++
				}
			}
			if output == "json" {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return fmt.Errorf("write report: %w", err)
				}
			} else {
				for _, d := range diags {
					fmt.Fprintln(g.stdout, d.String())
				}
				fmt.Fprintln(g.stdout, summary(rep))
			}
			if !rep.Valid {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", `pipeline file to check ("-" reads standard input)`)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// fileArg picks the pipeline file from -f or the one argument.
func fileArg(flag string, args []string) (string, error) {
	switch {
	case flag != "" && len(args) == 1 && args[0] != flag:
		return "", fmt.Errorf("two pipeline files given (-f %s and %s): give one", flag, args[0])
	case flag != "":
		return flag, nil
	case len(args) == 1:
		return args[0], nil
	}
	return "", fmt.Errorf("no pipeline file given: use -f FILE (or - for standard input)")
}

// summary is the last line of the text output.
func summary(r validateReport) string {
	if r.Valid {
		s := fmt.Sprintf("%s: valid (%s)", r.File, plural(r.Components, "component"))
		if r.Warnings > 0 {
			s += ", " + plural(r.Warnings, "warning")
		}
		return s
	}
	return fmt.Sprintf("%s: %s, %s", r.File, plural(r.Errors, "error"), plural(r.Warnings, "warning"))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
