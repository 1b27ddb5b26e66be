package cli

import (
	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
)

func init() { register("schema", newSchemaCmd) }

func newSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the pipeline file",
		Long: `Prints a JSON Schema (draft 2020-12) of the pipeline file, flat form and flowctl/v1
envelope, with every built-in's config fields, generated from the same specs flowctl validates
with. Point an editor at it for completion and checks as you type, e.g. with the YAML language
server: "# yaml-language-server: $schema=pipeline.schema.json" as the file's first line.
The schema sees a file's shape; "flowctl validate" also checks the wiring and expressions.`,
		Example: `  flowctl schema > pipeline.schema.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := spec.Schema(components.NewRegistry())
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(out)
			return err
		},
	}
}
