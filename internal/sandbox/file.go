package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/spec"
)

// DefaultFile is the sandbox file read when none is named.
const DefaultFile = "sandbox.yaml"

// DefaultHealthTimeout is how long a service may take to become healthy.
const DefaultHealthTimeout = 30 * time.Second

// Kind is what runs a service.
type Kind string

// Kinds of services.
const (
	KindPostgres Kind = "postgres" // the machine's PostgreSQL server, initialised in the sandbox
	KindCommand  Kind = "command"  // a local process
	KindImage    Kind = "image"    // a container through the docker driver, on the host's network
)

// File is a parsed sandbox file.
type File struct {
	Path     string     // absolute path of the file
	Dir      string     // its directory: commands run there, paths are relative to it
	Name     string     // the sandbox's name [the directory's name]
	Pipeline string     // absolute path of the pipeline file, or ""
	Services []*Service // in the order of the file
}

// Service is one entry of services:.
type Service struct {
	Name      string
	Kind      Kind
	Line, Col int
	DependsOn []string
	Env       map[string]string
	Port      int // fixed port, or 0 for a free one
	Health    Health

	Command  []string // KindCommand; for KindImage, replaces the image's entrypoint
	Image    string   // KindImage
	Database string   // KindPostgres [the service's name]
	User     string   // KindPostgres [postgres]
}

// Health is how a service is known to be ready.
type Health struct {
	HTTP    string   // GET this path on the service's port answers 2xx
	TCP     bool     // the service's port accepts a connection
	Command []string // exits 0
	Timeout time.Duration
}

// dirOf is the sandbox directory of f: .flowctl/sandbox/NAME next to it.
func (f *File) dirOf() string { return filepath.Join(f.Dir, ".flowctl", "sandbox", f.Name) }

// StateDir is where the sandbox keeps its state, logs and data.
func (f *File) StateDir() string { return f.dirOf() }

