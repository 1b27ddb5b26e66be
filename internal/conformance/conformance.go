package conformance

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// Protocols the command can test, as written after --protocol.
const (
	ProtocolGRPC  = "grpc"
	ProtocolV1    = "flowctl-v1"
	ProtocolStdio = "stdio"
	ProtocolHTTP  = "http"
)

// Defaults of Options.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultGrace     = 5 * time.Second
	DefaultBatches   = 8
	DefaultBatchSize = 4
	// MaxCredit is the largest credit, in batches, a gRPC component may
	// grant up front and still count as bounded: 1024 batches of up to 256
	// events is already a quarter of a million events held for one hop.
	MaxCredit = 1024
	// StdioReadAhead is how much input a stdio component may consume from
	// its stdin while nobody reads its stdout. Both pipes hold 64 KiB by
	// default and runtimes buffer some more; 1 MiB leaves room for all of
	// that and still catches a component that queues its input unboundedly.
	StdioReadAhead = 1 << 20
)

// Options say what to run and how hard to check.
type Options struct {
	// Protocol is grpc, flowctl-v1, stdio or http.
	Protocol string
	// Role is the component's role [processor].
	Role flow.Role
	// Command is the component's command and arguments.
	Command []string
	// Dir is the working directory ("" = the current one).
	Dir string
	// Env is extra environment for the component.
	Env map[string]string
	// Timeout bounds the start-up (registration, first answer) and every
	// answer [DefaultTimeout].
	Timeout time.Duration
	// Grace is how long the component may take to drain and exit once told
	// to stop [DefaultGrace].
	Grace time.Duration
	// Batches and BatchSize shape the exactly-once check: that many batches
	// of that many distinct events, in flight together.
	Batches, BatchSize int
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// Output receives the component's own output lines (prefixed with its
	// name); nil discards them.
	Output io.Writer
}

func (o *Options) defaults() error {
	if len(o.Command) == 0 || o.Command[0] == "" {
		return fmt.Errorf("no command: give the component's command after --, e.g. `flowctl component test -- ./my-processor`")
	}
	switch o.Protocol {
	case ProtocolGRPC, ProtocolV1, ProtocolStdio, ProtocolHTTP:
	case "":
		o.Protocol = ProtocolGRPC
	default:
		return fmt.Errorf("protocol %q: use grpc, flowctl-v1, stdio or http", o.Protocol)
	}
	switch o.Role {
	case flow.RoleProcessor, flow.RoleSink, flow.RoleSource:
	case "":
		o.Role = flow.RoleProcessor
	default:
		return fmt.Errorf("role %q: use processor, sink or source", o.Role)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Batches <= 0 {
		o.Batches = DefaultBatches
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Outcome is the result of one check.
type Outcome string

// Outcomes. A skipped check does not apply to the protocol or role (the
// detail says why); it does not fail the run.
const (
	Pass Outcome = "pass"
	Fail Outcome = "FAIL"
	Skip Outcome = "skip"
)

// Names of the checks, in the order they run and print.
const (
	CheckStart   = "start"
	CheckInfo    = "info"
	CheckHealth  = "health"
	CheckAcks    = "acks"
	CheckDrain   = "drain"
	CheckRestart = "restart"
	CheckCredits = "credits"
	CheckSIGTERM = "sigterm"
)

// Row is one line of the report.
type Row struct {
	Check   string
	Outcome Outcome
	Detail  string
}

// Report is the outcome of every check.
type Report struct {
	// Protocol, Role and Command echo what was tested.
	Protocol string
	Role     flow.Role
	Command  []string
	Rows     []Row
}

// OK reports whether no check failed.
func (r *Report) OK() bool {
	for _, row := range r.Rows {
		if row.Outcome == Fail {
			return false
		}
	}
	return true
}

// Row returns the row of check, and false when the report has none.
func (r *Report) Row(check string) (Row, bool) {
	for _, row := range r.Rows {
		if row.Check == check {
			return row, true
		}
	}
	return Row{}, false
}

func (r *Report) add(check string, o Outcome, format string, args ...any) {
	r.Rows = append(r.Rows, Row{Check: check, Outcome: o, Detail: fmt.Sprintf(format, args...)})
}

// WriteTable prints the report as an aligned table with a summary line.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "component test: %s %s over %s\n\n", r.Role, strings.Join(r.Command, " "), r.Protocol)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", row.Check, row.Outcome, oneLine(row.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var pass, fail, skip int
	for _, row := range r.Rows {
		switch row.Outcome {
		case Pass:
			pass++
		case Fail:
			fail++
		default:
			skip++
		}
	}
	verdict := "PASS"
	if fail > 0 {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintf(w, "\n%s: %d passed, %d failed, %d skipped\n", verdict, pass, fail, skip)
	return err
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
