package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/pkg/wire/controlv1"
)

func init() { register("logs", newLogsCmd) }

// logsOptions are logs' flags.
type logsOptions struct {
	server     serverFlags
	follow     bool
	tail       int
	timestamps bool
	prefix     bool
	since      string
	level      string
	output     string
}

func newLogsCmd(g *globals) *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs NAME[/COMPONENT]",
		Short: "Print what a pipeline (or one of its components) logged",
		Long: `logs prints the lines a pipeline's runs wrote, oldest first, kept by the server across
its restarts. NAME/COMPONENT keeps the lines about one component: flowctl's own records about
it and the component's own output (an external component's stdout and stderr), including a
component added later by an in-place apply. --tail N prints only the last N lines; --since
keeps the lines of the last 10m (or since an RFC 3339 time); --level warn keeps warnings and
errors (a component's own output counts as info); -o json prints one JSON object per line
with time, pipeline, component, level, source, stream, run and text. -f keeps printing new
lines until interrupted (or the pipeline is deleted).`,
		Example: `  flowctl logs payments
  flowctl logs payments/enrich --tail 20
  flowctl logs payments --since 10m --level warn
  flowctl logs payments/enrich -o json
  flowctl logs payments -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pipe, comp, _ := strings.Cut(args[0], "/")
			if pipe == "" || (strings.Contains(args[0], "/") && comp == "") {
				return fmt.Errorf("%q: use NAME or NAME/COMPONENT", args[0])
			}
			if o.output != "" && o.output != "text" && o.output != "json" {
				return fmt.Errorf("-o %q: use text or json", o.output)
			}
			if o.level != "" {
				var lv slog.Level
				if err := lv.UnmarshalText([]byte(o.level)); err != nil {
					return fmt.Errorf("--level %q: use debug, info, warn or error", o.level)
				}
			}
			if _, err := parseSince(o.since, time.Now()); err != nil {
				return err
			}
			c, err := o.server.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			return streamLogs(cmd.Context(), c, g.stdout, pipe, comp, o)
		},
	}
	addServerFlags(cmd, &o.server)
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing new lines")
	f.IntVar(&o.tail, "tail", -1, "print only the last N lines (-1: all that are kept)")
	f.BoolVar(&o.timestamps, "timestamps", false, "start each line with the time it was written (RFC 3339)")
	f.BoolVar(&o.prefix, "prefix", false, "start each line with [run N stream]")
	f.StringVar(&o.since, "since", "", "only lines written in the last DURATION (e.g. 10m) or since an RFC 3339 time")
	f.StringVar(&o.level, "level", "", "only lines of this level or above: debug, info, warn or error")
	f.StringVarP(&o.output, "output", "o", "text", "text, or json (one object per line)")
	return cmd
}

// parseSince reads --since: a duration back from now, or a time in RFC
// 3339. "" is the zero time (no bound).
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: give a positive duration such as 10m", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: give a duration such as 10m or a time such as 2026-12-06T08:00:00Z", s)
}

// logJSON is a line as -o json prints it.
type logJSON struct {
	Time      string `json:"time"`
	Pipeline  string `json:"pipeline"`
	Component string `json:"component,omitempty"`
	Level     string `json:"level,omitempty"`
	Source    string `json:"source,omitempty"`
	Stream    string `json:"stream"`
	Run       int64  `json:"run,omitempty"`
	Text      string `json:"text"`
}

// wireTail maps --tail (-1 all, 0 none, N last N) to LogsRequest.tail (0
// all, negative none, N last N).
func wireTail(n int) int32 {
	switch {
	case n < 0:
		return 0
	case n == 0:
		return -1
	}
	return int32(n)
}

// streamLogs prints log lines until the stream ends or ctx is cancelled
// (which is a normal end for -f).
func streamLogs(ctx context.Context, c *client, w io.Writer, pipe, comp string, o logsOptions) error {
	req := &controlv1.LogsRequest{
		Pipeline:  pipe,
		Component: comp,
		Tail:      wireTail(o.tail),
		Follow:    o.follow,
		Level:     o.level,
	}
	since, err := parseSince(o.since, time.Now())
	if err != nil {
		return err
	}
	if !since.IsZero() {
		req.Since = timestamppb.New(since)
	}
	stream, err := c.logs.Logs(ctx, req)
	if err != nil {
		return c.rpcError("logs of "+pipe, err)
	}
	for {
		l, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil || status.Code(err) == codes.Canceled {
				return nil
			}
			// The caller's deadline travels to the server as grpc-timeout,
			// and the server may end the stream a moment before ctx's own
			// timer fires: that is the deadline ending the follow, too.
			if _, ok := ctx.Deadline(); ok && status.Code(err) == codes.DeadlineExceeded {
				<-ctx.Done()
				return nil
			}
			return c.rpcError("logs of "+pipe, err)
		}
		if o.output == "json" {
			b, err := json.Marshal(logJSON{
				Time: asTime(l.GetTime()).UTC().Format(time.RFC3339Nano), Pipeline: l.GetPipeline(),
				Component: l.GetComponent(), Level: l.GetLevel(), Source: l.GetSource(),
				Stream: l.GetStream(), Run: l.GetRunId(), Text: l.GetText(),
			})
			if err != nil {
				return err
			}
			if _, err := w.Write(append(b, '\n')); err != nil {
				return fmt.Errorf("write logs: %w", err)
			}
			continue
		}
		var b strings.Builder
		if o.timestamps {
			b.WriteString(asTime(l.GetTime()).Local().Format(time.RFC3339Nano))
			b.WriteByte(' ')
		}
		if o.prefix {
			fmt.Fprintf(&b, "[run %d %s] ", l.GetRunId(), l.GetStream())
		}
		if comp == "" && l.GetSource() == "component" && l.GetComponent() != "" {
			// A component's own output, among every line: say whose.
			b.WriteString(l.GetComponent())
			b.WriteString(" | ")
		}
		b.WriteString(l.GetText())
		b.WriteByte('\n')
		if _, err := io.WriteString(w, b.String()); err != nil {
			return fmt.Errorf("write logs: %w", err)
		}
	}
}
