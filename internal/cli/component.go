package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/conformance"
	"github.com/flowctl/flowctl/internal/flow"
)

func init() { register("component", newComponentCmd) }

func newComponentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "component",
		Short: "Work with external components (your own code run by flowctl)",
	}
	cmd.AddCommand(newComponentTestCmd(g))
	return cmd
}

// componentTestJSON is the `-o json` output of component test.
type componentTestJSON struct {
	Protocol string              `json:"protocol"`
	Role     string              `json:"role"`
	Command  []string            `json:"command"`
	Pass     bool                `json:"pass"`
	Checks   []componentCheckRow `json:"checks"`
}

// componentCheckRow is one row of componentTestJSON: result is pass, fail
// or skip.
type componentCheckRow struct {
	Check  string `json:"check"`
	Result string `json:"result"`
	Detail string `json:"detail"`
}

func newComponentTestCmd(g *globals) *cobra.Command {
	var (
		opts   conformance.Options
		role   string
		env    []string
		output string
	)
	cmd := &cobra.Command{
		Use:   "test [flags] -- COMMAND [ARGS...]",
		Short: "Run one external component alone and check it keeps flowctl's protocol",
		Long: `test starts COMMAND the way a pipeline would (process driver, the component environment,
the embedded control plane for grpc and flowctl-v1) and checks, printing one row each:

  start    it starts and becomes reachable within --timeout (registered / pipes open / GET /health)
  info     grpc, flowctl-v1: GetInfo answers with the right role; stdio, http (no such
           call): a first batch is answered within --timeout
  health   grpc, flowctl-v1: Health says HEALTHY; http: /health answers; stdio: skipped
  acks     batches of distinct events in flight together are each answered exactly once:
           none missing, none twice
  drain    stopped with batches in flight (SIGTERM; end of stdin for stdio) it answers them
           and exits within --grace
  restart  started again, it is ready and answers again
  credits  it does not read unboundedly ahead: grpc — it grants a bounded credit and refuses
           a burst beyond it; stdio — with its stdout unread it stops consuming stdin
           within 1 MiB; skipped for http and flowctl-v1, which have no credits
  sigterm  idle, it exits within --grace of SIGTERM

The exit status is 0 when no check failed and 1 otherwise.`,
		Example: `  flowctl component test -- ./my-processor
  flowctl component test --protocol stdio -- python3 examples/python-stdio/processor.py
  flowctl component test --protocol grpc --role sink --grace 2s -- go run ./my-sink`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() < 0 || cmd.ArgsLenAtDash() > 0 {
				return fmt.Errorf("put the component's command after --: flowctl component test [flags] -- COMMAND [ARGS...]")
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: use text or json", output)
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			opts.Command = args
			opts.Role = flow.Role(role)
			opts.Logger = log
			opts.Output = g.stderr
			opts.Env = map[string]string{}
			for _, kv := range env {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--env %q: use KEY=VALUE", kv)
				}
				opts.Env[k] = v
			}
			rep, err := conformance.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if output == "json" {
				out := componentTestJSON{Protocol: rep.Protocol, Role: string(rep.Role), Command: rep.Command, Pass: rep.OK()}
				for _, row := range rep.Rows {
					out.Checks = append(out.Checks, componentCheckRow{row.Check, strings.ToLower(string(row.Outcome)), row.Detail})
				}
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return fmt.Errorf("write report: %w", err)
				}
			} else if err := rep.WriteTable(g.stdout); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if !rep.OK() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Protocol, "protocol", conformance.ProtocolGRPC, "protocol the component speaks: grpc, stdio, http or flowctl-v1")
	f.StringVar(&role, "role", string(flow.RoleProcessor), "the component's role: processor, sink or source")
	f.DurationVar(&opts.Timeout, "timeout", conformance.DefaultTimeout, "how long start-up and each answer may take")
	f.DurationVar(&opts.Grace, "grace", conformance.DefaultGrace, "how long it may take to drain and exit once told to stop")
	f.IntVar(&opts.Batches, "batches", conformance.DefaultBatches, "batches in flight together in the acks check")
	f.IntVar(&opts.BatchSize, "batch-size", conformance.DefaultBatchSize, "events per batch in the acks check")
	f.StringVar(&opts.Dir, "dir", "", "working directory of the component (default: the current one)")
	f.StringArrayVar(&env, "env", nil, "extra environment for the component, KEY=VALUE (repeatable)")
	f.StringVarP(&output, "output", "o", "text", "report format: text or json")
	return cmd
}
