package cli

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/node"
	"github.com/flowctl/flowctl/internal/spec"
)

func init() { register("node", newNodeCmd) }

type nodeOptions struct {
	file, component, listen, httpAddr, stateDir string
	peers                                       []string
	tls                                         node.TLS
	insecure                                    bool
	grace                                       time.Duration
	// memoryLimit is --memory-limit, as for flowctl run.
	memoryLimit string
}

func newNodeCmd(g *globals) *cobra.Command {
	var o nodeOptions
	cmd := &cobra.Command{
		Use:   "node -f FILE --component NAME [--listen ADDR] [--peer NAME=HOST:PORT]...",
		Short: "Run one component of a pipeline as a service, joined to the other components' nodes over gRPC",
		Long: `node runs the one component --component names, out of the pipeline file; the other
components run in other nodes (other processes, containers, machines). This is what every
translated deployment (Compose, Kubernetes, Nomad) runs.

Upstream nodes push batches to this one over flowctl's stream protocol (SinkService.Write) on
--listen; it pushes its output to the node of each downstream component (and failed events to
the dead_letter sink's node) at --peer NAME=HOST:PORT, by default NAME:7000 (the component's
name as a DNS name, as Compose and Kubernetes service names give). A list of addresses
(--peer NAME=A:7000,B:7000) or a DNS name with several addresses reaches the replicas of a
component; streams are balanced over them (round robin).

--peer with the node's own component name (an image or command component) reaches that
component at the address instead of starting it: it runs elsewhere (its own container) and
serves its protocol there without registering — grpc (flowctl.stream.v1; the Go SDK does so
without ENABLE_FLOWCTL=true, on PORT) or http. That link has no TLS: keep it on a private
network.

A batch is acknowledged to the upstream node only when everything derived from it is done here
and acknowledged downstream, so delivery is at-least-once across nodes: after a node crashes,
the batches it had not acknowledged are sent to it again (counted as redelivered; they may
be duplicates). A downstream node that is down is retried with backoff, and the upstream is
held back meanwhile; nothing is dropped. Credits carry backpressure end to end.

A bounded source's node ends once its source is exhausted and everything was acknowledged: it
sends End downstream and exits 0; a node ends likewise once every upstream node sent End. So a
bounded pipeline split over nodes ends as "flowctl run" does. SIGTERM drains within --grace
and exits 0 without sending End (the node is expected back).

Plaintext only on loopback: off loopback give --tls-cert, --tls-key and --tls-ca (mutual TLS
both ways; "flowctl certs init" makes server.crt/server.key/ca.crt that serve) or --insecure.`,
		Example: `  flowctl node -f pipeline.yaml --component enrich --listen 0.0.0.0:7000 \
      --tls-cert server.crt --tls-key server.key --tls-ca ca.crt --http 0.0.0.0:9090
  flowctl node -f pipeline.yaml --component events --listen 127.0.0.1:7001 \
      --peer large=127.0.0.1:7002 --peer refunds=127.0.0.1:7003 --state-dir ./state`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := fileArg(o.file, args)
			if err != nil {
				return err
			}
			o.file = path
			return runNode(cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "pipeline file")
	f.StringVar(&o.component, "component", "", "name of the component this node runs (required)")
	f.StringVar(&o.listen, "listen", node.DefaultListen, "address upstream nodes send to")
	f.StringArrayVar(&o.peers, "peer", nil, "NAME=HOST:PORT[,HOST:PORT...]: where the node of downstream component NAME listens [NAME:7000]; with the node's own component name, where that component serves (nothing is started)")
	f.StringVar(&o.tls.CertFile, "tls-cert", "", "certificate of this node (served, and presented to downstream nodes)")
	f.StringVar(&o.tls.KeyFile, "tls-key", "", "key of --tls-cert")
	f.StringVar(&o.tls.CAFile, "tls-ca", "", "CA that signs the other nodes' certificates (mutual TLS)")
	f.BoolVar(&o.insecure, "insecure", false, "allow plaintext between nodes off loopback (prints a warning)")
	f.StringVar(&o.httpAddr, "http", "", "serve /healthz, /readyz and /metrics on this address")
	f.StringVar(&o.stateDir, "state-dir", "", "directory of the checkpoints [$XDG_STATE_HOME/flowctl/checkpoints or ~/.local/state/flowctl/checkpoints]")
	f.DurationVar(&o.grace, "grace", engine.DefaultGrace, "how long a stopped node may drain what it already took")
	f.StringVar(&o.memoryLimit, "memory-limit", "", memoryLimitUsage)
	return cmd
}

func runNode(cmd *cobra.Command, g *globals, o nodeOptions) error {
	fail := func(format string, a ...any) error {
		fmt.Fprintf(g.stderr, "flowctl node: "+format+"\n", a...)
		return &exitError{code: 1}
	}
	if o.component == "" {
		return fail("--component is required: name the component of %s this node runs", o.file)
	}
	if o.grace <= 0 {
		return fail("--grace %s: give a positive duration such as 10s", o.grace)
	}
	peers := map[string]node.Peer{}
	for _, v := range o.peers {
		name, p, err := node.ParsePeer(v)
		if err != nil {
			return fail("%v", err)
		}
		if _, dup := peers[name]; dup {
			return fail("--peer %s given twice: list several addresses as %s=A:7000,B:7000", name, name)
		}
		peers[name] = p
	}
	log, err := g.logger()
	if err != nil {
		return err
	}
	// A node runs its component's part of the engine as flowctl run runs
	// the whole, so it takes the same collector target, before the file's
	// expressions are compiled (run_gc.go).
	defer resetGC(currentGC())
	gcs, err := applyGCTarget(o.memoryLimit, os.Getenv)
	if err != nil {
		return fail("%v", err)
	}
	log.Debug("garbage collector", "target", gcs.String())
	reg := components.NewRegistry()
	pl, diags, err := spec.Load(o.file, spec.Options{Registry: reg, Stdin: g.stdin})
	if err != nil {
		return fail("%v", err)
	}
	for _, d := range diags {
		fmt.Fprintln(g.stderr, d.String())
	}
	if diags.HasErrors() || pl == nil {
		return fail("%s does not validate; fix the errors above (flowctl validate -f %s checks it)", o.file, o.file)
	}
	if o.insecure {
		fmt.Fprintln(g.stderr, node.InsecureWarning)
	}
	if o.httpAddr != "" {
		if w := httpExposureWarning(o.httpAddr); w != "" {
			fmt.Fprintln(g.stderr, strings.Replace(w, "flowctl run:", "flowctl node:", 1))
		}
	}
	if err := resolveComponentRefs(cmd.Context(), pl, g.stderr, "flowctl node"); err != nil {
		return fail("%v", err)
	}
	res, err := node.Run(cmd.Context(), node.Options{
		Pipeline: pl, Registry: reg, Component: o.component, Listen: o.listen, Peers: peers,
		TLS: o.tls, Insecure: o.insecure, HTTP: o.httpAddr, StateDir: o.stateDir, Grace: o.grace,
		Logger: log, Output: g.componentOutput(),
		OnListening: func(grpcAddr, httpAddr string) {
			// One line each, for people and for scripts waiting on them;
			// "listening on" comes last: once it is out, both serve.
			if httpAddr != "" {
				fmt.Fprintf(g.stderr, "flowctl node: %s serving http on %s\n", o.component, httpAddr)
			}
			if grpcAddr != "" {
				fmt.Fprintf(g.stderr, "flowctl node: %s listening on %s\n", o.component, grpcAddr)
			}
		},
	})
	printNodeSummary(g, o.component, res, err)
	if err != nil {
		return fail("node %q: %v", o.component, err)
	}
	return nil
}

// printNodeSummary writes the node's last line: finished, stopped by a
// signal (drained), or failed with err (which is printed after it).
func printNodeSummary(g *globals, name string, res node.Result, err error) {
	i := slices.IndexFunc(res.Stats.Components, func(c engine.ComponentStats) bool { return c.Name == name })
	var in, out, failed int64
	if i >= 0 {
		c := res.Stats.Components[i]
		in, out, failed = c.In, c.Out, c.Errors
	}
	how := "stopped (drained; no End sent)"
	switch {
	case err != nil:
		how = "failed (no End sent)"
	case res.Completed:
		how = "finished (End sent downstream)"
	}
	fmt.Fprintf(g.stderr, "flowctl node: %s %s: in %d, out %d, failed %d; from upstream nodes %d batches, %d redelivered (%d events, possible duplicates)\n",
		name, how, in, out, failed, res.Received, res.RedeliveredBatches, res.RedeliveredEvents)
}
