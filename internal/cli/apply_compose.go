package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/translate"
)

// `--target docker-compose` on apply, get and delete: the same pipeline
// file, run by the real docker-compose instead of the flowctl server.
// apply translates into a directory of its own per pipeline and runs
// `docker-compose up`; get and delete find the project by the labels
// docker-compose and translate put on every container, so they need
// neither the file nor the directory.

// targetServer is --target's default: the flowctl server.
const targetServer = "server"

// composeTarget reports whether --target names docker-compose, and
// refuses a target it does not know.
func composeTarget(target string) (bool, error) {
	switch target {
	case "", targetServer:
		return false, nil
	case string(translate.DockerCompose):
		return true, nil
	}
	return false, fmt.Errorf("--target %q: use %s (the flowctl server, the default), %s, %s or %s", target, targetServer, translate.DockerCompose, translate.Kubernetes, translate.Nomad)
}

// composeProject is the docker-compose project name of a pipeline:
// docker-compose 1.29 keeps only [a-z0-9_-] of a lower-cased name, so we
// do the same, and say so when nothing is left.
func composeProject(pipeline string) (string, error) {
	var b strings.Builder
	for _, r := range strings.ToLower(pipeline) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("pipeline %q has no letter or digit docker-compose can take as a project name: rename it", pipeline)
	}
	return b.String(), nil
}

// composeResolvedFile is the pipeline file apply mounts: the file with
// ${VAR} substituted here, as apply does for the server.
const composeResolvedFile = "pipeline.resolved.yaml"

// composeCommand runs docker-compose (bounded by ctx), its output to w.
func composeCommand(ctx context.Context, w io.Writer, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "docker-compose", args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return errors.New("docker-compose is not installed (or not on PATH): --target docker-compose runs it")
		}
		return fmt.Errorf("docker-compose %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// runApplyCompose is `flowctl apply --target docker-compose`.
func runApplyCompose(ctx context.Context, g *globals, o applyOptions) error {
	if len(o.files) == 0 {
		return errors.New("no pipeline file given: use -f FILE or -f DIR")
	}
	paths, err := expandApplyPaths(o.files)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if p == "-" {
			return errors.New("--target docker-compose needs the pipeline file on disk (its directory is mounted into the containers): save it to a file and give -f FILE")
		}
	}
	if o.out != "" && len(paths) > 1 {
		return errors.New("--out names the directory of one pipeline: apply one file with it, or leave it out (each pipeline then gets <its dir>/.flowctl/compose/<name>)")
	}
	files, ok, err := loadApplyFiles(g, paths)
	if err != nil {
		return err
	}
	if !ok {
		return &exitError{code: 1}
	}
	image := o.image
	if image == "" {
		image = "flowctl:" + version
	}
	if !o.dryRun {
		if out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", image).CombinedOutput(); err != nil {
			return fmt.Errorf("image %s is not on this machine (%s): build it first — flowctl translate -f FILE --to docker-compose -o DIR --dockerfile writes its Dockerfile — or name yours with --image", image, firstLineOf(out, err))
		}
	}
	for _, f := range files {
		project, err := composeProject(f.pl.Name)
		if err != nil {
			return err
		}
		dir := o.out
		if dir == "" {
			dir = filepath.Join(f.dir, ".flowctl", "compose", project)
		}
		dir, err = filepath.Abs(dir)
		if err != nil {
			return err
		}
		sourceDir, err := sourceDirFrom(dir, f.path)
		if err != nil {
			return err
		}
		reg := components.NewRegistry()
		res, err := translate.Translate(f.pl, translate.Options{
			Target: translate.DockerCompose, Image: image, SourceDir: sourceDir,
			PipelineFile: "./" + composeResolvedFile, Registry: reg, TLS: o.tls,
		})
		if err != nil {
			return err
		}
		for _, d := range res.Warnings {
			fmt.Fprintln(g.stderr, d.String())
		}
		want := append([]translate.File{{Name: composeResolvedFile, Data: f.data}}, res.Files...)
		want = keepExistingCerts(dir, want)
		_, applied := os.Stat(filepath.Join(dir, composeResolvedFile))
		changed := diffFiles(g.stdout, dir, want)
		// The services mount the pipeline file: a change in it alone
		// leaves the Compose file as it was, and docker-compose up would
		// keep the containers that read the old one.
		recreate := applied == nil && fileChanged(dir, composeResolvedFile, f.data)
		if o.dryRun {
			if changed == 0 {
				fmt.Fprintf(g.stdout, "pipeline/%s: unchanged in %s (dry run)\n", f.pl.Name, dir)
			} else {
				fmt.Fprintf(g.stdout, "pipeline/%s: %s would change in %s (dry run: nothing written, nothing started)\n", f.pl.Name, plural(changed, "file"), dir)
			}
			continue
		}
		out := &translate.Result{Files: want}
		if err := out.WriteDir(dir); err != nil {
			return err
		}
		args := []string{"-p", project, "-f", translate.ComposeFile, "up", "-d", "--remove-orphans"}
		if recreate {
			args = append(args, "--force-recreate")
		}
		if err := composeCommand(ctx, g.stderr, dir, args...); err != nil {
			return fmt.Errorf("pipeline/%s: %w (the translation is in %s)", f.pl.Name, err, dir)
		}
		fmt.Fprintf(g.stdout, "pipeline/%s applied to docker-compose: project %s, %s\n", f.pl.Name, project, filepath.Join(dir, translate.ComposeFile))
	}
	return nil
}

