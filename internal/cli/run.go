package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/external"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/metrics"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/internal/tap"
	"github.com/flowctl/flowctl/internal/tlsutil"
)

func init() { register("run", newRunCmd) }

// runOptions are run's flags.
type runOptions struct {
	file     string
	grace    time.Duration
	httpAddr string
	// httpTokenFile holds the dashboard's token (else a random one).
	httpTokenFile string
	socket        string
	watch         bool
	// cpuProfile, if set, receives a CPU profile of the run (hidden flag,
	// for the benchmark notes).
	cpuProfile string
	// memProfile, if set, receives a heap profile taken one second into
	// the run (hidden flag: what is live while events flow).
	memProfile string
	// dir, if set, resolves relative paths instead of the file's
	// directory (flowctl server runs a stored copy of an applied file).
	dir string
	// report* make the run report to a flowctl server (see
	// internal/report): its components are registered there and
	// heartbeat their counters.
	reportTo, reportCA, reportCert, reportKey, reportTokenFile string
	revision, runID                                            int64
	// heartbeat and heartbeatTTL tune the health of external components
	// that register with the embedded control plane.
	heartbeat, heartbeatTTL time.Duration
	// reloadFrom is the file a SIGHUP applies [-f]; reloadRevisionFile,
	// if set, holds the revision to report after a reload (flowctl
	// server). See run_reload.go.
	reloadFrom, reloadRevisionFile string
	// stateDir holds the checkpoints (run_state.go); fromStart forgets
	// them first.
	stateDir           string
	fromStart          bool
	checkpointInterval time.Duration
	// allowDrops lets a run that dropped events exit 0 (see checkDrops).
	allowDrops bool
	// memoryLimit is --memory-limit: the collector's soft limit
	// (run_gc.go), "" for flowctl's default.
	memoryLimit string
}

