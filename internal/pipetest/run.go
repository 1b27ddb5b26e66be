package pipetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
)

// The built-ins a case puts in place of the pipeline's sources and sinks.
const (
	inputType   = "flowctl-test-input"
	captureType = "flowctl-test-capture"
)

// Options tune a test run.
type Options struct {
	// Run, if set, selects the cases whose name it matches.
	Run *regexp.Regexp
	// Verbose streams the components' output and logs as the cases run
	// (to Output) instead of showing them only for a failing case.
	Verbose bool
	// Output receives the components' output in verbose mode [discard].
	Output io.Writer
	// Prepare, if set, is called on the pipeline of each case after its
	// sources and sinks were replaced, before anything starts (the CLI
	// resolves component references there, as `flowctl run` does).
	Prepare func(ctx context.Context, p *spec.Pipeline) error
	// LookupEnv resolves ${VAR} after the test file's env [os.LookupEnv].
	LookupEnv func(string) (string, bool)
	// Grace bounds the drain of a case that timed out [5s].
	Grace time.Duration
}

// FileResult is the outcome of one test file.
type FileResult struct {
	Path string
	// Err is a test file that could not be read or checked: no case ran.
	Err     error
	Cases   []CaseResult
	Elapsed time.Duration
}

// Failed reports whether the file errored or a case failed.
func (r FileResult) Failed() bool {
	if r.Err != nil {
		return true
	}
	for _, c := range r.Cases {
		if !c.Passed {
			return true
		}
	}
	return false
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name    string
	Line    int
	Passed  bool
	Elapsed time.Duration
	// Failures are the lines that say why the case failed (diffs
	// included), unindented.
	Failures []string
	// Output is what the components and the engine logged (the verbose
	// mode streams it instead).
	Output string
}

// RunFile loads the test file at path and runs its cases (those opts.Run
// selects). started, if not nil, is called as each case starts; done as
// each ends (for a streamed report).
func RunFile(ctx context.Context, path string, opts Options, started func(name string), done func(CaseResult)) FileResult {
	t0 := time.Now()
	res := FileResult{Path: path}
	f, err := LoadFile(path)
	if err != nil {
		res.Err = err
		res.Elapsed = time.Since(t0)
		return res
	}
	for _, c := range f.Tests {
		if opts.Run != nil && !opts.Run.MatchString(c.Name) {
			continue
		}
		if started != nil {
			started(c.Name)
		}
		cr := RunCase(ctx, f, c, opts)
		if done != nil {
			done(cr)
		}
		res.Cases = append(res.Cases, cr)
		if ctx.Err() != nil {
			break
		}
	}
	res.Elapsed = time.Since(t0)
	return res
}

// RunCase runs one case of f.
func RunCase(ctx context.Context, f *File, c *Case, opts Options) CaseResult {
	t0 := time.Now()
	var buf syncBuffer
	out := io.Writer(&buf)
	if opts.Verbose && opts.Output != nil {
		out = opts.Output
	}
	failures := runCase(ctx, f, c, opts, out)
	return CaseResult{Name: c.Name, Line: c.Line, Passed: len(failures) == 0,
		Elapsed: time.Since(t0), Failures: failures, Output: buf.String()}
}

