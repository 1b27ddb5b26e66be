package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/tap"
	"github.com/flowctl/flowctl/pkg/wire/controlv1"
)

func init() { register("tap", newTapCmd) }

type tapOptions struct {
	server serverFlags
	socket string
	types  []string
	where  string
	limit  int
	output string
}

func newTapCmd(g *globals) *cobra.Command {
	var o tapOptions
	cmd := &cobra.Command{
		Use:   "tap PIPELINE[/COMPONENT[:out|:in]]",
		Short: "Print a live sample of the events crossing a point of a running pipeline",
		Long: `tap prints the events crossing one point of a running pipeline as they pass: what a
component emits (COMPONENT or COMPONENT:out) or what it is handed (COMPONENT:in; a sink's
only side), with their attributes and data. PIPELINE alone watches the output of every
source and processor. External components are tapped like built-ins: COMPONENT:in is what
flowctl sends to it, COMPONENT:out what it answered.

It reaches a pipeline started by "flowctl run" on this machine through the run's own
socket (only its user can connect), else the flowctl server, which taps the pipelines it
runs. --types and --where (a CEL condition over the event, as in a filter) select events;
--limit N stops after N. A tap never slows the pipeline: when this terminal cannot keep up,
events are dropped for the tap only, and tap says how many.`,
		Example: `  flowctl tap payments/enrich
  flowctl tap payments/enrich:in --limit 5 -o json
  flowctl tap payments/large --where 'data.amount >= 5000'
  flowctl tap payments --types payment.refunded`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pipe, point, _ := strings.Cut(args[0], "/")
			if pipe == "" {
				return fmt.Errorf("%q: use PIPELINE or PIPELINE/COMPONENT[:out|:in]", args[0])
			}
			if o.output != "text" && o.output != "json" {
				return fmt.Errorf("-o %q: use text or json", o.output)
			}
			if o.limit < 0 {
				return fmt.Errorf("--limit %d: give a number ≥ 0 (0: no limit)", o.limit)
			}
			req := tap.Request{Types: o.types, Where: o.where, Limit: o.limit}
			if point != "" {
				req.Points = []string{point}
			}
			return runTap(cmd.Context(), g, o, pipe, req)
		},
	}
	addServerFlags(cmd, &o.server)
	f := cmd.Flags()
	f.StringVar(&o.socket, "socket", "", "the socket of the flowctl run to tap (as given to its --socket) [$XDG_STATE_HOME/flowctl/runs/PIPELINE.sock, else the server]")
	f.StringSliceVar(&o.types, "types", nil, "only events of these types (comma-separated)")
	f.StringVar(&o.where, "where", "", "only events for which this CEL condition holds, e.g. 'data.amount >= 5000'")
	f.IntVar(&o.limit, "limit", 0, "stop after N events (0: until interrupted)")
	f.StringVarP(&o.output, "output", "o", "text", "text, or json (one event per line)")
	return cmd
}

// runTap streams from the run's socket when there is one (--socket, or
// the default socket of a run of this user), else from the server.
func runTap(ctx context.Context, g *globals, o tapOptions, pipe string, req tap.Request) error {
	sock := o.socket
	if sock == "" && !o.server.given() {
		sock = liveRunSocket(pipe, "")
	}
	p := &tapPrinter{w: g.stdout, errw: g.stderr, json: o.output == "json", pipe: pipe}
	if sock != "" {
		if err := watchRun(ctx, pipe, sock, o.socket != "", req, p.record); err != nil {
			return err
		}
		p.finish()
		return nil
	}
	c, err := o.server.connect(ctx)
	if err != nil {
		return fmt.Errorf("%w\n(no `flowctl run` of pipeline %q on this machine either: its socket would be %s)", err, pipe, defaultSocketHint(pipe))
	}
	defer c.close()
	if err := tapFromServer(ctx, c, pipe, req, p.record); err != nil && ctx.Err() == nil {
		return err
	}
	p.finish()
	return nil
}

func defaultSocketHint(pipe string) string {
	s, err := defaultRunSocket(pipe)
	if err != nil {
		return "unknown: " + err.Error()
	}
	return s
}

// isNoListener reports whether err says nothing listens on the socket.
func isNoListener(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such file")
}

// tapPrinter prints tap records as text or JSON lines.
type tapPrinter struct {
	w, errw io.Writer
	json    bool
	pipe    string
	dropped int64
	seen    int
}

func (p *tapPrinter) record(r tap.Record) error {
	switch {
	case r.Watching != "":
		fmt.Fprintf(p.errw, "flowctl tap: watching %s (interrupt to stop)\n", r.Watching)
	case r.Dropped > 0:
		p.dropped = r.Dropped
		fmt.Fprintf(p.errw, "flowctl tap: %d events dropped so far: this tap could not keep up (the pipeline was not slowed)\n", r.Dropped)
	case r.End == tap.EndRun:
		fmt.Fprintf(p.errw, "flowctl tap: the run of pipeline %q ended\n", p.pipe)
	case r.Event != nil:
		p.seen++
		if p.json {
			b, err := json.Marshal(r.Event)
			if err != nil {
				return err
			}
			_, err = p.w.Write(append(b, '\n'))
			return err
		}
		return p.text(r.Event)
	}
	return nil
}

func (p *tapPrinter) text(ev *tap.Event) error {
	var b strings.Builder
	b.WriteString(ev.Point)
	if ev.Time != nil {
		b.WriteString("  ")
		b.WriteString(ev.Time.UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(&b, "  id=%s", ev.ID)
	if ev.Type != "" {
		fmt.Fprintf(&b, " type=%s", ev.Type)
	}
	if ev.Source != "" {
		fmt.Fprintf(&b, " source=%s", ev.Source)
	}
	if ev.Subject != "" {
		fmt.Fprintf(&b, " subject=%s", ev.Subject)
	}
	for _, k := range sortedKeys(ev.Metadata) {
		fmt.Fprintf(&b, " %s=%s", k, ev.Metadata[k])
	}
	if len(ev.Data) > 0 {
		b.WriteString("  ")
		b.Write(ev.Data)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(p.w, b.String())
	return err
}

func (p *tapPrinter) finish() {
	if p.dropped > 0 {
		fmt.Fprintf(p.errw, "flowctl tap: %d events shown, %d dropped\n", p.seen, p.dropped)
	}
}

// tapFromServer streams a tap of a pipeline the server runs.
func tapFromServer(ctx context.Context, c *client, pipe string, req tap.Request, fn func(tap.Record) error) error {
	stream, err := controlv1.NewLiveServiceClient(c.cc).Tap(ctx, &controlv1.TapRequest{
		Pipeline: pipe, Points: req.Points, Types: req.Types, Where: req.Where, Limit: int32(req.Limit),
	})
	if err != nil {
		return c.rpcError("tap "+pipe, err)
	}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if status.Code(err) == codes.FailedPrecondition {
				return errors.New(status.Convert(err).Message())
			}
			return c.rpcError("tap "+pipe, err)
		}
		rec := tap.Record{Watching: r.GetWatching(), Dropped: r.GetDropped(), End: r.GetEnd()}
		if b := r.GetEventJson(); len(b) > 0 {
			rec.Event = new(tap.Event)
			if err := json.Unmarshal(b, rec.Event); err != nil {
				return fmt.Errorf("tap %s: an event the server sent: %v", pipe, err)
			}
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