func newRunCmd(g *globals) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run -f FILE",
		Short: "Run a pipeline in this process until its sources are done",
		Long: `run loads and validates a pipeline file, then moves its events through the declared graph
in this process: built-in sources, processors and sinks, bounded queues, acknowledgements.

It ends when every bounded source is exhausted and everything was written (exit 0). The
first SIGINT/SIGTERM stops the sources and drains what they already emitted within --grace;
once drained it exits 0 when the sources only end by being stopped (http, a followed file),
and 128+signal (130, 143) with a message when a bounded source (a file, a generator with a
count, stdin) had not finished. A second signal stops at once. On a terminal a status line shows the
flow every second; a summary per component is printed at the end (on stderr).

--http ADDR serves /metrics (Prometheus), /healthz and /readyz, and at / a dashboard: the
graph with live rates, queues and health, and a live tap of the component clicked. The
dashboard needs a token, printed once at start in the URL to open (or --http-token FILE's);
see docs/dashboard.md.

SIGHUP reads the file again (or --reload-from's) and applies it in place: components that
did not change keep running; a changed one drains (what it holds is handed on), closes and
starts again with its new settings; removed ones drain and stop; new ones start; inputs are
rewired between batches. A file that does not validate is ignored; a change of the
dead-letter sink drains the run and exits with code 3, so that a supervisor starts it again
with the new file.

Checkpoints: sources that can be replayed (file, generate) commit their position once what
they emitted was written, every second and at the end, in --state-dir. A second run of the
same pipeline resumes there (it says so in one line); --from-start starts over. A file sink
keeps what was written up to the checkpoint and checks what came after it against the
events sent again, so a run killed at any moment (even by SIGKILL) and run again writes
every event once. "flowctl state" shows and resets checkpoints.


A pipeline without a dead_letter sink that dropped events — malformed input lines, events a
processor failed on (on_error drop, the default without one) — says so in its last line and
exits with code 4, unless --allow-drops is given. With a dead_letter sink the failed events
are kept there and the run exits 0.`,
		Example: `  flowctl run -f pipeline.yaml
  flowctl run -f pipeline.yaml --grace 30s --http 127.0.0.1:9090`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := fileArg(o.file, args)
			if err != nil {
				return err
			}
			o.file = path
			return runPipeline(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", `pipeline file to run ("-" reads standard input)`)
	f.DurationVar(&o.grace, "grace", engine.DefaultGrace, "how long a stopped run may drain what its sources already emitted")
	f.StringVar(&o.httpAddr, "http", "", "serve /metrics, /healthz, /readyz and the dashboard (/, with a token) on this address (host:port)")
	f.StringVar(&o.httpTokenFile, "http-token", "", "file holding the token the dashboard at --http's / asks for [a random one, printed at start]")
	f.BoolVar(&o.watch, "watch", false, "apply the pipeline file in place when it is saved (an invalid edit is reported, the run goes on), and restart a component when the program or script it runs changes; a component's build: runs first and again when its watch: sources change")
	f.StringVar(&o.socket, "socket", "", "serve the run's taps (flowctl tap) on this Unix socket, reachable by this user only [$XDG_STATE_HOME/flowctl/runs/NAME.sock]")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	_ = f.MarkHidden("cpuprofile")
	f.StringVar(&o.memProfile, "memprofile", "", "write a heap profile taken one second into the run to this file")
	_ = f.MarkHidden("memprofile")
	f.StringVar(&o.memoryLimit, "memory-limit", "", memoryLimitUsage)
	f.BoolVar(&o.allowDrops, "allow-drops", false, "exit 0 even when events were dropped for want of a dead_letter sink (else exit 4)")
	f.StringVar(&o.dir, "dir", "", "resolve relative paths in the file against this directory [the file's directory]")
	f.DurationVar(&o.heartbeat, "heartbeat-interval", external.DefaultRunHeartbeatInterval, "interval gRPC components are told to heartbeat at (FLOWCTL_HEARTBEAT_INTERVAL)")
	f.DurationVar(&o.heartbeatTTL, "heartbeat-ttl", 0, "a gRPC component silent for longer is UNHEALTHY and restarted (FLOWCTL_TTL) [3 × --heartbeat-interval]")
	f.StringVar(&o.reportTo, "report-to", "", "register the components with the flowctl server at this address and heartbeat their counters")
	f.Int64Var(&o.revision, "pipeline-revision", 0, "the pipeline revision to report (set by flowctl server)")
	f.Int64Var(&o.runID, "run-id", 0, "the run id to report (set by flowctl server)")
	f.StringVar(&o.reportCA, "report-ca", "", "CA certificate to verify the --report-to server (TLS)")
	f.StringVar(&o.reportCert, "report-cert", "", "client certificate for the --report-to server (mutual TLS)")
	f.StringVar(&o.reportKey, "report-key", "", "client key for the --report-to server (mutual TLS)")
	f.StringVar(&o.reportTokenFile, "report-token-file", "", "file holding the bearer token of the --report-to server")
	f.StringVar(&o.stateDir, "state-dir", "", "directory of the checkpoints, one folder per pipeline [$XDG_STATE_HOME/flowctl/checkpoints or ~/.local/state/flowctl/checkpoints]")
	f.BoolVar(&o.fromStart, "from-start", false, "forget the pipeline's checkpoint and start from the beginning (a file sink with mode: truncate starts its file over)")
	f.DurationVar(&o.checkpointInterval, "checkpoint-interval", engine.DefaultCheckpointInterval, "how often acknowledged positions are committed")
	_ = f.MarkHidden("checkpoint-interval")
	f.StringVar(&o.reloadFrom, "reload-from", "", "the pipeline file SIGHUP applies to the running pipeline [--file]")
	f.StringVar(&o.reloadRevisionFile, "reload-revision-file", "", "file holding the revision to report after a SIGHUP reload (set by flowctl server)")
	for _, n := range []string{"reload-revision-file", "pipeline-revision", "run-id", "report-ca", "report-cert", "report-key", "report-token-file"} {
		_ = f.MarkHidden(n)
	}
	return cmd
}

