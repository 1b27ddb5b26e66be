package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/tap"
)

// recordOptions are the flags of `flowctl test --record`.
type recordOptions struct {
	component string
	file      string // the pipeline file
	edge      string // in | out | "" (out; a sink's input)
	limit     int
	timeout   time.Duration
	output    string // "" or "-": standard output
	full      bool
	socket    string
}

// Defaults of --record.
const (
	defaultRecordLimit   = 100
	defaultRecordTimeout = time.Minute
)

// runRecord records the events crossing one edge of a component of a
// running pipeline (through the run's tap socket, as flowctl tap does)
// into a JSON-lines fixture: one event's data per line, the format a
// test's inputs: {SOURCE: {file: F}} reads, or with --full each event in
// the form a test file writes an event with attributes.
func runRecord(ctx context.Context, g *globals, o recordOptions) error {
	if o.file == "" {
		return errors.New("--record needs the running pipeline's file: flowctl test --record COMPONENT -f pipeline.yaml")
	}
	if o.edge != "" && o.edge != "in" && o.edge != "out" {
		return fmt.Errorf("--edge %q: use out (what the component emits) or in (what it is handed)", o.edge)
	}
	if o.limit < 0 {
		return fmt.Errorf("--limit %d: give a number of events ≥ 1, or 0 to record until --timeout or an interrupt", o.limit)
	}
	if o.timeout < 0 {
		return fmt.Errorf("--timeout %s: give a positive duration such as 30s, or 0 to wait until --limit or an interrupt", o.timeout)
	}
	pl, diags, err := spec.Load(o.file, spec.Options{Registry: components.NewRegistry()})
	if err != nil {
		return err
	}
	if diags.HasErrors() || pl == nil {
		return fmt.Errorf("%s does not validate (flowctl validate %s):\n%w", o.file, o.file, diags.Err())
	}
	point, err := recordPoint(pl, o.component, o.edge)
	if err != nil {
		return err
	}
	sock := liveRunSocket(pl.Name, o.socket)
	if sock == "" {
		return fmt.Errorf("no `flowctl run` of pipeline %q is live on this machine (its socket would be %s): start it, e.g. in another terminal with `flowctl run -f %s`, then record again (or give --socket if it was started with one)",
			pl.Name, defaultSocketHint(pl.Name), o.file)
	}

	var w io.Writer = g.stdout
	where := "standard output"
	var f *os.File
	if o.output != "" && o.output != "-" {
		f, err = os.Create(o.output)
		if err != nil {
			return fmt.Errorf("-o: %w", err)
		}
		defer f.Close()
		w, where = f, o.output
	}
	bw := bufio.NewWriter(w)
	rctx := ctx
	if o.timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	r := &recorder{w: bw, full: o.full, errw: g.stderr, what: fmt.Sprintf("%s of pipeline %q", point, pl.Name)}
	werr := watchRun(rctx, pl.Name, sock, o.socket != "", tap.Request{Points: []string{point.String()}, Limit: o.limit}, r.record)
	if err := bw.Flush(); err != nil && werr == nil {
		werr = err
	}
	if f != nil {
		if err := f.Close(); err != nil && werr == nil {
			werr = err
		}
	}
	if werr != nil {
		if f != nil && r.n == 0 {
			os.Remove(o.output)
		}
		return werr
	}
	timedOut := errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	if r.n == 0 && timedOut {
		if f != nil {
			os.Remove(o.output)
		}
		return fmt.Errorf("no event crossed %s within --timeout %s: is the pipeline getting input? (flowctl tap %s/%s shows what passes)", r.what, o.timeout, pl.Name, point)
	}
	msg := fmt.Sprintf("flowctl test: recorded %s crossing %s into %s", countEvents(r.n), r.what, where)
	if timedOut && o.limit > 0 && r.n < o.limit {
		msg += fmt.Sprintf(" (--timeout %s passed before %d)", o.timeout, o.limit)
	}
	fmt.Fprintln(g.stderr, msg)
	if r.dropped > 0 {
		fmt.Fprintf(g.stderr, "flowctl test: %s went by unrecorded (the recording could not keep up; the pipeline was not slowed): the fixture is a sample, not a contiguous run\n", countEvents(int(r.dropped)))
	}
	return nil
}

// recordPoint is the tap point of --record COMPONENT --edge EDGE.
func recordPoint(pl *spec.Pipeline, name, edge string) (tap.Point, error) {
	comps := map[string]flow.Role{}
	for _, c := range pl.Components() {
		comps[c.Name] = c.Role
	}
	if role, ok := comps[name]; ok {
		switch {
		case edge == "in" && role == flow.RoleSource:
			return tap.Point{}, fmt.Errorf("source %q has no input: record what it emits (--edge out)", name)
		case edge == "out" && role == flow.RoleSink:
			return tap.Point{}, fmt.Errorf("sink %q has no output: record what it is handed (--edge in)", name)
		}
	}
	p := name
	if edge != "" {
		p += ":" + edge
	}
	return tap.ResolvePoint(p, comps)
}

// recorder writes tap records as fixture lines.
type recorder struct {
	w       *bufio.Writer
	errw    io.Writer
	full    bool
	what    string
	n       int
	dropped int64
}

func (r *recorder) record(rec tap.Record) error {
	switch {
	case rec.Watching != "":
		fmt.Fprintf(r.errw, "flowctl test: recording %s (interrupt to stop)\n", r.what)
	case rec.Dropped > 0:
		r.dropped = rec.Dropped
	case rec.Event != nil:
		line, err := fixtureLine(rec.Event, r.full)
		if err != nil {
			return err
		}
		r.n++
		if _, err := r.w.Write(append(line, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// fixtureLine is one line of a fixture: the event's data (JSON; text as a
// JSON string; nothing as null), or with full the event with its
// attributes as a test file writes one ({id, type, source, subject,
// metadata, data}).
func fixtureLine(ev *tap.Event, full bool) ([]byte, error) {
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	if !full {
		return data, nil
	}
	return json.Marshal(struct {
		ID       string            `json:"id"`
		Type     string            `json:"type,omitempty"`
		Source   string            `json:"source,omitempty"`
		Subject  string            `json:"subject,omitempty"`
		Metadata map[string]string `json:"metadata,omitempty"`
		Data     json.RawMessage   `json:"data"`
	}{ev.ID, ev.Type, ev.Source, ev.Subject, ev.Metadata, data})
}

func countEvents(n int) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}