// runCase runs c and returns why it failed (nothing when it passed).
func runCase(ctx context.Context, f *File, c *Case, opts Options, out io.Writer) []string {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	env := func(k string) (string, bool) {
		if v, ok := f.Env[k]; ok {
			return v, true
		}
		return lookup(k)
	}
	reg := components.NewRegistry()
	pfile := f.PipelinePath()
	pl, diags, err := spec.Load(pfile, spec.Options{Registry: reg, LookupEnv: env})
	if err != nil {
		return []string{err.Error()}
	}
	if diags.HasErrors() || pl == nil {
		lines := []string{fmt.Sprintf("pipeline %s does not validate:", pfile)}
		for _, d := range diags {
			if d.Severity == spec.SevError {
				lines = append(lines, "    "+d.String())
			}
		}
		return lines
	}

	// Inputs in place of the sources; captures in place of the sinks.
	inputs := map[string][]*flow.Event{}
	var bad []string
	var kept []*spec.Component
	for _, s := range pl.Sources {
		in, ok := c.Inputs[s.Name]
		if !ok {
			if c.UnusedSources == "drop" {
				continue
			}
			bad = append(bad, fmt.Sprintf("source %q has no inputs in the test: give it events, or unused_sources: drop to leave it out", s.Name))
			continue
		}
		evs, err := inputEvents(f, s, in)
		if err != nil {
			bad = append(bad, fmt.Sprintf("inputs.%s: %v", s.Name, err))
			continue
		}
		inputs[s.Name] = evs
		replace(s, inputType)
		kept = append(kept, s)
	}
	if len(kept) < len(pl.Sources) {
		// Dropped sources: so are inputs that named them.
		pl.Sources = kept
		for _, comp := range append(pl.Processors, pl.Sinks...) {
			comp.Inputs = slices.DeleteFunc(comp.Inputs, func(in spec.Input) bool {
				s := pl.Component(in.From)
				return s == nil
			})
		}
	}
	for _, name := range sortedKeys(c.Inputs) {
		if s := pl.Component(name); s == nil || s.Role != flow.RoleSource {
			bad = append(bad, fmt.Sprintf("inputs.%s: the pipeline has no source %q (sources: %s)", name, name, names(pl.Sources)))
		}
	}
	for _, name := range sortedKeys(c.Expect) {
		if s := pl.Component(name); s == nil || s.Role != flow.RoleSink || s == pl.DeadLetter {
			bad = append(bad, fmt.Sprintf("expect.%s: the pipeline has no sink %q (sinks: %s)", name, name, names(pl.Sinks)))
		}
	}
	if c.DeadLetters != nil && len(*c.DeadLetters) > 0 && pl.DeadLetter == nil {
		bad = append(bad, "dead_letters: the pipeline has no dead_letter sink: failed events are dropped, not kept")
	}
	if len(bad) > 0 {
		return bad
	}
	// Sinks: real ones redirected where the case reads them back, the
	// others captured.
	outs := map[string]output{}
	caps := map[string]*capture{}
	var dir string
	for _, s := range append(slices.Clone(pl.Sinks), pl.DeadLetter) {
		if s == nil {
			continue
		}
		if c.sinks(f) == SinksReal {
			if dir == "" {
				d, err := os.MkdirTemp("", "flowctl-test-")
				if err != nil {
					return []string{fmt.Sprintf("create a directory for the real sinks: %v", err)}
				}
				dir = d
				defer os.RemoveAll(dir)
			}
			o, closeOut, err := redirect(s, dir)
			if err != nil {
				return []string{err.Error()}
			}
			if o != nil {
				defer closeOut()
				outs[s.Name] = o
				continue
			}
		}
		caps[s.Name] = &capture{}
		outs[s.Name] = memOutput{caps[s.Name]}
		replace(s, captureType)
	}
	reg.MustRegister(&flow.ComponentSpec{Role: flow.RoleSource, Name: inputType,
		Summary: "The events of a pipeline test",
		New: func(bc flow.BuildContext) (any, error) {
			return &inputSource{events: inputs[bc.Name]}, nil
		}})
	reg.MustRegister(&flow.ComponentSpec{Role: flow.RoleSink, Name: captureType,
		Summary: "Keeps what a sink is handed, for a pipeline test",
		New: func(bc flow.BuildContext) (any, error) {
			return caps[bc.Name], nil
		}})

	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	if opts.Prepare != nil {
		if err := opts.Prepare(ctx, pl); err != nil {
			return []string{err.Error()}
		}
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	grace := opts.Grace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	eopts := engine.Options{Grace: grace, Logger: log}
	if hasExternal(pl) {
		// As flowctl run starts them: in the pipeline file's directory.
		ext, err := external.NewManager(pl, external.ManagerOptions{Logger: log, Dir: filepath.Dir(pl.File), Output: out})
		if err != nil {
			return []string{err.Error()}
		}
		defer func() {
			cctx, ccancel := context.WithTimeout(context.Background(), grace)
			defer ccancel()
			_ = ext.Close(cctx)
		}()
		eopts.External = func(c *spec.Component, _ flow.BuildContext) (any, error) { return ext.Build(c) }
	}
	e, err := engine.New(pl, reg, eopts)
	if err != nil {
		return []string{err.Error()}
	}
	runErr := e.Run(ctx)
	var fails []string
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		fails = append(fails, fmt.Sprintf("timed out after %s before every input event was written (set timeout: in the test to wait longer)", c.timeout()))
	case ctx.Err() != nil:
		return []string{"interrupted"}
	case runErr != nil:
		fails = append(fails, fmt.Sprintf("the pipeline failed: %v", runErr))
	}

	for _, name := range sortedKeys(c.Expect) {
		x := c.Expect[name]
		o := outs[name]
		have, err := o.events()
		if err != nil {
			fails = append(fails, fmt.Sprintf("sink %q: read back what it wrote (%s): %v", name, o.describe(), err))
		}
		if x.Events != nil {
			var want []expected
			for i, v := range *x.Events {
				ev, err := parseExpected(v)
				if err != nil {
					fails = append(fails, fmt.Sprintf("expect.%s.events[%d]: %v", name, i, err))
					continue
				}
				if (len(ev.attrs) > 0 || ev.metadata != nil) && !o.attributes() {
					fails = append(fails, fmt.Sprintf("expect.%s.events[%d] gives attributes, but the real %s sink writes the data only (%s): expect the data, write format: envelope, or set sinks: capture", name, i, pl.Component(name).Type, o.describe()))
					ev.attrs, ev.metadata = nil, nil // the data are still compared
				}
				want = append(want, ev)
			}
			ordered := x.Order == nil || *x.Order
			fails = append(fails, checkEvents(name, want, have, x.Match == "subset", ordered)...)
		}
		fails = append(fails, checkWhere(name, x.Where, x.Count, have)...)
	}
	if c.DeadLetters != nil {
		var have []got
		if pl.DeadLetter != nil {
			o := outs[pl.DeadLetter.Name]
			var err error
			if have, err = o.events(); err != nil {
				fails = append(fails, fmt.Sprintf("dead letters: read back what the dead-letter sink wrote (%s): %v", o.describe(), err))
			}
		}
		fails = append(fails, checkDeadLetters(*c.DeadLetters, have)...)
	}
	if len(fails) > 0 {
		// What else happened, when it may explain the failure.
		for _, s := range e.Stats().Components {
			if s.Dropped > 0 {
				fails = append(fails, fmt.Sprintf("note: %s %q dropped %s (on_error drop, or no dead_letter sink)", s.Role, s.Name, plural(int(s.Dropped), "event")))
			}
		}
	}
	return fails
}

