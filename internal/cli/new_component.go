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

func init() { register("new", newNewCmd) }

// componentTemplates are the skeletons flowctl new component writes, one
// directory per language-protocol-role. {{NAME}} is replaced by the
// component's name; a trailing .tmpl is dropped (it keeps the Go tool from
// compiling the templates as part of flowctl).
//
//go:embed templates/component
var componentTemplates embed.FS

const componentRoot = "templates/component"

// componentLangs lists, per language, the protocols offered (the first is
// the default) and what builds and tests a skeleton.
var componentLangs = map[string]struct {
	protocols []string
	why       string
}{
	"go":     {[]string{"grpc", "stdio", "http"}, ""},
	"python": {[]string{"stdio", "http"}, "the gRPC protocol is offered through the Go SDK (--lang go); stdio and http work from any language"},
	"node":   {[]string{"stdio", "http"}, "the gRPC protocol is offered through the Go SDK (--lang go); stdio and http work from any language"},
}

// componentNameRE is what a component's name may be here: it names a
// directory, a Go module and a pipeline component.
var componentNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`) })

// newComponentOpts are the flags of flowctl new component.
type newComponentOpts struct {
	name, lang, role, protocol, dir, sdkPath string
	addTo, after, to                         string
}

func newNewCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "new",
		Short: "Write the skeleton of something new (a component)",
	}
	cmd.AddCommand(newNewComponentCmd(g))
	return cmd
}

func newNewComponentCmd(g *globals) *cobra.Command {
	var o newComponentOpts
	cmd := &cobra.Command{
		Use:   "component NAME --lang go|python|node --role source|processor|sink [--protocol grpc|stdio|http]",
		Short: "Write a component skeleton with its README and unit test, ready for flowctl component test",
		Long: `new component writes a working component into ./NAME (or --dir): its code, a unit test in its
language, and a README saying how to build it, test it, check it with flowctl component test,
and wire it into a pipeline. As written, its unit test and flowctl component test pass.

