package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/pkg/wire/controlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

func init() { register("describe", newDescribeCmd) }

// describe shows this many recent runs and log lines.
const (
	describeRuns = 5
	describeLogs = 10
)

func newDescribeCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "describe pipeline NAME",
		Short: "Show one pipeline in detail: status, conditions, components, runs, recent logs",
		Long: `describe prints everything the server knows about one pipeline: what was applied
(revision, hash, file, components), its status and conditions, each component's health and
counters, its most recent runs and its last log lines.`,
		Example: `  flowctl describe pipeline payments
  flowctl describe pipeline/payments`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := pipelineArg(args)
			if err != nil {
				return err
			}
			c, err := sf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			return describePipeline(cmd.Context(), c, g.stdout, name, time.Now())
		},
	}
	addServerFlags(cmd, &sf)
	return cmd
}

// pipelineArg reads "pipeline NAME" or "pipeline/NAME" (any pipeline alias).
func pipelineArg(args []string) (string, error) {
	kind, name := args[0], ""
	if len(args) == 2 {
		name = args[1]
	} else if k, n, ok := strings.Cut(args[0], "/"); ok {
		kind, name = k, n
	}
	res, err := parseResource(kind)
	if err != nil {
		return "", err
	}
	if res != resPipelines {
		return "", fmt.Errorf("only pipelines can be named here, not %s", res)
	}
	if name == "" {
		return "", errors.New("no pipeline name given: use `pipeline NAME`")
	}
	return name, nil
}

// describePipeline writes the description of one pipeline.
func describePipeline(ctx context.Context, c *client, w io.Writer, name string, now time.Time) error {
	resp, err := c.pipelines.Get(ctx, &controlv1.GetPipelineRequest{Name: name})
	if err != nil {
		return c.rpcError("get pipeline/"+name, err)
	}
	p := resp.GetPipeline()
	runs, err := c.runs.ListRuns(ctx, &controlv1.ListRunsRequest{Pipeline: name, Limit: describeRuns})
	if err != nil {
		return c.rpcError("list runs of pipeline/"+name, err)
	}
	lines, logErr := recentLogs(ctx, c, name, describeLogs)
	live := registryCounters(ctx, c)

	st := p.GetStatus()
	kv := newTable(w)
	field := func(k, v string) { kv.row(k+":", v) }
	field("Name", p.GetName())
	field("Revision", revisionLine(p))
	field("Hash", p.GetHash())
	field("File", p.GetFile())
	field("Directory", p.GetDir())
	field("Created", timeLine(asTime(p.GetCreatedAt()), now))
	field("Updated", timeLine(asTime(p.GetUpdatedAt()), now))
	field("Spec", specSummary(p))
	field("Phase", phaseLine(st, now))
	field("PID", pidOrNone(st.GetPid()))
	field("Restarts", strconv.Itoa(int(st.GetRestarts())))
	if st.GetLastError() != "" {
		field("Last error", st.GetLastError())
	}
	if st.GetNextRetry() != nil {
		field("Next retry", timeLine(asTime(st.GetNextRetry()), now))
	}
	if err := kv.flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nConditions:")
	if len(st.GetConditions()) == 0 {
		fmt.Fprintln(w, "  <none>")
	} else {
		t := newTable(indent(w), "TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
		for _, cond := range st.GetConditions() {
			t.row(cond.GetType(), conditionStatusName(cond.GetStatus()), cond.GetReason(),
				ageSince(asTime(cond.GetLastTransitionTime()), now), cond.GetMessage())
		}
		_ = t.flush()
	}

	fmt.Fprintln(w, "\nComponents:")
	if len(p.GetComponents()) == 0 {
		fmt.Fprintln(w, "  <none>")
	} else {
		t := newTable(indent(w), "NAME", "ROLE", "KIND", "INPUTS", "HEALTH", "LAST-HEARTBEAT", "IN", "OUT", "ERRORS", "OTHER")
		for _, cs := range p.GetComponents() {
			hb := ""
			if cs.GetLastHeartbeat() != nil {
				hb = ageSince(asTime(cs.GetLastHeartbeat()), now)
			}
			cnt := cs.GetCounters()
			if len(cnt) == 0 {
				cnt = live[cs.GetRegistryId()]
			}
			t.row(cs.GetName(), cs.GetRole(), cs.GetKind(), strings.Join(cs.GetInputs(), ","),
				healthName(cs.GetHealth()), hb,
				counter(cnt, "in"), counter(cnt, "out"), counter(cnt, "errors"), otherCounters(cnt))
		}
		_ = t.flush()
	}

	fmt.Fprintf(w, "\nRecent runs:\n")
	if len(runs.GetRuns()) == 0 {
		fmt.Fprintln(w, "  <none>")
	} else {
		t := newTable(indent(w), "ID", "REVISION", "STATE", "STARTED", "DURATION", "PID", "REASON")
		for _, r := range runs.GetRuns() {
			t.row(strconv.FormatInt(r.GetId(), 10), strconv.FormatInt(r.GetRevision(), 10),
				runStateName(r.GetState()), ageSince(asTime(r.GetStartedAt()), now),
				runDuration(r, now), pidOrNone(r.GetPid()), r.GetReason())
		}
		_ = t.flush()
	}

	fmt.Fprintf(w, "\nRecent logs:\n")
	switch {
	case logErr != nil:
		fmt.Fprintf(w, "  <unavailable: %v>\n", logErr)
	case len(lines) == 0:
		fmt.Fprintln(w, "  <none>")
	default:
		for _, l := range lines {
			if text := strings.TrimRight(l.GetText(), " \t"); text != "" {
				fmt.Fprintf(w, "  %s\n", text)
			} else {
				fmt.Fprintln(w)
			}
		}
	}
	return nil
}

// registryCounters reads every registered component's counters from its
// last heartbeat (the metrics are decimal strings), by registry id. It is
// the fallback when the pipeline's view carries no counters; a failure
// leaves the counters unknown rather than failing describe.
func registryCounters(ctx context.Context, c *client) map[string]map[string]int64 {
	resp, err := c.registry.List(ctx, &streamv1.ListRequest{})
	if err != nil {
		return nil
	}
	out := map[string]map[string]int64{}
	for _, cs := range resp.GetComponents() {
		m := map[string]int64{}
		for k, v := range cs.GetMetrics() {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				m[k] = n
			}
		}
		out[cs.GetRegistration().GetId()] = m
	}
	return out
}

