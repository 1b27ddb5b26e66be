package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
)

// version is set at link time: -ldflags "-X github.com/flowctl/flowctl/internal/cli.version=v0.1.0".
var version = "dev"

func init() { register("version", newVersionCmd) }

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print flowctl's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rev := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
			}
			fmt.Fprintf(g.stdout, "flowctl %s (commit %s, %s, %s/%s)\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			fmt.Fprintln(g.stdout, optionalLine(components.OptionalParts()))
			return nil
		},
	}
}

// optionalLine says which optional parts (build tags) the binary has, and
// how to get them when it has none.
func optionalLine(parts []string) string {
	if len(parts) == 0 {
		return "optional: none (" + components.OptionalHint + ")"
	}
	return "optional: " + strings.Join(parts, ", ")
}
