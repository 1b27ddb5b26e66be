package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/wire/controlv1"
)

func init() { subcommands = append(subcommands, newLogsCmd) }

// logsOptions are logs' flags.
type logsOptions struct {
	server     serverFlags
	follow     bool
	tail       int
	timestamps bool
	prefix     bool
}

func newLogsCmd(g *globals) *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs NAME[/COMPONENT]",
		Short: "Print what a pipeline (or one of its components) logged",
		Long: `logs prints the lines a pipeline's runs wrote, oldest first, kept by the server across
its restarts. NAME/COMPONENT keeps the lines about one component. --tail N prints only the
last N lines; -f keeps printing new lines until interrupted (or the pipeline is deleted).`,
		Example: `  flowctl logs payments
  flowctl logs payments/enrich --tail 20
  flowctl logs payments -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pipe, comp, _ := strings.Cut(args[0], "/")
			if pipe == "" {
				return fmt.Errorf("%q: use NAME or NAME/COMPONENT", args[0])
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
	return cmd
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
	stream, err := c.logs.Logs(ctx, &controlv1.LogsRequest{
		Pipeline:  pipe,
		Component: comp,
		Tail:      wireTail(o.tail),
		Follow:    o.follow,
	})
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
		var b strings.Builder
		if o.timestamps {
			b.WriteString(asTime(l.GetTime()).Local().Format(time.RFC3339Nano))
			b.WriteByte(' ')
		}
		if o.prefix {
			fmt.Fprintf(&b, "[run %d %s] ", l.GetRunId(), l.GetStream())
		}
		b.WriteString(l.GetText())
		b.WriteByte('\n')
		if _, err := io.WriteString(w, b.String()); err != nil {
			return fmt.Errorf("write logs: %w", err)
		}
	}
}