Offered (the first protocol of each language is its default):
  go      grpc (with the Go SDK, pkg/sdk), stdio, http (net/http)
  python  stdio, http (http.server); standard library only
  node    stdio, http (node's http module); no npm packages; node 18 or later
A source speaks grpc or stdio: flowctl's http protocol carries processors and sinks only.

It never overwrites a file. With --add-to FILE it also adds the component to that pipeline
file: a processor or sink reads from --after COMPONENT (and a processor takes the place of
COMPONENT as the input of whatever read from it); a source feeds --to COMPONENT. The edited
file is validated first and written only when valid.`,
		Example: `  flowctl new component enrich --lang python --role processor
  flowctl new component audit --lang go --role sink --sdk-path ~/src/flowctl
  flowctl new component enrich --lang node --role processor --add-to pipeline.yaml --after large`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("give the component's name: flowctl new component NAME --lang go|python|node --role source|processor|sink")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			return runNewComponent(g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.lang, "lang", "", "the component's language: go, python or node")
	f.StringVar(&o.role, "role", "", "the component's role: source, processor or sink")
	f.StringVar(&o.protocol, "protocol", "", "the protocol it speaks: grpc (go only), stdio or http [go: grpc; python, node: stdio]")
	f.StringVar(&o.dir, "dir", "", "the directory to write into [./NAME]")
	f.StringVar(&o.sdkPath, "sdk-path", "", "go grpc: a checkout of flowctl whose pkg/sdk the skeleton uses (written as a replace directive in go.mod)")
	f.StringVar(&o.addTo, "add-to", "", "a pipeline file to add the component to")
	f.StringVar(&o.after, "after", "", "with --add-to, processor or sink: the component it reads from")
	f.StringVar(&o.to, "to", "", "with --add-to, source: the component that reads from it")
	return cmd
}

// checkCombination validates lang, role and protocol, filling the default
// protocol, and returns the template directory.
func (o *newComponentOpts) checkCombination() (string, error) {
	langs := make([]string, 0, len(componentLangs))
	for l := range componentLangs {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	lang, ok := componentLangs[o.lang]
	if !ok {
		if o.lang == "" {
			return "", fmt.Errorf("give --lang: one of %s", strings.Join(langs, ", "))
		}
		return "", fmt.Errorf("--lang %q: use one of %s", o.lang, strings.Join(langs, ", "))
	}
	switch o.role {
	case "source", "processor", "sink":
	case "":
		return "", fmt.Errorf("give --role: source, processor or sink")
	default:
		return "", fmt.Errorf("--role %q: use source, processor or sink", o.role)
	}
	if o.protocol == "" {
		o.protocol = lang.protocols[0]
	}
	offered := false
	for _, p := range lang.protocols {
		offered = offered || p == o.protocol
	}
	if !offered {
		msg := fmt.Sprintf("--lang %s --protocol %s is not offered: %s components speak %s", o.lang, o.protocol, o.lang, strings.Join(lang.protocols, " or "))
		if o.protocol == "grpc" && lang.why != "" {
			msg += "; " + lang.why
		}
		return "", errors.New(msg)
	}
	if o.role == "source" && o.protocol == "http" {
		return "", fmt.Errorf("--role source --protocol http is not offered: flowctl's http protocol carries processors and sinks only; a source speaks stdio (any language) or grpc (go)")
	}
	return path.Join(componentRoot, o.lang+"-"+o.protocol+"-"+o.role), nil
}

// componentFile is one file new component writes.
type componentFile struct {
	rel  string
	data []byte
	mode fs.FileMode
}

func runNewComponent(g *globals, o newComponentOpts) error {
	if !componentNameRE().MatchString(o.name) {
		return fmt.Errorf("%q is not a component name here: start with a lower-case letter, then lower-case letters, digits, '-' or '_' (at most 63)", o.name)
	}
	root, err := o.checkCombination()
	if err != nil {
		return err
	}
	if o.addTo == "" && (o.after != "" || o.to != "") {
		return fmt.Errorf("--after and --to go with --add-to PIPELINE_FILE")
	}
	if o.sdkPath != "" && !(o.lang == "go" && o.protocol == "grpc") {
		return fmt.Errorf("--sdk-path is for --lang go --protocol grpc (the other skeletons use only their standard library)")
	}
	if o.dir == "" {
		o.dir = o.name
	}
	abs, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	var files []componentFile
	err = fs.WalkDir(componentTemplates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := componentTemplates.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		mode := fs.FileMode(0o644)
		if rel == "main.py" {
			mode = 0o755
		}
		files = append(files, componentFile{rel: rel, data: []byte(strings.ReplaceAll(string(b), "{{NAME}}", o.name)), mode: mode})
		return nil
	})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no template for %s (this is a bug in flowctl)", root)
	}
	if o.lang == "go" {
		gomod, err := componentGoMod(o, abs)
		if err != nil {
			return err
		}
		files = append(files,
			componentFile{rel: "go.mod", data: []byte(gomod), mode: 0o644},
			componentFile{rel: ".gitignore", data: []byte("/" + o.name + "\n/" + o.name + ".exe\n"), mode: 0o644})
	}
	files = append(files, componentFile{rel: "README.md", data: []byte(componentReadme(o)), mode: 0o644})

	// The pipeline edit is computed (and validated) before anything is
	// written, so that a refused edit leaves no skeleton behind either.
	var edit *pipelineEdit
	if o.addTo != "" {
		if edit, err = planAddToPipeline(o, abs); err != nil {
			return err
		}
	}

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
		return fmt.Errorf("%s already has %s: new component writes nothing over an existing file (use another --dir, or remove them)", o.dir, strings.Join(exist, ", "))
	}
	for _, f := range files {
		p := filepath.Join(abs, filepath.FromSlash(f.rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// O_EXCL: a file that appeared meanwhile is still not overwritten.
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
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
	fmt.Fprintf(g.stdout, "wrote %s %s %s %q in %s:\n", o.lang, o.protocol, o.role, o.name, o.dir)
	for _, f := range files {
		fmt.Fprintf(g.stdout, "  %s\n", f.rel)
	}
	if edit != nil {
		if err := edit.write(); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "added %q to %s: %s\n", o.name, o.addTo, edit.summary)
	}
	fmt.Fprintf(g.stdout, "next: see %s\n", filepath.Join(o.dir, "README.md"))
	return nil
}

// componentGoMod writes the skeleton's go.mod. Only the grpc skeleton needs
// a module beyond the standard library: flowctl's own, for pkg/sdk. It is
// not published on a module proxy, so it is required at v0.0.0 and
// replaced by a local checkout: --sdk-path when given, else a commented
// replace for the user to fill in.
func componentGoMod(o newComponentOpts, dir string) (string, error) {
	if o.protocol != "grpc" {
		return fmt.Sprintf("module %s\n\ngo 1.22\n", o.name), nil
	}
	const mod = "github.com/flowctl/flowctl"
	replace := "// flowctl's Go SDK (" + mod + "/pkg/sdk) is not published on a module proxy:\n" +
		"// point this replace at a checkout of flowctl (git clone it), uncomment it,\n" +
		"// then run go mod tidy.\n" +
		"// replace " + mod + " => ../flowctl\n"
	if o.sdkPath != "" {
		sdk, err := filepath.Abs(o.sdkPath)
		if err != nil {
			return "", err
		}
		b, err := os.ReadFile(filepath.Join(sdk, "go.mod"))
		if err != nil || !regexp.MustCompile(`(?m)^module `+regexp.QuoteMeta(mod)+`\s*$`).Match(b) {
			return "", fmt.Errorf("--sdk-path %s: not a checkout of flowctl (no go.mod with module %s there)", o.sdkPath, mod)
		}
		target := sdk
		if rel, err := filepath.Rel(dir, sdk); err == nil {
			target = filepath.ToSlash(rel)
			if !strings.HasPrefix(target, ".") {
				target = "./" + target
			}
		}
		replace = "// flowctl's Go SDK is not published on a module proxy: it comes from this checkout.\n" +
			"replace " + mod + " => " + target + "\n"
	}
	return fmt.Sprintf("module %s\n\ngo 1.26\n\nrequire %s v0.0.0\n\n%s", o.name, mod, replace), nil
}

// componentCommand is the command line that runs the skeleton, in its
// directory, as its README and --add-to write it.
func componentCommand(o newComponentOpts) []string {
	switch o.lang {
	case "python":
		return []string{"python3", "main.py"}
	case "node":
		return []string{"node", "main.js"}
	}
	return []string{"./" + o.name}
}

func componentReadme(o newComponentOpts) string {
	var b strings.Builder
	what := map[string]string{
		"processor": "adds `\"processed_by\": \"" + o.name + "\"` to each event's JSON payload (an event whose payload is not a JSON object fails, permanently)",
		"sink":      "appends each event's payload as a JSON line to the file named by `OUT_FILE` (set it with `env:` in the pipeline file), or writes it to stderr when `OUT_FILE` is unset; an event counts as delivered once written",
		"source":    "emits `COUNT` numbered events (`{\"n\": 1}`, `{\"n\": 2}`, …; default 1000), then ends",
	}[o.role]
	file := map[string]string{"go": "main.go", "python": "main.py", "node": "main.js"}[o.lang]
	logic := map[string]string{
		"go/processor": "`process`", "go/sink": "`write`", "go/source": "`event` (and `run`)",
		"python/processor": "`process`", "python/sink": "`write`", "python/source": "`event`",
		"node/processor": "`process`", "node/sink": "`write`", "node/source": "`event`",
	}[o.lang+"/"+o.role]
	proto := map[string]string{
		"grpc":  "flowctl's gRPC streams through the Go SDK, `github.com/flowctl/flowctl/pkg/sdk`; batches acknowledged end to end",
		"stdio": "JSON lines on stdin and stdout",
		"http":  "one HTTP POST per batch, on the address flowctl gives in `PORT`",
	}[o.protocol]
	fmt.Fprintf(&b, "# %s\n\nA flowctl %s in %s, speaking protocol `%s` (%s).\n\nIt %s.\nYour logic goes in %s in `%s`; the rest is the protocol.\n",
		o.name, o.role, map[string]string{"go": "Go", "python": "Python", "node": "Node.js"}[o.lang], o.protocol, proto, what, logic, file)

	b.WriteString("\n## Build and test\n\n```sh\n")
	switch o.lang {
	case "go":
		if o.protocol == "grpc" {
			if o.sdkPath == "" {
				b.WriteString("# first: in go.mod, point the replace line at a flowctl checkout and uncomment it\n")
			}
			b.WriteString("go mod tidy                 # fetches the SDK's dependencies\n")
		}
		fmt.Fprintf(&b, "go test ./...               # the unit test (main_test.go)\ngo build -o %s .   # the binary flowctl runs\n", o.name)
	case "python":
		b.WriteString("python3 -m unittest         # the unit test (test_main.py); standard library only\n")
	case "node":
		b.WriteString("node --test                 # the unit test (main.test.js); node 18 or later, no npm packages\n")
	}
	b.WriteString("```\n")
	if o.lang == "go" && o.protocol == "grpc" {
		b.WriteString("\nThe Go SDK lives in flowctl's own module, which is not published on a module proxy: go.mod\n" +
			"requires `github.com/flowctl/flowctl v0.0.0` and a `replace` directive points it at a local\n" +
			"checkout of flowctl (`--sdk-path` writes it; without it the line is commented out for you\n" +
			"to fill in). The SDK's own dependencies (gRPC, protobuf) come from the Go module proxy.\n")
	}

	cmdline := strings.Join(componentCommand(o), " ")
	b.WriteString("\n## Check it keeps flowctl's protocol\n\nFrom this directory (after building it, for Go):\n\n```sh\n")
	fmt.Fprintf(&b, "flowctl component test --protocol %s --role %s -- %s\n```\n\n", o.protocol, o.role, cmdline)
	b.WriteString("It starts the component as a pipeline would and checks start-up, answers, acknowledgements,\ndraining, restart and stop; exit status 0 means every check passed.\n")

	b.WriteString("\n## Use it in a pipeline\n\nAdd it to your pipeline file (paths are relative to the pipeline file's directory; here the\ncomponent sits in `" + o.name + "/` next to it):\n\n```yaml\n")
	b.WriteString(componentSnippet(o, o.name, "UPSTREAM"))
	b.WriteString("```\n\n")
	switch o.role {
	case "source":
		b.WriteString("and name `" + o.name + "` in the `inputs:` of the component that should read from it.\n")
	case "processor":
		b.WriteString("with `UPSTREAM` the component it reads from; then make whatever read from `UPSTREAM` read from\n`" + o.name + "` instead.\n")
	default:
		b.WriteString("with `UPSTREAM` the component it reads from.\n")
	}
	b.WriteString("`flowctl new component ... --add-to pipeline.yaml --after UPSTREAM` does this for you.\n")
	if o.lang == "go" {
		b.WriteString("Build the binary first: flowctl runs `" + cmdline + "`.\n")
	}
	b.WriteString("\nSee flowctl's docs/protocols.md for the protocol and docs/new-component.md for this skeleton.\n")
	return b.String()
}

// componentSnippet is the YAML of the component's entry, as a list item
// under its section, dir being its directory relative to the pipeline file.
func componentSnippet(o newComponentOpts, dir, upstream string) string {
	section := o.role + "s"
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n  - name: %s\n    command: [%s]\n    working_dir: %s\n    protocol: %s\n", section, o.name, strings.Join(componentCommand(o), ", "), dir, o.protocol)
	if o.role != "source" {
		fmt.Fprintf(&b, "    inputs: [%s]\n", upstream)
	}
	if o.role == "sink" {
		fmt.Fprintf(&b, "    env: {OUT_FILE: %s.jsonl}\n", o.name)
	}
	return b.String()
}
