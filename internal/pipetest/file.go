package pipetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/spec"
)

// DefaultTimeout bounds a case that sets no timeout.
const DefaultTimeout = 30 * time.Second

// File is a test file: the pipeline it tests and its cases.
type File struct {
	// Path is where the test file was read from.
	Path string `yaml:"-"`
	// Pipeline is the pipeline file, relative to the test file's
	// directory [NAME.yaml for NAME_test.yaml].
	Pipeline string `yaml:"pipeline"`
	// Env resolves ${VAR} in the pipeline file before the environment
	// does.
	Env map[string]string `yaml:"env"`
	// Sinks is how the cases run the sinks: real (file, http and sqlite
	// sinks write for real, redirected to a temporary directory or a
	// capture server; the others are captured) or capture (every sink is
	// an in-memory capture) [real]. A case may say otherwise.
	Sinks string  `yaml:"sinks"`
	Tests []*Case `yaml:"tests"`
}

// PipelinePath is the pipeline file's path.
func (f *File) PipelinePath() string {
	p := f.Pipeline
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(f.Path), p)
	}
	return p
}

// Case is one test: input events, expected outputs.
type Case struct {
	Name string `yaml:"name"`
	// Inputs are the events each named source emits instead of reading
	// its own input.
	Inputs map[string]Input `yaml:"inputs"`
	// UnusedSources is what happens to sources Inputs does not name:
	// "" refuses them (the case fails), "drop" removes them.
	UnusedSources string `yaml:"unused_sources"`
	// Expect holds what each named sink must be handed; sinks not named
	// are not checked.
	Expect map[string]*SinkExpect `yaml:"expect"`
	// DeadLetters, when given (even empty), are exactly the dead letters
	// expected, in any order.
	DeadLetters *[]DeadLetterExpect `yaml:"dead_letters"`
	// Timeout bounds the run [DefaultTimeout].
	Timeout Duration `yaml:"timeout"`
	// Sinks overrides the file's sinks: for this case.
	Sinks string `yaml:"sinks"`

	// Line is where the case starts in the test file.
	Line int `yaml:"-"`
}

// Input is the events of one source: a list written inline, or a file of
// JSON lines (one event's data per line).
type Input struct {
	Events []any
	File   string
	line   int
}

// UnmarshalYAML reads a list of events or {file: PATH}.
func (in *Input) UnmarshalYAML(n *yaml.Node) error {
	in.line = n.Line
	switch n.Kind {
	case yaml.SequenceNode:
		return n.Decode(&in.Events)
	case yaml.MappingNode:
		if len(n.Content) == 2 && n.Content[0].Value == "file" && n.Content[1].Kind == yaml.ScalarNode && n.Content[1].Value != "" {
			in.File = n.Content[1].Value
			return nil
		}
	}
	return fmt.Errorf("line %d:%d: an input must be a list of events or {file: PATH.jsonl} — write one of them", n.Line, n.Column)
}

// SinkExpect is what one sink must be handed.
type SinkExpect struct {
	// Events, when given (even empty), are compared with what the sink got.
	Events *[]any `yaml:"events"`
	// Match is exact (the data are equal) or subset (each expected object
	// is a sub-object of the data got) [exact].
	Match string `yaml:"match"`
	// Order says whether the events must come in the order written
	// [true].
	Order *bool `yaml:"order"`
	// Where are CEL predicates every event the sink got must satisfy.
	Where []string `yaml:"where"`
	// Count, when given, is how many events the sink must get.
	Count *int `yaml:"count"`
}

// DeadLetterExpect is one expected dead letter.
type DeadLetterExpect struct {
	// Reason is a substring of the error, or /REGEX/.
	Reason string `yaml:"reason"`
	// Component, when given, is the component that failed.
	Component string `yaml:"component"`
	// Data, when given, must be a sub-object of the original event's data.
	Data any `yaml:"data"`
}