// recentLogs reads the last n log lines of a pipeline.
func recentLogs(ctx context.Context, c *client, name string, n int) ([]*controlv1.LogLine, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := c.logs.Logs(ctx, &controlv1.LogsRequest{Pipeline: name, Tail: int32(n)})
	if err != nil {
		return nil, c.rpcError("logs", err)
	}
	var out []*controlv1.LogLine
	for {
		l, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, c.rpcError("logs", err)
		}
		out = append(out, l)
	}
}

// indent writes everything two spaces in (a sub-table of describe).
func indent(w io.Writer) io.Writer { return &indentWriter{w: w, bol: true} }

type indentWriter struct {
	w   io.Writer
	bol bool
}

func (iw *indentWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		if iw.bol {
			if _, err := io.WriteString(iw.w, "  "); err != nil {
				return 0, err
			}
		}
		if _, err := iw.w.Write([]byte{b}); err != nil {
			return 0, err
		}
		iw.bol = b == '\n'
	}
	return len(p), nil
}

// revisionLine is "3", or "3 (revision 2 still running)" while the child
// runs an older one.
func revisionLine(p *controlv1.Pipeline) string {
	s := strconv.FormatInt(p.GetRevision(), 10)
	if rr := p.GetStatus().GetRunningRevision(); rr != 0 && rr != p.GetRevision() {
		s += fmt.Sprintf(" (revision %d still running)", rr)
	}
	return s
}

// phaseLine is "Running (for 5m)".
func phaseLine(st *controlv1.PipelineStatus, now time.Time) string {
	s := phaseName(st.GetPhase())
	if since := asTime(st.GetSince()); !since.IsZero() {
		s += " (for " + humanDuration(now.Sub(since)) + ")"
	}
	return s
}

// timeLine is an absolute time with how long ago (or from now) it is.
func timeLine(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	abs := t.Local().Format(time.RFC3339)
	if d := now.Sub(t); d >= 0 {
		return abs + " (" + humanDuration(d) + " ago)"
	}
	return abs + " (in " + humanDuration(t.Sub(now)) + ")"
}

// specSummary counts the components by role.
func specSummary(p *controlv1.Pipeline) string {
	counts := map[string]int{}
	for _, c := range p.GetComponents() {
		counts[c.GetRole()]++
	}
	var parts []string
	for _, role := range []string{"source", "processor", "sink"} {
		if n := counts[role]; n > 0 {
			parts = append(parts, plural(n, role))
		}
	}
	if counts["dead_letter"] > 0 {
		parts = append(parts, "a dead letter sink")
	}
	if len(parts) == 0 {
		return "no components"
	}
	return strings.Join(parts, ", ")
}

// counter prints one counter, "" when absent.
func counter(m map[string]int64, k string) string {
	v, ok := m[k]
	if !ok {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}

// otherCounters prints the non-zero counters besides in, out and errors.
func otherCounters(m map[string]int64) string {
	var keys []string
	for k, v := range m {
		if k != "in" && k != "out" && k != "errors" && v != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.FormatInt(m[k], 10))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}