// fileChanged reports whether dir/name differs from data.
func fileChanged(dir, name string, data []byte) bool {
	old, err := os.ReadFile(filepath.Join(dir, name))
	return err != nil || !bytes.Equal(old, data)
}

func firstLineOf(out []byte, err error) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if s == "" {
		return err.Error()
	}
	return s
}

// keepExistingCerts drops generated certificates whose files already
// exist in dir: the nodes keep the CA they trust, and applying the same
// file again changes nothing.
func keepExistingCerts(dir string, files []translate.File) []translate.File {
	var certs []translate.File
	out := files[:0:0]
	for _, f := range files {
		if strings.HasPrefix(f.Name, "tls/") {
			certs = append(certs, f)
			continue
		}
		out = append(out, f)
	}
	for _, f := range certs {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.Name))); err != nil {
			return append(out, certs...) // one missing: issue them all again
		}
	}
	return out
}

// diffFiles prints, per file that differs from what dir holds, a line
// diff (keys are left out, only their names said), and returns how many
// differ.
func diffFiles(w io.Writer, dir string, files []translate.File) int {
	changed := 0
	for _, f := range files {
		old, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		if err == nil && bytes.Equal(old, f.Data) {
			continue
		}
		changed++
		switch {
		case err != nil:
			fmt.Fprintf(w, "+++ %s (new)\n", f.Name)
		default:
			fmt.Fprintf(w, "--- %s (applied)\n+++ %s (now)\n", f.Name, f.Name)
		}
		if strings.HasSuffix(f.Name, ".key") || strings.HasPrefix(f.Name, "tls/") {
			fmt.Fprintln(w, "  (certificate material, not shown)")
			continue
		}
		writeLineDiff(w, splitLines(string(old)), splitLines(string(f.Data)))
	}
	return changed
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// writeLineDiff writes the lines only in a as "-", only in b as "+"
// (longest common subsequence; translated files are small).
func writeLineDiff(w io.Writer, a, b []string) {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(w, "+ %s\n", b[j])
			j++
		default:
			fmt.Fprintf(w, "- %s\n", a[i])
			i++
		}
	}
}

// composeContainer is one container of a translated pipeline, as docker
// ps labels it.
type composeContainer struct {
	project, pipeline, service, state, status, configFiles, workDir string
}