var (
	serviceNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`) })
	sandboxNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`) })
	identRE       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`) })
	yamlLineRE    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`line (\d+)`) })
)

// Load reads and validates the sandbox file at path. Every problem is
// reported at once, as `file:line:col: what — how to fix it`.
func Load(path string) (*File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("sandbox file %s does not exist: write one (see docs/sandbox.md) or name it with -f FILE", path)
		}
		return nil, err
	}
	return Parse(abs, path, data)
}

// Parse parses data, the contents of the file at abs; diagnostics name
// the file as display.
func Parse(abs, display string, data []byte) (*File, error) {
	p := &parser{file: display}
	f := &File{Path: abs, Dir: filepath.Dir(abs)}
	p.parse(f, data)
	sort.SliceStable(p.diags, func(i, j int) bool {
		a, b := p.diags[i], p.diags[j]
		return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
	})
	if p.diags.HasErrors() {
		return nil, p.diags.Err()
	}
	return f, nil
}

type parser struct {
	file  string
	diags spec.Diagnostics
}

func (p *parser) errorf(n *yaml.Node, hint, format string, a ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.diags = append(p.diags, spec.Diagnostic{File: p.file, Line: line, Col: col, Severity: spec.SevError, Message: fmt.Sprintf(format, a...), Hint: hint})
}

// fields walks the keys of a mapping, reporting keys not in known.
func (p *parser) fields(n *yaml.Node, what string, known []string, each func(key string, k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "write it as a mapping (key: value)", "%s must be a mapping", what)
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.errorf(k, "remove one of them", "%s: %q is given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		ok := false
		for _, c := range known {
			ok = ok || c == k.Value
		}
		if !ok {
			p.errorf(k, "known keys: "+strings.Join(known, ", "), "%s: unknown key %q", what, k.Value)
			continue
		}
		each(k.Value, k, v)
	}
}

func (p *parser) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "write a single value", "%s must be a string", what)
		return ""
	}
	return n.Value
}

func (p *parser) strs(n *yaml.Node, what string) []string {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "write a list, e.g. [a, b]", "%s must be a list of strings", what)
		return nil
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, p.str(c, what))
	}
	return out
}

func (p *parser) parse(f *File, data []byte) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 1
		msg := err.Error()
		if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
			fmt.Sscan(m[1], &line)
		}
		p.diags = append(p.diags, spec.Diagnostic{File: p.file, Line: line, Col: 1, Severity: spec.SevError, Message: "not valid YAML: " + strings.TrimPrefix(msg, "yaml: "), Hint: "fix the syntax (indentation, quotes, colons)"})
		return
	}
	if len(doc.Content) == 0 {
		p.errorf(nil, "declare at least services: (see docs/sandbox.md)", "the sandbox file is empty")
		return
	}
	root := doc.Content[0]
	var servicesNode *yaml.Node
	p.fields(root, "sandbox file", []string{"name", "pipeline", "services"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			f.Name = p.str(v, "name")
			if f.Name != "" && !sandboxNameRE().MatchString(f.Name) {
				p.errorf(v, "use lower-case letters, digits, '.', '_' and '-' (at most 63)", "name %q is not a sandbox name", f.Name)
			}
		case "pipeline":
			if s := p.str(v, "pipeline"); s != "" {
				f.Pipeline = s
				if !filepath.IsAbs(s) {
					f.Pipeline = filepath.Join(f.Dir, s)
				}
				if _, err := os.Stat(f.Pipeline); err != nil {
					p.errorf(v, "give the pipeline file's path, relative to the sandbox file", "pipeline %s does not exist", s)
				}
			}
		case "services":
			servicesNode = v
		}
	})
	if root.Kind != yaml.MappingNode {
		return
	}
	if f.Name == "" {
		n := strings.ToLower(filepath.Base(f.Dir))
		n = regexp.MustCompile(`[^a-z0-9._-]+`).ReplaceAllString(n, "-")
		f.Name = strings.Trim(n, "-._")
		if !sandboxNameRE().MatchString(f.Name) {
			p.errorf(root, "give the sandbox a name: name: my-sandbox", "the directory's name %q is not a sandbox name", filepath.Base(f.Dir))
		}
	}
	if servicesNode == nil {
		if f.Pipeline == "" {
			p.errorf(root, "declare services: and/or pipeline: (see docs/sandbox.md)", "the sandbox declares neither services nor a pipeline")
		}
		return
	}
	if servicesNode.Kind != yaml.MappingNode {
		p.errorf(servicesNode, "write services as a mapping of name to service, e.g. services: {db: {postgres: {}}}", "services must be a mapping")
		return
	}
	for i := 0; i+1 < len(servicesNode.Content); i += 2 {
		k, v := servicesNode.Content[i], servicesNode.Content[i+1]
		s := p.service(k, v)
		if s == nil {
			continue
		}
		for _, o := range f.Services {
			if o.Name == s.Name {
				p.errorf(k, "rename one of them", "service %q is declared twice", s.Name)
			}
		}
		f.Services = append(f.Services, s)
	}
	names := map[string]bool{}
	for _, s := range f.Services {
		names[s.Name] = true
	}
	for _, s := range f.Services {
		for _, d := range s.DependsOn {
			if !names[d] {
				p.errorf(&yaml.Node{Line: s.Line, Column: s.Col}, "depends_on names services of this file: "+strings.Join(sortedKeys(names), ", "), "service %q depends on %q, which is not declared", s.Name, d)
			}
		}
	}
	if p.diags.HasErrors() {
		return
	}
	if _, err := Order(f.Services); err != nil {
		p.errorf(servicesNode, "remove one depends_on of the cycle", "%v", err)
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var serviceKeys = []string{"postgres", "command", "image", "health", "env", "depends_on", "port"}

func (p *parser) service(k, v *yaml.Node) *Service {
	s := &Service{Name: k.Value, Line: k.Line, Col: k.Column, Env: map[string]string{}}
	if !serviceNameRE().MatchString(s.Name) {
		p.errorf(k, "use lower-case letters, digits, '_' and '-', starting with a letter", "%q is not a service name", s.Name)
	}
	if s.Name == "pipeline" {
		p.errorf(k, "name the service otherwise", "%q is reserved for the sandbox's pipeline (its logs are `flowctl sandbox logs pipeline`)", s.Name)
	}
	what := "service " + s.Name
	var kinds []string
	p.fields(v, what, serviceKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "postgres":
			kinds = append(kinds, key)
			s.Kind = KindPostgres
			if v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "true") {
				break
			}
			p.fields(v, what+": postgres", []string{"database", "user"}, func(key string, k, v *yaml.Node) {
				val := p.str(v, key)
				if val != "" && !identRE().MatchString(val) {
					p.errorf(v, "use letters, digits and '_', starting with a letter", "%s: postgres %s %q is not a plain SQL name", what, key, val)
				}
				if key == "database" {
					s.Database = val
				} else {
					s.User = val
				}
			})
		case "command":
			kinds = append(kinds, key)
			if s.Kind == "" {
				s.Kind = KindCommand
			}
			s.Command = p.strs(v, what+": command")
			if v.Kind == yaml.SequenceNode && len(s.Command) == 0 {
				p.errorf(v, "give the program and its arguments, e.g. [python3, app.py]", "%s: command is empty", what)
			}
		case "image":
			kinds = append(kinds, key)
			s.Kind = KindImage
			s.Image = p.str(v, what+": image")
		case "health":
			p.health(s, v, what)
		case "env":
			if v.Kind != yaml.MappingNode {
				p.errorf(v, "write env as a mapping, e.g. env: {KEY: value}", "%s: env must be a mapping", what)
				break
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				s.Env[v.Content[i].Value] = p.str(v.Content[i+1], what+": env "+v.Content[i].Value)
			}
		case "depends_on":
			s.DependsOn = p.strs(v, what+": depends_on")
		case "port":
			if err := v.Decode(&s.Port); err != nil || s.Port < 1 || s.Port > 65535 {
				p.errorf(v, "give a TCP port between 1 and 65535, or leave it out for a free one", "%s: port %q is not a port", what, v.Value)
			}
		}
	})
	if v.Kind != yaml.MappingNode {
		return nil
	}
	if slices.Contains(kinds, "image") {
		// Next to image:, command: replaces the image's entrypoint.
		kinds = slices.DeleteFunc(kinds, func(k string) bool { return k == "command" })
	}
	switch len(kinds) {
	case 0:
		p.errorf(k, "give one of postgres: {database: NAME}, command: [PROGRAM, ARGS...] or image: IMAGE", "%s: says nothing to run", what)
	case 1:
	default:
		p.errorf(k, "keep one of them", "%s: gives %s; a service is one of them", what, strings.Join(kinds, " and "))
	}
	if s.Kind == KindPostgres {
		if s.Database == "" {
			s.Database = strings.ReplaceAll(s.Name, "-", "_")
		}
		if s.User == "" {
			s.User = "postgres"
		}
		if s.Health.HTTP != "" || s.Health.TCP || len(s.Health.Command) > 0 {
			p.errorf(k, "leave health: out, or give only timeout:", "%s: a postgres service's health is a real connection (pg_isready); it takes no other check", what)
		}
	}
	if s.Health.Timeout == 0 {
		s.Health.Timeout = DefaultHealthTimeout
	}
	if (s.Kind == KindCommand || s.Kind == KindImage) && s.Health.HTTP == "" && len(s.Health.Command) == 0 {
		s.Health.TCP = true // a service is ready when its port accepts connections
	}
	return s
}

func (p *parser) health(s *Service, v *yaml.Node, what string) {
	n := 0
	p.fields(v, what+": health", []string{"http", "tcp", "command", "timeout"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "http":
			n++
			s.Health.HTTP = p.str(v, "http")
			if s.Health.HTTP != "" && !strings.HasPrefix(s.Health.HTTP, "/") {
				p.errorf(v, "give the path on the service's port, e.g. /health", "%s: health http %q is not a path", what, s.Health.HTTP)
			}
		case "tcp":
			n++
			if err := v.Decode(&s.Health.TCP); err != nil {
				p.errorf(v, "write tcp: true", "%s: health tcp must be true or false", what)
			}
		case "command":
			n++
			s.Health.Command = p.strs(v, "health command")
		case "timeout":
			d, err := time.ParseDuration(v.Value)
			if err != nil || d <= 0 {
				p.errorf(v, `write a duration, e.g. "30s"`, "%s: health timeout %q is not a duration", what, v.Value)
			}
			s.Health.Timeout = d
		}
	})
	if n > 1 {
		p.errorf(v, "keep one of them", "%s: health gives more than one check", what)
	}
}