// replace makes c the test built-in typ, keeping its name, inputs and
// on_error.
func replace(c *spec.Component, typ string) {
	c.Runner, c.Type, c.Ref = spec.RunBuiltin, typ, ""
	c.Image, c.Command, c.Args, c.URL, c.Protocol = "", nil, nil, "", ""
	c.Config = flow.Config{}
	c.Parallelism = 1
}

// inputEvents builds the events of source s from the test's input.
func inputEvents(f *File, s *spec.Component, in Input) ([]*flow.Event, error) {
	typ := s.Name
	if t, ok := s.Config["event_type"].(string); ok && t != "" {
		typ = t
	}
	mk := func(i int, data []byte) *flow.Event {
		return &flow.Event{ID: s.Name + "-" + strconv.Itoa(i+1), Source: "flowctl-test/" + s.Name, Type: typ,
			DataContentType: "application/json", Data: data, Time: time.Now().UTC()}
	}
	var evs []*flow.Event
	if in.File != "" {
		path := in.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(f.Path), path)
		}
		lines, err := readJSONLines(path)
		if err != nil {
			return nil, err
		}
		for i, l := range lines {
			evs = append(evs, mk(i, l))
		}
		return evs, nil
	}
	for i, v := range in.Events {
		data := v
		m, env := isEnvelope(v)
		if env {
			data = m["data"]
		}
		b, err := marshalData(data)
		if err != nil {
			return nil, fmt.Errorf("event %d: %v", i, err)
		}
		ev := mk(i, b)
		if env {
			for k, a := range m {
				s := fmt.Sprint(a)
				switch k {
				case "id":
					ev.ID = s
				case "type":
					ev.Type = s
				case "source":
					ev.Source = s
				case "subject":
					ev.Subject = s
				case "metadata":
					md, ok := toJSONable(a).(map[string]any)
					if !ok {
						return nil, fmt.Errorf("event %d: metadata must be a mapping of strings", i)
					}
					ev.Metadata = map[string]string{}
					for mk, mv := range md {
						ev.Metadata[mk] = fmt.Sprint(mv)
					}
				}
			}
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// marshalData is the JSON of a YAML value.
func marshalData(v any) ([]byte, error) {
	return []byte(jsonLine(toJSONable(v))), nil
}

// inputSource emits the test's events once, then ends.
type inputSource struct{ events []*flow.Event }

func (s *inputSource) Bounded() bool { return true }

func (s *inputSource) Run(ctx context.Context, out flow.Emitter) error {
	for i := 0; i < len(s.events); i += flow.MaxBatch {
		batch := s.events[i:min(i+flow.MaxBatch, len(s.events))]
		// The engine owns what it is handed: fresh copies.
		b := make([]*flow.Event, len(batch))
		for j, ev := range batch {
			b[j] = ev.WithData(ev.Data)
		}
		if err := out.Emit(ctx, b, nil); err != nil {
			return err
		}
	}
	return nil
}

// capture keeps what a sink is handed.
type capture struct {
	mu  sync.Mutex
	got []got
}

func (c *capture) Write(_ context.Context, batch []*flow.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range batch {
		c.got = append(c.got, newGot(ev))
	}
	return nil
}

func (c *capture) events() []got {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func hasExternal(p *spec.Pipeline) bool {
	for _, c := range append(p.Components(), p.DeadLetter) {
		if c != nil && external.IsExternal(c) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func names(cs []*spec.Component) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// syncBuffer is a bytes.Buffer safe for the components' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