// composeContainers lists the containers translate made (label
// flowctl.pipeline) of every project, or of one.
func composeContainers(ctx context.Context, project string) ([]composeContainer, error) {
	args := []string{"ps", "-a", "--filter", "label=flowctl.pipeline", "--format",
		`{{.Label "com.docker.compose.project"}}	{{.Label "flowctl.pipeline"}}	{{.Label "com.docker.compose.service"}}	{{.State}}	{{.Status}}	{{.Label "com.docker.compose.project.config_files"}}	{{.Label "com.docker.compose.project.working_dir"}}`}
	if project != "" {
		args = append(args, "--filter", "label=com.docker.compose.project="+project)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, "docker", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("docker ps: %v: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("docker ps: %w", err)
	}
	var cs []composeContainer
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 7 || f[0] == "" {
			continue
		}
		cs = append(cs, composeContainer{project: f[0], pipeline: f[1], service: f[2], state: f[3], status: f[4], configFiles: f[5], workDir: f[6]})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].project != cs[j].project {
			return cs[i].project < cs[j].project
		}
		return cs[i].service < cs[j].service
	})
	return cs, nil
}

// getComposePipelines is `flowctl get pipelines --target docker-compose`:
// per project, its services by state.
func getComposePipelines(ctx context.Context, g *globals, name string, wide bool) error {
	project := ""
	if name != "" {
		var err error
		if project, err = composeProject(name); err != nil {
			return err
		}
	}
	cs, err := composeContainers(ctx, project)
	if err != nil {
		return err
	}
	if name != "" && len(cs) == 0 {
		return fmt.Errorf("pipeline/%s: no containers of docker-compose project %s (apply it with --target docker-compose)", name, project)
	}
	type row struct {
		pipeline, project        string
		total, running, exited0  int
		failed, other            int
		configFiles, workingDirs string
	}
	var rows []*row
	by := map[string]*row{}
	for _, c := range cs {
		r := by[c.project]
		if r == nil {
			r = &row{pipeline: c.pipeline, project: c.project, configFiles: c.configFiles, workingDirs: c.workDir}
			by[c.project] = r
			rows = append(rows, r)
		}
		r.total++
		switch {
		case c.state == "running":
			r.running++
		case c.state == "exited" && strings.HasPrefix(c.status, "Exited (0)"):
			r.exited0++
		case c.state == "exited":
			r.failed++
		default:
			r.other++
		}
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	head := "NAME\tPROJECT\tPHASE\tRUNNING\tCOMPLETED\tFAILED\tSERVICES"
	if wide {
		head += "\tCOMPOSE-FILE"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		phase := "Running"
		switch {
		case r.failed > 0:
			phase = "Failed"
		case r.running == 0 && r.other == 0 && r.exited0 == r.total:
			phase = "Completed"
		case r.running < r.total:
			phase = "Partial"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%d/%d\t%d\t%d\t%d", r.pipeline, r.project, phase, r.running, r.total, r.exited0, r.failed, r.total)
		if wide {
			line += "\t" + r.configFiles
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// deleteCompose is `flowctl delete pipeline NAME --target docker-compose`:
// docker-compose down on the file the project was started from (its
// containers' labels say which); named volumes (checkpoints) stay unless
// volumes is set.
func deleteCompose(ctx context.Context, g *globals, name string, volumes bool) error {
	project, err := composeProject(name)
	if err != nil {
		return err
	}
	cs, err := composeContainers(ctx, project)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		return fmt.Errorf("pipeline/%s: no containers of docker-compose project %s: nothing to delete", name, project)
	}
	args := []string{"-p", project}
	for _, f := range strings.Split(cs[0].configFiles, ",") {
		if f = strings.TrimSpace(f); f != "" {
			if !filepath.IsAbs(f) && cs[0].workDir != "" {
				f = filepath.Join(cs[0].workDir, f)
			}
			args = append(args, "-f", f)
		}
	}
	if len(args) == 2 {
		return fmt.Errorf("pipeline/%s: the containers of project %s do not say which Compose file started them: run docker-compose -p %s down in its directory", name, project, project)
	}
	args = append(args, "down", "--remove-orphans")
	if volumes {
		args = append(args, "--volumes")
	}
	if err := composeCommand(ctx, g.stderr, cs[0].workDir, args...); err != nil {
		return fmt.Errorf("pipeline/%s: %w", name, err)
	}
	kept := " (named volumes kept: pass --volumes to remove the checkpoints too)"
	if volumes {
		kept = " (with its volumes)"
	}
	fmt.Fprintf(g.stdout, "pipeline/%s deleted from docker-compose: project %s down%s\n", name, project, kept)
	return nil
}
