package cli

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"
)

func init() { register("init", newInitCmd) }

// initTemplates are the projects flowctl init writes: a pipeline file,
// sample data and a pipeline test per template. {{NAME}} is replaced by
// the project's name.
//
//go:embed templates/init
var initTemplates embed.FS

const initRoot = "templates/init"

// initTemplateNames lists the templates, sorted.
func initTemplateNames() []string {
	entries, _ := initTemplates.ReadDir(initRoot)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// initTemplateText says what each template holds, for help and README.
var initTemplateText = map[string]string{
	"linear":         "a file source, a filter, a map and a file sink",
	"fanout":         "one source into two branches merged by one sink, with a dead-letter sink",
	"http-to-sqlite": "events POSTed over HTTP, reshaped and stored in SQLite",
	"stellar":        "Stellar ledgers into token transfers (a Python stdio processor) stored in SQLite",
}

// pipelineNameRE is what a pipeline name may be.
var pipelineNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`) })

func newInitCmd(g *globals) *cobra.Command {
	var template, name string
	cmd := &cobra.Command{
		Use:   "init [DIR] [--template linear|fanout|http-to-sqlite|stellar]",
		Short: "Start a pipeline project: a pipeline file, sample data and a pipeline test",
		Long: `init writes a working project into DIR (default: the current directory): pipeline.yaml,
its sample data, pipeline_test.yaml (flowctl test), a README with the commands to run, test
and watch it, and a .gitignore for its output and state. flowctl run and flowctl test pass on
it as written. It never overwrites a file: when one of them exists, init writes nothing and
says which.

Templates:
` + templateList(),
		Example: `  flowctl init payments && cd payments && flowctl test && flowctl run -f pipeline.yaml
  flowctl init --template fanout`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return runInit(g, dir, template, name)
		},
	}
	cmd.Flags().StringVar(&template, "template", "linear", "the project to start from: "+strings.Join(initTemplateNames(), ", "))
	cmd.Flags().StringVar(&name, "name", "", "the pipeline's name [DIR's name]")
	return cmd
}

func templateList() string {
	var b strings.Builder
	for _, n := range initTemplateNames() {
		fmt.Fprintf(&b, "  %-15s %s\n", n, initTemplateText[n])
	}
	return b.String()
}

// initFile is one file init writes.
type initFile struct {
	rel  string
	data []byte
}

func runInit(g *globals, dir, template, name string) error {
	root := path.Join(initRoot, template)
	if _, err := fs.Stat(initTemplates, root); err != nil {
		return fmt.Errorf("--template %q: use one of %s", template, strings.Join(initTemplateNames(), ", "))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if name == "" {
		name = strings.ToLower(filepath.Base(abs))
		name = regexp.MustCompile(`[^a-z0-9._-]+`).ReplaceAllString(name, "-")
		name = strings.Trim(name, "-._")
	}
	if !pipelineNameRE().MatchString(name) {
		return fmt.Errorf("%q is not a pipeline name (lower-case letters, digits, '.', '_', '-'; at most 63): give --name", name)
	}
	var files []initFile
	err = fs.WalkDir(initTemplates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := initTemplates.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		files = append(files, initFile{rel: rel, data: []byte(strings.ReplaceAll(string(b), "{{NAME}}", name))})
		return nil
	})
	if err != nil {
		return err
	}
	files = append(files,
		initFile{rel: "README.md", data: []byte(initReadme(name, template))},
		initFile{rel: ".gitignore", data: []byte("# flowctl run's output and state\nout/\n.flowctl/\n")},
	)
	// Nothing is overwritten: check every file first, write after.
	var exist []string
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(abs, filepath.FromSlash(f.rel))); err == nil {
			exist = append(exist, f.rel)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if len(exist) > 0 {
		return fmt.Errorf("%s already has %s: init writes nothing over an existing file (use another directory, or remove them)", dir, strings.Join(exist, ", "))
	}
	for _, f := range files {
		p := filepath.Join(abs, filepath.FromSlash(f.rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// O_EXCL: a file that appeared meanwhile is still not overwritten.
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := fh.Write(f.data); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.stdout, "wrote pipeline %q (%s) in %s:\n", name, template, dir)
	for _, f := range files {
		fmt.Fprintf(g.stdout, "  %s\n", f.rel)
	}
	cd := ""
	if dir != "." {
		cd = "cd " + dir + " && "
	}
	fmt.Fprintf(g.stdout, "next: %sflowctl test && flowctl run -f pipeline.yaml\n", cd)
	return nil
}

func initReadme(name, template string) string {
	run := "flowctl run -f pipeline.yaml"
	extra := ""
	switch template {
	case "http-to-sqlite":
		extra = "\nIt listens on 127.0.0.1:8080 until Ctrl-C; send it events from another terminal:\n\n" +
			"```sh\ncurl -d '{\"id\": 1, \"kind\": \"payment\", \"amount\": 7400}' http://127.0.0.1:8080/\n```\n"
	case "stellar":
		extra = "\nThe token-transfer step is token_transfer.py (python3, standard library only), run by\n" +
			"flowctl over the stdio protocol; with --watch, saving it restarts that step alone. What moved:\n\n" +
			"```sh\nsqlite3 out/transfers.db 'SELECT event_type, count(*), sum(amount_stroops) FROM token_transfers GROUP BY 1'\n```\n"
	}
	return fmt.Sprintf(`# %s

%s (flowctl template %q).

`+"```sh"+`
%-45s # run it
flowctl test                                  # run pipeline_test.yaml
flowctl run -f pipeline.yaml --watch          # run it, applying every save of pipeline.yaml in place
`+"```"+`
%s
- pipeline.yaml: the pipeline (flowctl validate -f pipeline.yaml checks it, flowctl graph -f
  pipeline.yaml draws it).
- pipeline_test.yaml: its tests: input events for the sources, what each sink must get.
- Output goes to out/ (ignored by git).
`, name, strings.ToUpper(initTemplateText[template][:1])+initTemplateText[template][1:], template, run, extra)
}