// runPipeline is the whole of `flowctl run`.
func runPipeline(ctx context.Context, g *globals, o runOptions) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	// The collector's target comes first: loading the file compiles its
	// expressions, which allocates a few MiB, and with Go's default target
	// a collection would run in the middle of it (~2 ms of start to first
	// event; docs/perf.md).
	defer resetGC(currentGC())
	gcs, err := applyGCTarget(o.memoryLimit, os.Getenv)
	if err != nil {
		fmt.Fprintf(g.stderr, "flowctl run: %v\n", err)
		return &exitError{code: 1}
	}
	log.Debug("garbage collector", "target", gcs.String())
	reg := components.NewRegistry()
	pl, diags, err := spec.Load(o.file, spec.Options{Registry: reg, Stdin: g.stdin})
	if err != nil {
		fmt.Fprintf(g.stderr, "flowctl run: %v\n", err)
		return &exitError{code: 1}
	}
	for _, d := range diags {
		fmt.Fprintln(g.stderr, d.String())
	}
	if diags.HasErrors() || pl == nil {
		fmt.Fprintf(g.stderr, "flowctl run: %s does not validate; fix the errors above (flowctl validate -f %s checks it)\n", o.file, o.file)
		return &exitError{code: 1}
	}
	if o.grace <= 0 {
		fmt.Fprintf(g.stderr, "flowctl run: --grace %s: give a positive duration such as 10s\n", o.grace)
		return &exitError{code: 1}
	}
	// Components written as type: NAME@VERSION: their binaries, from the
	// cache or pulled, before anything starts.
	if err := resolveComponentRefs(ctx, pl, g.stderr, "flowctl run"); err != nil {
		fmt.Fprintf(g.stderr, "flowctl run: %v\n", err)
		return &exitError{code: 1}
	}
	// Components with a `build:` (run_watch_build.go): --watch builds
	// them first; a plain run only checks that their programs exist.
	bdir := o.dir
	if bdir == "" {
		bdir = filepath.Dir(pl.File)
	}
	if o.watch {
		err = buildAll(ctx, g.stderr, g.componentOutput(), pl, bdir)
	} else {
		err = checkBuilt(pl, bdir)
	}
	if err != nil {
		fmt.Fprintf(g.stderr, "flowctl run: %v\n", err)
		return &exitError{code: 1}
	}
	eopts := engine.Options{Grace: o.grace, Logger: log, Dir: o.dir}
	defer startTracing(&eopts, log)()
	// Components run by a command or at a url: the manager checks them,
	// starts the embedded control plane if one speaks gRPC, and supervises
	// their processes once the engine opens them.
	var ext *external.Manager
	if hasExternal(pl) {
		dir := o.dir
		if dir == "" && pl.File != "" {
			dir = filepath.Dir(pl.File)
		}
		ext, err = external.NewManager(pl, external.ManagerOptions{
			Logger: log, Dir: dir, Output: g.componentOutput(),
			HeartbeatInterval: o.heartbeat, HeartbeatTTL: o.heartbeatTTL,
		})
		if err != nil {
			fmt.Fprintf(g.stderr, "flowctl run: %v\n", err)
			return &exitError{code: 1}
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), o.grace)
			defer cancel()
			_ = ext.Close(cctx)
		}()
		eopts.External = func(c *spec.Component, _ flow.BuildContext) (any, error) { return ext.Build(c) }
	}
	st, err := openRunState(g, o, pl)
	if err != nil {
		return err
	}
	defer st.Close()
	eopts.Checkpoints, eopts.CheckpointInterval = st, o.checkpointInterval
	eopts.StateDir = filepath.Dir(st.Path())
	eopts.Taps = tap.NewHub()
	e, err := engine.New(pl, reg, eopts)
	if err != nil {
		fmt.Fprintf(g.stderr, "flowctl run: %v\n", err)
		return &exitError{code: 1}
	}
	setCurrentRun(ext, pl, o, e) // flowctl.ControlPlane's run calls
	name := pl.Name
	if name == "" {
		name = "pipeline"
	}
	sockPath := o.socket
	if sockPath == "" {
		if sockPath, err = defaultRunSocket(name); err != nil {
			log.Warn("no socket for flowctl tap", "error", err)
		}
	}
	if sockPath != "" {
		// Watching is never a reason not to run: a socket that cannot be
		// served is a warning.
		sock, err := serveRunSocket(sockPath, name, eopts.Taps, e, ext, log)
		if err != nil {
			log.Warn("no socket for flowctl tap", "error", err)
		}
		defer sock.Close()
	}

	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(g.stderr, "flowctl run: --cpuprofile: %v\n", err)
			return &exitError{code: 1}
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintf(g.stderr, "flowctl run: --cpuprofile: %v\n", err)
			return &exitError{code: 1}
		}
		defer pprof.StopCPUProfile()
	}
	if o.memProfile != "" {
		runtime.MemProfileRate = 4096 // fine-grained: the heap is small
		t := time.AfterFunc(time.Second, func() {
			if pf, err := os.Create(o.memProfile); err == nil {
				_ = pprof.Lookup("heap").WriteTo(pf, 0)
				pf.Close()
			}
		})
		defer t.Stop()
	}
	if o.httpAddr != "" {
		// run_dashboard.go: /metrics, /healthz, /readyz, and the
		// dashboard at / behind a token.
		token, fromFile, err := dashboardToken(o.httpTokenFile)
		if err != nil {
			fmt.Fprintf(g.stderr, "flowctl run: --http-token: %v\n", err)
			return &exitError{code: 1}
		}
		if fromFile {
			warnTokenFile(g, "flowctl run", "--http-token", o.httpTokenFile, "open the dashboard and its taps")
		}
		h, err := httpHandler(name, token, eopts.Taps, e, ext)
		if err != nil {
			fmt.Fprintf(g.stderr, "flowctl run: %v\n", err)
			return &exitError{code: 1}
		}
		srv, err := metrics.ServeHandler(o.httpAddr, h)
		if err != nil {
			fmt.Fprintf(g.stderr, "flowctl run: --http: %v\n", err)
			return &exitError{code: 1}
		}
		log.Info("serving metrics", "addr", srv.Addr())
		if fromFile {
			fmt.Fprintf(g.stderr, "flowctl run: dashboard: %s (add ?token= and the token in %s)\n", dashboardURL(srv.Addr(), ""), o.httpTokenFile)
		} else {
			fmt.Fprintf(g.stderr, "flowctl run: dashboard: %s\n", dashboardURL(srv.Addr(), token))
		}
		if w := httpExposureWarning(o.httpAddr); w != "" {
			fmt.Fprintln(g.stderr, w+"; the dashboard at / needs its token, which plain HTTP carries in clear")
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Close(sctx)
		}()
	}

	// The root command's context is cancelled by the first SIGINT/SIGTERM
	// (graceful drain); a second signal aborts. Counting needs our own
	// subscription.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	interrupted := make(chan struct{})
	var signalled atomic.Bool
	var stopSignal atomic.Int32
	go func() {
		select {
		case sig := <-sigs:
			if s, ok := sig.(syscall.Signal); ok {
				stopSignal.Store(int32(s))
			}
		case <-interrupted:
			return
		}
		signalled.Store(true)
		cancel()
		fmt.Fprintf(g.stderr, "\nflowctl run: stopping: draining what the sources emitted (up to %s; signal again to stop at once)\n", o.grace)
		select {
		case <-sigs:
			fmt.Fprintln(g.stderr, "flowctl run: second signal: stopping now")
			e.Abort()
		case <-interrupted:
		}
	}()

	// SIGHUP applies the file again (run_reload.go).
	rl := startReloader(runCtx, g, o, e, log, cancel)
	defer rl.stop()
	if o.watch {
		wdir := o.dir
		if wdir == "" {
			wdir = filepath.Dir(pl.File)
		}
		w, err := startWatcher(runCtx, rl, pl, wdir)
		if err != nil {
			fmt.Fprintf(g.stderr, "flowctl run: %v\n", err)
			return &exitError{code: 1}
		}
		defer w.stop()
		fmt.Fprintf(g.stderr, "flowctl run: --watch: watching %s and the programs of its components\n", rl.path)
	}
	if o.reportTo != "" {
		rep, err := startReporter(runCtx, o, pl, e, ext, log)
		switch {
		case err == nil:
			rl.setReporter(rep)
			defer func() {
				cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = rep.Close(cctx)
			}()
		case runCtx.Err() == nil:
			fmt.Fprintf(g.stderr, "flowctl run: %v\n", err)
			return &exitError{code: 1}
		}
		// Stopped while registering: the run below ends at once.
	}

	live := false
	if f, ok := g.stderr.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		live = true
	}
	stopLive := make(chan struct{})
	liveDone := make(chan struct{})
	if live {
		go liveLoop(g.stderr, e, stopLive, liveDone)
	} else {
		close(liveDone)
	}

	runErr := e.Run(runCtx)
	// Nothing more crosses a tap: its streams end (and say so) rather
	// than being cut when the socket closes.
	eopts.Taps.Close()
	close(interrupted)
	close(stopLive)
	<-liveDone
	printSummary(g.stderr, name, e.Stats(), runOutcome(signalled.Load() || ctx.Err() != nil || rl.needsRestart(), runErr))
	printReplayed(g.stderr, e.Replayed())
	if ext != nil {
		printExternalSummary(g.stderr, ext.Stats())
	}
	if runErr != nil {
		fmt.Fprintf(g.stderr, "flowctl run: pipeline %q failed: %v\n", name, runErr)
		if !rl.needsRestart() {
			return &exitError{code: 1}
		}
	}
	if rl.needsRestart() {
		return &exitError{code: exitReloadRestart}
	}
	if sig := syscall.Signal(stopSignal.Load()); sig != 0 {
		// Drained, but sources that would have ended by themselves did
		// not get there: the work is not done. (A pipeline whose sources
		// only end when stopped, an http source say, exits 0.)
		if cut := interruptedSources(e.Stats()); len(cut) > 0 {
			fmt.Fprintf(g.stderr, "flowctl run: pipeline %q stopped by %s before %s finished; what had been read was drained and written\n",
				name, signalName(sig), strings.Join(cut, ", "))
			return &exitError{code: 128 + int(sig)}
		}
	}
	return checkDrops(g.stderr, name, e.Stats(), o.allowDrops)
}