// Duration is a time.Duration written as "250ms", "30s".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v <= 0 {
		return fmt.Errorf("line %d:%d: timeout %q is not a positive duration — write one such as 30s", n.Line, n.Column, n.Value)
	}
	*d = Duration(v)
	return nil
}

// LoadFile reads and checks a test file. The error names the file (and
// the line when known).
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, decodeError(path, nil, fmt.Errorf("%w — fix the syntax at this place", err))
	}
	if len(root.Content) == 0 {
		if !IsTestFile(path) {
			return nil, fmt.Errorf("%s: empty file", path)
		}
		return nil, fmt.Errorf("%s: empty test file: give pipeline: and tests:", path)
	}
	// Misspelt keys first, every one with its place and a hint: the
	// decoder below would name only a line and a Go type.
	if err := unknownKeys(path, root.Content[0], IsTestFile(path)); err != nil {
		return nil, err
	}
	f := &File{Path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt key is an error, not a check skipped
	var err2 error
	if IsTestFile(path) {
		err2 = dec.Decode(f)
	} else {
		// A pipeline file with a tests: section: the pipeline is the file
		// itself; its other keys are the pipeline's (spec checks them),
		// while the cases are decoded as strictly as in a test file.
		var pf struct {
			Tests []*Case        `yaml:"tests"`
			Rest  map[string]any `yaml:",inline"`
		}
		err2 = dec.Decode(&pf)
		f.Tests, f.Pipeline = pf.Tests, filepath.Base(path)
		if err2 == nil && !hasKey(root.Content[0], "tests") {
			return nil, fmt.Errorf("%s: no tests: section: add the cases under tests: at the top of the pipeline file, or write them in %s", path, testFileFor(path))
		}
	}
	if err2 != nil {
		return nil, decodeError(path, root.Content[0], err2)
	}
	f.Path = path
	// Lines of the cases, for the reports.
	if m := root.Content[0]; m.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "tests" && m.Content[i+1].Kind == yaml.SequenceNode {
				for j, c := range m.Content[i+1].Content {
					if j < len(f.Tests) && f.Tests[j] != nil {
						f.Tests[j].Line = c.Line
					}
				}
			}
		}
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return f, nil
}

// unknownKeys reports every key of a test file, or of a pipeline file's
// tests: section, that names no field (the keys are the yaml tags of File,
// Case, SinkExpect and DeadLetterExpect), as FILE:LINE:COL: what — hint.
// A pipeline file's other keys are spec's to check.
func unknownKeys(path string, top *yaml.Node, testFile bool) error {
	var errs []error
	check := func(m *yaml.Node, t reflect.Type, where string) {
		if m.Kind != yaml.MappingNode {
			return // the decoder says what it should be
		}
		known := yamlKeys(t)
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := m.Content[i]
			if !slices.Contains(known, k.Value) {
				errs = append(errs, fmt.Errorf("%s:%d:%d: unknown field %q in %s — %s",
					path, k.Line, k.Column, k.Value, where, spec.DidYouMean(k.Value, known, "known fields")))
			}
		}
	}
	if testFile {
		check(top, reflect.TypeOf(File{}), "the test file")
	}
	tests := mappingValue(top, "tests")
	if tests == nil || tests.Kind != yaml.SequenceNode {
		return errors.Join(errs...)
	}
	for i, c := range tests.Content {
		where := fmt.Sprintf("tests[%d]", i)
		if n := mappingValue(c, "name"); n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
			where = fmt.Sprintf("test %q", n.Value)
		}
		check(c, reflect.TypeOf(Case{}), where)
		if x := mappingValue(c, "expect"); x != nil && x.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(x.Content); j += 2 {
				check(x.Content[j+1], reflect.TypeOf(SinkExpect{}), fmt.Sprintf("expect.%s of %s", x.Content[j].Value, where))
			}
		}
		if d := mappingValue(c, "dead_letters"); d != nil && d.Kind == yaml.SequenceNode {
			for j, e := range d.Content {
				check(e, reflect.TypeOf(DeadLetterExpect{}), fmt.Sprintf("dead_letters[%d] of %s", j, where))
			}
		}
	}
	return errors.Join(errs...)
}

