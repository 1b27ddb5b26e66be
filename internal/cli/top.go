package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/tap"
	"github.com/flowctl/flowctl/pkg/wire/controlv1"
)

func init() { register("top", newTopCmd) }

type topOptions struct {
	server   serverFlags
	socket   string
	interval time.Duration
	once     bool
}

func newTopCmd(g *globals) *cobra.Command {
	var o topOptions
	cmd := &cobra.Command{
		Use:   "top PIPELINE",
		Short: "Watch a running pipeline's components live: rates, queues, latency, errors, restarts",
		Long: `top shows one row per component of a running pipeline, refreshed every second: its role
and health, events in and out per second, how full its input queue is, the p99 time of the
batches of the last interval (a processor's or sink's own time per batch; a source's, end to
end: from emitting a batch until every sink wrote all that came of it), errors, dead letters
and restarts.

Keys: ↑/↓ (or k/j) select a component, s changes the sort column, t opens the tap of the
selected component (the last events it emitted; a sink: what it was handed), l its logs
(pipelines the server runs), esc closes the pane, q quits.

It finds the pipeline like flowctl tap does: a "flowctl run" of this user on this machine
(its socket), else the flowctl server. --once prints the table once and exits.`,
		Example: `  flowctl top payments
  flowctl top payments --once`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.interval < 100*time.Millisecond {
				return fmt.Errorf("--interval %s: give at least 100ms", o.interval)
			}
			if !o.once && !(isTerminal(g.stdin) && isTerminal(g.stdout)) {
				// The live view draws a screen and reads keys: into a pipe
				// it would write control codes, and without a keyboard it
				// cannot start.
				return errors.New("top draws a live screen and needs a terminal (standard input and output): use --once to print the table for a script or a pipe")
			}
			src, closeSrc, err := openLiveSource(cmd.Context(), o.server, o.socket, args[0])
			if err != nil {
				return err
			}
			defer closeSrc()
			if o.once {
				return topOnce(cmd.Context(), g.stdout, src, o.interval)
			}
			m := newTopModel(cmd.Context(), src, o.interval)
			p := tea.NewProgram(m, tea.WithContext(cmd.Context()), tea.WithAltScreen(),
				tea.WithInput(g.stdin), tea.WithOutput(g.stdout))
			m.send = p.Send
			_, err = p.Run()
			m.stopPane()
			if errors.Is(err, tea.ErrProgramKilled) && cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	addServerFlags(cmd, &o.server)
	f := cmd.Flags()
	f.StringVar(&o.socket, "socket", "", "the socket of the flowctl run to watch (as given to its --socket) [$XDG_STATE_HOME/flowctl/runs/PIPELINE.sock, else the server]")
	f.DurationVar(&o.interval, "interval", time.Second, "refresh interval")
	f.BoolVar(&o.once, "once", false, "print the table once (after one interval, for the rates) and exit")
	return cmd
}

// liveSource is a running pipeline, through its run's socket or the server.
type liveSource interface {
	Name() string
	Stats(ctx context.Context) (liveStats, error)
	Tap(ctx context.Context, req tap.Request, fn func(tap.Record) error) error
	// Logs streams the component's new log lines; errNoLogs when the
	// source keeps none (a local run prints them in its own terminal).
	Logs(ctx context.Context, component string, fn func(string) error) error
}

var errNoLogs = errors.New("the logs of a local run are in the terminal that runs it (flowctl server keeps logs for flowctl logs)")

// openLiveSource finds pipe like tap does: --socket, else a local run's
// default socket, else the server.
func openLiveSource(ctx context.Context, sf serverFlags, socket, pipe string) (liveSource, func(), error) {
	if socket == "" && !sf.given() {
		if def, err := defaultRunSocket(pipe); err == nil {
			if _, err := os.Stat(def); err == nil {
				socket = def
			}
		}
	}
	if socket != "" {
		return &runSource{name: pipe, client: unixHTTPClient(socket), sock: socket}, func() {}, nil
	}
	c, err := sf.connect(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w\n(no `flowctl run` of pipeline %q on this machine either: its socket would be %s)", err, pipe, defaultSocketHint(pipe))
	}
	return &serverSource{name: pipe, c: c}, c.close, nil
}

// runSource reads a local run through its socket.
type runSource struct {
	name   string
	sock   string
	client *http.Client
}

func (s *runSource) Name() string { return s.name }

func (s *runSource) Stats(ctx context.Context) (liveStats, error) {
	var st liveStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://run"+liveStatsPath, nil)
	if err != nil {
		return st, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if isNoListener(err) {
			return st, fmt.Errorf("no run of pipeline %q answers on %s (it ended?)", s.name, s.sock)
		}
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return st, fmt.Errorf("stats of %s: %s %s", s.name, resp.Status, strings.TrimSpace(string(b)))
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (s *runSource) Tap(ctx context.Context, req tap.Request, fn func(tap.Record) error) error {
	return tap.Watch(ctx, s.client, "http://run", req, fn)
}

func (s *runSource) Logs(context.Context, string, func(string) error) error { return errNoLogs }

// serverSource reads a pipeline the server runs.
type serverSource struct {
	name string
	c    *client
}

func (s *serverSource) Name() string { return s.name }

func (s *serverSource) Stats(ctx context.Context) (liveStats, error) {
	var st liveStats
	resp, err := controlv1.NewLiveServiceClient(s.c.cc).Stats(ctx, &controlv1.LiveStatsRequest{Pipeline: s.name})
	if err != nil {
		return st, s.c.rpcError("top "+s.name, err)
	}
	return st, json.Unmarshal(resp.GetStatsJson(), &st)
}

func (s *serverSource) Tap(ctx context.Context, req tap.Request, fn func(tap.Record) error) error {
	return tapFromServer(ctx, s.c, s.name, req, fn)
}

func (s *serverSource) Logs(ctx context.Context, component string, fn func(string) error) error {
	stream, err := s.c.logs.Logs(ctx, &controlv1.LogsRequest{Pipeline: s.name, Component: component, Tail: 20, Follow: true})
	if err != nil {
		return s.c.rpcError("logs", err)
	}
	for {
		l, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return s.c.rpcError("logs", err)
		}
		if err := fn(l.GetText()); err != nil {
			return err
		}
	}
}

// topRow is one component's line, computed from two snapshots.
type topRow struct {
	// order is the component's place in the pipeline (topological).
	order              int
	name, role, health string
	inRate, outRate    float64
	queueDepth         int
	queueCap           int
	p99                float64 // seconds; < 0 when no batch finished
	errors, dead       int64
	restarts           int64
}

// topRows computes the rows from the previous and the current snapshot,
// dt apart (prev nil: rates are 0).
func topRows(prev *liveStats, cur liveStats, dt time.Duration) []topRow {
	before := map[string]liveComponent{}
	if prev != nil {
		for _, c := range prev.Components {
			before[c.Name] = c
		}
	}
	secs := dt.Seconds()
	rows := make([]topRow, 0, len(cur.Components))
	for i, c := range cur.Components {
		r := topRow{order: i, name: c.Name, role: c.Role, health: c.Health, queueDepth: c.QueueDepth, queueCap: c.QueueCapacity,
			errors: c.Errors, dead: c.DeadLettered, restarts: c.Restarts, p99: -1}
		if c.DeadLetter {
			r.role = "dead letter"
		}
		if r.health == "" {
			r.health = "healthy"
		}
		if p, ok := before[c.Name]; ok && secs > 0 {
			r.inRate = float64(c.In-p.In) / secs
			r.outRate = float64(c.Out-p.Out) / secs
			// A hop's own time; a source's, end to end.
			if c.Role == "source" {
				r.p99 = p99(cur.LatencyBoundsSeconds, p.EndToEndBuckets, c.EndToEndBuckets)
			} else {
				r.p99 = p99(cur.LatencyBoundsSeconds, p.ProcessingBuckets, c.ProcessingBuckets)
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// p99 is the upper bound of the bucket holding the 99th percentile of the
// batches finished between two histograms (-1: none finished; +Inf past
// the last bound).
func p99(bounds []float64, before, after []int64) float64 {
	var total int64
	delta := make([]int64, len(after))
	for i := range after {
		d := after[i]
		if i < len(before) {
			d -= before[i]
		}
		if d < 0 {
			d = 0
		}
		delta[i] = d
		total += d
	}
	if total == 0 {
		return -1
	}
	want := (total*99 + 99) / 100
	var seen int64
	for i, d := range delta {
		seen += d
		if seen >= want {
			if i < len(bounds) {
				return bounds[i]
			}
			break
		}
	}
	return inf
}

var inf = func() float64 { var z float64; return 1 / z }()

// Sort columns of top.
var topSorts = []string{"pipeline order", "in/s", "out/s", "queue", "p99", "errors", "name"}

func sortRows(rows []topRow, by int) {
	less := map[int]func(a, b topRow) bool{
		0: func(a, b topRow) bool { return a.order < b.order },
		1: func(a, b topRow) bool { return a.inRate > b.inRate },
		2: func(a, b topRow) bool { return a.outRate > b.outRate },
		3: func(a, b topRow) bool { return fill(a) > fill(b) },
		4: func(a, b topRow) bool { return a.p99 > b.p99 },
		5: func(a, b topRow) bool { return a.errors+a.dead > b.errors+b.dead },
		6: func(a, b topRow) bool { return a.name < b.name },
	}[by]
	if less != nil {
		sort.SliceStable(rows, func(i, j int) bool { return less(rows[i], rows[j]) })
	}
}

func fill(r topRow) float64 {
	if r.queueCap == 0 {
		return 0
	}
	return float64(r.queueDepth) / float64(r.queueCap)
}

// renderTable writes the rows as an aligned table, marking row sel.
func renderTable(b *strings.Builder, rows []topRow, sel int) {
	fmt.Fprintf(b, "  %-20s %-11s %-9s %9s %9s %12s %9s %7s %7s %8s\n",
		"COMPONENT", "ROLE", "HEALTH", "IN/S", "OUT/S", "QUEUE", "P99", "ERRORS", "DEAD", "RESTARTS")
	for i, r := range rows {
		mark := "  "
		if i == sel {
			mark = "> "
		}
		queue := "-"
		if r.queueCap > 0 {
			queue = fmt.Sprintf("%d/%d", r.queueDepth, r.queueCap)
		}
		fmt.Fprintf(b, "%s%-20s %-11s %-9s %9s %9s %12s %9s %7d %7d %8d\n", mark, clip(r.name, 20), r.role, r.health,
			rate(r.inRate), rate(r.outRate), queue, latency(r.p99), r.errors, r.dead, r.restarts)
	}
}

func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func latency(s float64) string {
	switch {
	case s < 0:
		return "-"
	case s == inf:
		return ">10s"
	case s < 1e-3:
		return fmt.Sprintf("≤%.0fµs", s*1e6)
	case s < 1:
		return fmt.Sprintf("≤%gms", s*1e3)
	}
	return fmt.Sprintf("≤%gs", s)
}

// topOnce prints one table after one interval, for scripts.
func topOnce(ctx context.Context, w io.Writer, src liveSource, interval time.Duration) error {
	first, err := src.Stats(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(interval):
	}
	cur, err := src.Stats(ctx)
	if err != nil {
		return err
	}
	var b strings.Builder
	renderTable(&b, topRows(&first, cur, time.Since(t0)), -1)
	_, err = io.WriteString(w, b.String())
	return err
}

// isTerminal reports whether f is a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && (isatty.IsTerminal(file.Fd()) || isatty.IsCygwinTerminal(file.Fd()))
}