// interruptedSources names the bounded sources that did not finish.
func interruptedSources(s engine.Stats) []string {
	var out []string
	for _, c := range s.Components {
		if c.Role == flow.RoleSource && c.Bounded && !c.Finished {
			out = append(out, fmt.Sprintf("source %q", c.Name))
		}
	}
	return out
}

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// liveLoop rewrites one status line on w every second until stop closes.
func liveLoop(w io.Writer, e *engine.Engine, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev := map[string]int64{}
	last := time.Now()
	for {
		select {
		case <-stop:
			fmt.Fprint(w, "\r\033[K")
			return
		case now := <-tick.C:
			s := e.Stats()
			fmt.Fprint(w, "\r\033[K"+liveLine(s, prev, now.Sub(last)))
			last = now
		}
	}
}

// liveLine is the status line: per component events in/out and the rate
// of its output since the previous line; prev is updated.
func liveLine(s engine.Stats, prev map[string]int64, dt time.Duration) string {
	var parts []string
	for _, c := range s.Components {
		rate := float64(c.Out-prev[c.Name]) / max(dt.Seconds(), 1e-3)
		prev[c.Name] = c.Out
		var part string
		switch c.Role {
		case flow.RoleSource:
			part = fmt.Sprintf("%s out %s (%s/s)", c.Name, short(c.Out), short(int64(rate)))
		default:
			part = fmt.Sprintf("%s in %s out %s (%s/s)", c.Name, short(c.In), short(c.Out), short(int64(rate)))
		}
		if c.Health != "" && c.Health != engine.HealthHealthy {
			part += fmt.Sprintf(" %s: %s", strings.ToUpper(string(c.Health)), clip(c.Reason, liveReason))
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("%s │ %s", s.Elapsed.Truncate(time.Second), strings.Join(parts, " │ "))
}

// liveReason bounds the health reason on the live line, which must stay
// one line; the summary and the logs have it whole.
const liveReason = 80

// clip shortens s to at most n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// short writes n with a k/M suffix.
func short(n int64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// runOutcome is how a run ended, as its summary says it: failed (the
// engine returned an error), stopped (a signal, a reload that needs a
// restart) or finished.
func runOutcome(stopped bool, err error) string {
	switch {
	case err != nil:
		return "failed"
	case stopped:
		return "stopped"
	}
	return "finished"
}

// printSummary writes the end-of-run table: counts per component, wall
// time and throughput (events the sources read per second); how is
// runOutcome's word.
func printSummary(w io.Writer, name string, s engine.Stats, how string) {
	var emitted, written, dropped, dead, errs, unrouted int64
	for _, c := range s.Components {
		switch {
		case c.Role == flow.RoleSource:
			// What a source rejected (a malformed line: dead-lettered or
			// dropped, never emitted) was read too: in adds up to
			// written + filtered + dead-lettered + dropped.
			emitted += c.Out + c.DeadLettered + c.Dropped
		case c.Role == flow.RoleSink && !c.DeadLetter:
			written += c.Out
		}
		dropped += c.Dropped
		dead += c.DeadLettered
		errs += c.Errors
		unrouted += c.Unrouted
	}
	secs := s.Elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(emitted) / secs
	}
	fmt.Fprintf(w, "pipeline %q %s in %s: %d events in, %d written, %.0f events/s; %d dead-lettered, %d dropped, %d errors\n",
		name, how, s.Elapsed.Round(time.Millisecond), emitted, written, rate, dead, dropped, errs)
	if unrouted > 0 {
		fmt.Fprintf(w, "%d events matched no input's types and ended where they were emitted (see the unrouted counts below)\n", unrouted)
	}
	// The table goes out in one write: the tab writer writes each cell
	// on its own (about 100 system calls to an unbuffered stderr), and
	// log lines from other goroutines could land between them.
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  component\trole\tin\tout\tfiltered\tdropped\tdead-lettered\terrors\tretries\tunrouted")
	for _, c := range s.Components {
		role := string(c.Role)
		if c.DeadLetter {
			role = "dead_letter"
		}
		in := fmt.Sprint(c.In)
		if c.Role == flow.RoleSource {
			in = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", c.Name, role, in, c.Out, c.Filtered, c.Dropped, c.DeadLettered, c.Errors, c.Retries, c.Unrouted)
	}
	tw.Flush()
	w.Write(table.Bytes())
	for _, c := range s.Components {
		if c.Health != "" && c.Health != engine.HealthHealthy {
			fmt.Fprintf(w, "%s %q was %s when the run ended: %s; what it held was neither written nor acknowledged\n",
				c.Role, c.Name, c.Health, c.Reason)
		}
	}
}

// hasExternal reports whether p has a component run outside flowctl.
func hasExternal(p *spec.Pipeline) bool {
	for _, c := range append(p.Components(), p.DeadLetter) {
		if c != nil && external.IsExternal(c) {
			return true
		}
	}
	return false
}

// printExternalSummary adds, per external component, its restarts and the
// events sent to it again after a crash (which it may have handled twice).
func printExternalSummary(w io.Writer, stats []external.ComponentStats) {
	external.WriteSummary(w, stats)
}

// httpExposureWarning is the line `flowctl run` prints when --http serves
// beyond this machine (all interfaces, or an outward address): "" on
// loopback.
func httpExposureWarning(addr string) string {
	if tlsutil.IsLoopback(addr) {
		return ""
	}
	where := "every machine that can reach this one"
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(strings.Trim(host, "[]")); ip == nil || !ip.IsUnspecified() {
			where = "every machine that can reach " + host
		}
	}
	return fmt.Sprintf("flowctl run: warning: --http %s serves /metrics, /healthz and /readyz, without authentication, to %s; use --http 127.0.0.1:PORT to keep them on this machine", addr, where)
}