// decodeError words the decoder's errors for the user: each of its
// "line N: cannot unmarshal !!str `x` into int" becomes
// "FILE:N:COL: `x` is not a whole number — write one there", without
// Go's types; the column is that of the value on line N with that tag.
func decodeError(path string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// A syntax error, or one of our UnmarshalYAML's "line L:C: ...".
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if pos, rest, ok := strings.Cut(strings.TrimPrefix(msg, "line "), ": "); ok && pos != "" && strings.Trim(pos, "0123456789:") == "" {
			return fmt.Errorf("%s:%s: %s", path, pos, rest)
		}
		return fmt.Errorf("%s: %s", path, msg)
	}
	errs := make([]error, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := unmarshalErrRe.FindStringSubmatch(e)
		if m == nil {
			line, msg, ok := strings.Cut(strings.TrimPrefix(e, "line "), ": ")
			if !ok {
				line, msg = "1", e
			}
			errs = append(errs, fmt.Errorf("%s:%s: %s", path, line, msg))
			continue
		}
		line, tag, value, goType := m[1], m[2], m[3], m[4]
		want := "a mapping"
		switch {
		case goType == "int":
			want = "a whole number"
		case goType == "bool":
			want = "true or false"
		case goType == "string":
			want = "a string"
		case strings.HasPrefix(goType, "[]"):
			want = "a list"
		}
		got := value
		switch {
		case tag == "map":
			got = "a mapping"
		case tag == "seq":
			got = "a list"
		}
		pos := line
		if n, _ := strconv.Atoi(line); n > 0 {
			if v := valueAt(root, n, "!!"+tag); v != nil {
				pos = fmt.Sprintf("%d:%d", v.Line, v.Column)
			}
		}
		errs = append(errs, fmt.Errorf("%s:%s: %s is not %s — write %s there", path, pos, got, want, want))
	}
	return errors.Join(errs...)
}

// unmarshalErrRe matches one of yaml.v3's type errors: line, tag, the
// value when a scalar, Go type.
var unmarshalErrRe = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: (.*))? into (\\S+)$")

// valueAt is the first value node (not a mapping's key) on line with tag.
func valueAt(n *yaml.Node, line int, tag string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Line == line && n.ShortTag() == tag && n.Kind != yaml.DocumentNode {
		return n
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue
		}
		if v := valueAt(c, line, tag); v != nil {
			return v
		}
	}
	return nil
}

