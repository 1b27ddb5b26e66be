package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/componentref"
	"github.com/flowctl/flowctl/internal/components"
)

// newComponentsPullCmd is `flowctl components pull REF`.
func newComponentsPullCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pull REF",
		Short: "Pull a published component (NAME@VERSION) into the component cache",
		Long: `pull fetches the OCI image of a component reference — NAME@VERSION, ORG/NAME@VERSION
(ORG defaults to withobsrvr) or HOST/ORG/NAME:VERSION, optionally pinned with @sha256:… —
takes the binary at /component, /bin/component or /app/component and the metadata.json
beside it, verifies the image's digests, and installs them in the component cache,
replacing what was there. Pipelines name it as type: REF.

References without a host are pulled from $FLOWCTL_COMPONENT_REGISTRY [docker.io]; the
cache is $FLOWCTL_COMPONENT_CACHE [the user's cache directory/flowctl/components].
Registry credentials come from docker's configuration (docker login).`,
		Example: `  flowctl components pull stellar-live-source@v1.0.0
  flowctl components pull ghcr.io/acme/enrich:v2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := componentref.Parse(args[0])
			if err != nil {
				fmt.Fprintf(g.stderr, "flowctl components pull: %v — %s\n", err, componentref.RefHint)
				return &exitError{code: 2}
			}
			rs, err := newResolver(nil)
			if err != nil {
				fmt.Fprintf(g.stderr, "flowctl components pull: %v\n", err)
				return &exitError{code: 1}
			}
			in, err := rs.Pull(cmd.Context(), r)
			var ni *componentref.NotInstalledError
			if errors.As(err, &ni) {
				fmt.Fprintf(g.stderr, "flowctl components pull: cannot pull %s from %s: %s; where no registry is reachable, put the binary at %s\n",
					r, ni.Image, strings.Join(strings.Fields(fmt.Sprint(ni.Cause)), " "), ni.Binary)
				return &exitError{code: 1}
			}
			if err != nil {
				fmt.Fprintf(g.stderr, "flowctl components pull: %v\n", err)
				return &exitError{code: 1}
			}
			rec := in.Record
			fmt.Fprintf(g.stdout, "pulled %s from %s\n", r, rec.Image)
			fmt.Fprintf(g.stdout, "  image digest:  %s\n", rec.ImageDigest)
			fmt.Fprintf(g.stdout, "  binary:        %s (%s, %s)\n", rec.BinarySHA256, rec.BinaryInImage, byteSize(rec.Size))
			fmt.Fprintf(g.stdout, "  installed at:  %s\n", in.Binary)
			if in.Metadata != nil && in.Metadata.Role() != "" {
				fmt.Fprintf(g.stdout, "  metadata:      a %s", in.Metadata.Role())
				if e := in.Metadata.Emits(); len(e) > 0 {
					fmt.Fprintf(g.stdout, " emitting %v", e)
				}
				fmt.Fprintln(g.stdout)
			}
			return nil
		},
	}
}

// installedJSON is one entry of `components ls --installed -o json`.
type installedJSON struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	ImageDigest  string `json:"image_digest,omitempty"`
	BinarySHA256 string `json:"binary_sha256,omitempty"`
	Image        string `json:"image,omitempty"`
	Size         int64  `json:"size"`
	Path         string `json:"path"`
	Status       string `json:"status"`
	Error        string `json:"error,omitempty"`
}

// newComponentsLsCmd is `flowctl components ls [--installed]`.
func newComponentsLsCmd(g *globals) *cobra.Command {
	var installed bool
	var output string
	cmd := &cobra.Command{
		Use:   "ls [--installed]",
		Short: "List the built-in components, or with --installed the pulled ones",
		Long: `ls lists the built-in components (as "flowctl components" does). With --installed it lists
the published components in the component cache (and the earlier flowctl's
~/.flowctl/components): name, version, image digest, size, status and path. Status is ok
(the binary is what was pulled), changed (it is not: a run pulls it again), by-hand (put
there by hand, nothing to check it against) or the problem found.`,
		Example: `  flowctl components ls --installed
  flowctl components ls --installed -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				fmt.Fprintf(g.stderr, "flowctl components ls: -o %q: use text or json\n", output)
				return &exitError{code: 2}
			}
			if !installed {
				specs := components.NewRegistry().All()
				if output == "json" {
					return writeComponentsJSON(g.stdout, specs, false)
				}
				writeComponentList(g.stdout, specs)
				return nil
			}
			cache, err := componentref.DefaultCache()
			if err != nil {
				fmt.Fprintf(g.stderr, "flowctl components ls: %v\n", err)
				return &exitError{code: 1}
			}
			list, err := cache.List()
			if err != nil {
				fmt.Fprintf(g.stderr, "flowctl components ls: %v\n", err)
				return &exitError{code: 1}
			}
			entries := make([]installedJSON, 0, len(list))
			for _, l := range list {
				e := installedJSON{Name: l.Repository, Version: l.Version, Size: l.Size, Path: l.Binary, Status: "ok"}
				if l.Record != nil {
					e.ImageDigest, e.BinarySHA256, e.Image = l.Record.ImageDigest, l.Record.BinarySHA256, l.Record.Image
				} else {
					e.Status = "by-hand"
				}
				if l.Err != nil {
					e.Status, e.Error = "error", l.Err.Error()
					if _, ok := l.Err.(*componentref.CorruptError); ok {
						e.Status = "changed"
					}
				}
				entries = append(entries, e)
			}
			if output == "json" {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			writeInstalled(g.stdout, entries, cache)
			return nil
		},
	}
	cmd.Flags().BoolVar(&installed, "installed", false, "list the published components in the component cache")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func writeInstalled(w io.Writer, entries []installedJSON, cache *componentref.Cache) {
	if len(entries) == 0 {
		fmt.Fprintf(w, "No component is installed in %s; \"flowctl components pull NAME@VERSION\" installs one.\n", cache.Dir)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tDIGEST\tSIZE\tSTATUS\tPATH")
	for _, e := range entries {
		d := e.ImageDigest
		if len(d) > len("sha256:")+12 {
			d = d[:len("sha256:")+12]
		}
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Version, d, byteSize(e.Size), e.Status, e.Path)
	}
	tw.Flush()
}

// byteSize writes n bytes for people: 512 B, 12.3 MB.
func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
