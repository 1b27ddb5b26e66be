package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/translate"
)

func init() { register("translate", newTranslateCmd) }

func newTranslateCmd(g *globals) *cobra.Command {
	var (
		file, to, outDir, image string
		dockerfile, withTLS     bool
	)
	cmd := &cobra.Command{
		Use:   "translate -f FILE --to docker-compose|kubernetes|nomad [-o DIR]",
		Short: "Write the files a deployment engine needs to run a pipeline file",
		Long: `translate turns a pipeline file into what a deployment engine runs: a Docker
Compose file (docker-compose 1.29 or later) or a Kubernetes manifest (one multi-document
kubernetes.yaml for kubectl apply). Every service runs "flowctl node" on one component of
the same file, with flowctl's own image; the pipeline file is mounted into each one (for
Kubernetes from a ConfigMap). Whatever the target cannot express is a warning on standard
error with the field's FILE:LINE:COL; nothing is dropped silently.

Without -o the main file goes to standard output. With -o DIR it is written to
DIR/docker-compose.yml or DIR/kubernetes.yaml, with --dockerfile also a Dockerfile for
flowctl's image (FROM scratch), and with --tls a CA and a certificate per service in
DIR/tls. Kubernetes Secrets (the components' secrets, the certificates) are never written:
the warnings give the kubectl command that creates each. See docs/translate.md and
docs/kubernetes.md for what each field becomes.

--to nomad writes one Nomad job in the JSON form of Nomad's HTTP API (nomad job run -json
FILE takes it), DIR/<pipeline>.nomad.json with -o: a group per component, the pipeline file
carried inside the job. --tls is not supported for Nomad yet. See docs/nomad.md.`,
		Example: `  flowctl translate -f pipeline.yaml --to docker-compose -o deploy --dockerfile --tls
  flowctl translate -f pipeline.yaml --to docker-compose > docker-compose.yml
  flowctl translate -f pipeline.yaml --to kubernetes > kubernetes.yaml
  flowctl translate -f pipeline.yaml --to nomad > pipeline.nomad.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := fileArg(file, args)
			if err != nil {
				return err
			}
			if path == "-" {
				return errors.New("translate needs the pipeline file on disk, as it is mounted into every container: save it to a file and give -f FILE")
			}
			if to == "" {
				return fmt.Errorf("no target given: use --to %s", targetList())
			}
			if outDir == "" && (dockerfile || withTLS) {
				return errors.New("--dockerfile and --tls write files next to the Compose file: give -o DIR")
			}
			reg := components.NewRegistry()
			pl, diags, err := spec.Load(path, spec.Options{Registry: reg, Stdin: g.stdin})
			if err != nil {
				return err
			}
			for _, d := range diags {
				fmt.Fprintln(g.stderr, d.String())
			}
			if diags.HasErrors() {
				return &exitError{code: 1}
			}
			sourceDir, err := sourceDirFrom(outDir, path)
			if err != nil {
				return err
			}
			if image == "" {
				image = "flowctl:" + version
			}
			res, err := translate.Translate(pl, translate.Options{
				Target: translate.Target(to), Image: image, SourceDir: sourceDir,
				Registry: reg, Dockerfile: dockerfile, TLS: withTLS,
			})
			if err != nil {
				return err
			}
			for _, d := range res.Warnings {
				fmt.Fprintln(g.stderr, d.String())
			}
			if outDir == "" {
				_, err := g.stdout.Write(res.Main().Data)
				return err
			}
			if err := res.WriteDir(outDir); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "flowctl translate: wrote %s (%d files), %s\n",
				filepath.Join(outDir, res.Main().Name), len(res.Files), plural(len(res.Warnings), "warning"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "pipeline file to translate")
	f.StringVar(&to, "to", "", "target engine: "+targetList())
	f.StringVarP(&outDir, "output-dir", "o", "", "directory to write the files into (default: the Compose file or Kubernetes manifest to standard output)")
	f.StringVar(&image, "image", "", `flowctl's own image every service runs (default "flowctl:`+version+`")`)
	f.BoolVar(&dockerfile, "dockerfile", false, "also write a Dockerfile (FROM scratch) that builds flowctl's image")
	f.BoolVar(&withTLS, "tls", false, "generate a CA and a certificate per service and run the nodes over TLS (default: --insecure on the private network)")
	return cmd
}

func targetList() string {
	var names []string
	for _, t := range translate.Targets() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// sourceDirFrom is the pipeline file's directory as the output directory
// sees it (the current directory when the output goes to stdout), so the
// Compose file mounts the pipeline from where it is. It is relative when
// it can be, so the pair can be moved together.
func sourceDirFrom(outDir, pipeline string) (string, error) {
	if outDir == "" {
		outDir = "."
	}
	from, err := filepath.Abs(outDir)
	if err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(pipeline))
	if err != nil {
		return "", fmt.Errorf("pipeline directory: %w", err)
	}
	if rel, err := filepath.Rel(from, dir); err == nil {
		return filepath.ToSlash(rel), nil
	}
	if _, err := os.Stat(dir); err != nil {
		return "", err
	}
	return filepath.ToSlash(dir), nil
}