// yamlKeys lists the keys of struct t's yaml tags, in field order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// mappingValue is the value of key in mapping n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// check reports what the YAML types cannot.
func (f *File) check() error {
	var errs []error
	bad := func(line int, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", f.Path, line, fmt.Sprintf(format, a...)))
	}
	if f.Pipeline == "" {
		base := filepath.Base(f.Path)
		for _, suf := range []string{"_test.yaml", "_test.yml"} {
			if name, ok := strings.CutSuffix(base, suf); ok {
				for _, ext := range []string{".yaml", ".yml", ".json"} {
					if _, err := os.Stat(filepath.Join(filepath.Dir(f.Path), name+ext)); err == nil {
						f.Pipeline = name + ext
						break
					}
				}
			}
		}
		if f.Pipeline == "" {
			bad(1, "no pipeline: give the pipeline file it tests (pipeline: NAME.yaml, relative to this file)")
		}
	}
	if len(f.Tests) == 0 {
		bad(1, "no tests: give a list of cases under tests:")
	}
	if f.Sinks != "" && f.Sinks != SinksReal && f.Sinks != SinksCapture {
		bad(1, "sinks %q: use real (file, http and sqlite sinks write for real, redirected) or capture (every sink in memory)", f.Sinks)
	}
	seen := map[string]bool{}
	for i, c := range f.Tests {
		if c == nil {
			bad(1, "tests[%d] is empty", i)
			continue
		}
		switch {
		case c.Name == "":
			bad(c.Line, "tests[%d] has no name", i)
		case seen[c.Name]:
			bad(c.Line, "two tests are named %q", c.Name)
		}
		seen[c.Name] = true
		if len(c.Inputs) == 0 {
			bad(c.Line, "test %q has no inputs: give events for at least one source", c.Name)
		}
		if c.Sinks != "" && c.Sinks != SinksReal && c.Sinks != SinksCapture {
			bad(c.Line, "test %q: sinks %q: use real (file, http and sqlite sinks write for real, redirected) or capture (every sink in memory)", c.Name, c.Sinks)
		}
		if c.UnusedSources != "" && c.UnusedSources != "drop" {
			bad(c.Line, "test %q: unused_sources %q: the only value is drop", c.Name, c.UnusedSources)
		}
		for sink, x := range c.Expect {
			if x == nil {
				bad(c.Line, "test %q: expect.%s is empty: give events, where or count", c.Name, sink)
				continue
			}
			if x.Match != "" && x.Match != "exact" && x.Match != "subset" {
				bad(c.Line, "test %q: expect.%s.match %q: use exact or subset", c.Name, sink, x.Match)
			}
			if x.Events == nil && len(x.Where) == 0 && x.Count == nil {
				bad(c.Line, "test %q: expect.%s checks nothing: give events, where or count", c.Name, sink)
			}
		}
		if c.DeadLetters != nil {
			for j, d := range *c.DeadLetters {
				if d.Reason == "" && d.Data == nil && d.Component == "" {
					bad(c.Line, "test %q: dead_letters[%d] checks nothing: give reason, component or data", c.Name, j)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// timeout is the case's timeout, the default applied.
func (c *Case) timeout() time.Duration {
	if c.Timeout > 0 {
		return time.Duration(c.Timeout)
	}
	return DefaultTimeout
}

// sinks is how the case runs the sinks, the file's setting and the
// default applied.
func (c *Case) sinks(f *File) string {
	switch {
	case c.Sinks != "":
		return c.Sinks
	case f.Sinks != "":
		return f.Sinks
	}
	return SinksReal
}

// hasKey reports whether the mapping n has key.
func hasKey(n *yaml.Node, key string) bool {
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// testFileFor is the name of the test file of pipeline file path.
func testFileFor(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(filepath.Base(path), ext) + "_test.yaml"
}

// HasTests reports whether path is a pipeline file with a top-level
// tests: section. Only the top level is decoded; a file that is not YAML
// has none.
func HasTests(path string) bool {
	switch filepath.Ext(path) {
	case ".yaml", ".yml", ".json":
	default:
		return false
	}
	if IsTestFile(path) {
		return false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return false
	}
	t, ok := top["tests"]
	return ok && t.Kind == yaml.SequenceNode
}

// IsTestFile reports whether name is a test file's name.
func IsTestFile(name string) bool {
	base := filepath.Base(name)
	return strings.HasSuffix(base, "_test.yaml") || strings.HasSuffix(base, "_test.yml")
}

// Find returns the test files of paths: a file is taken as is, a directory
// is walked for *_test.yaml and for pipeline files with a top-level
// tests: section (skipping .git and .flowctl). The result is sorted,
// without duplicates.
func Find(paths []string) ([]string, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, filepath.Clean(p))
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && (d.Name() == ".git" || d.Name() == ".flowctl") {
					return filepath.SkipDir
				}
				return nil
			}
			if IsTestFile(path) || HasTests(path) {
				out = append(out, filepath.Clean(path))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// readJSONLines reads a file of one JSON value per line (blank lines
// skipped); each line is kept as written.
func readJSONLines(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) {
			return nil, fmt.Errorf("%s:%d: not a JSON value", path, n)
		}
		out = append(out, bytes.Clone(line))
	}
	return out, sc.Err()
}
