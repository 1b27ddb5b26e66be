package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/spec"
	"github.com/flowctl/flowctl/pkg/wire/controlv1"
)

func init() { register("apply", newApplyCmd) }

// applyOptions are apply's flags.
type applyOptions struct {
	server  serverFlags
	files   []string
	dryRun  bool
	wait    bool
	timeout time.Duration
	// --target docker-compose (apply_compose.go)
	target, out, image string
	tls                bool
	// --target kubernetes (apply_kube.go)
	kube kubeFlags
}

func newApplyCmd(g *globals) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR",
		Short: "Send pipeline files to the flowctl server, which runs them until deleted",
		Long: `apply validates pipeline files here first (an invalid file is reported as FILE:LINE:COL
and nothing is sent), substitutes ${VAR} with this shell's environment, and stores each file
on the flowctl server as its pipeline's desired state. The server starts, restarts or stops
what runs until it matches; applying the same file again changes nothing.

A directory applies every *.yaml, *.yml and *.json file in it, in name order. --dry-run
shows, per component, what applying would do (start, stop, change, unchanged) and changes
nothing. --wait waits until each pipeline is ready (or completed) and fails with the reason
when it is not.

--target docker-compose runs the file with the real docker-compose instead: apply translates
it (as flowctl translate does, with ${VAR} substituted here) into --out, by default
<pipeline dir>/.flowctl/compose/<name>, and runs docker-compose -p <name> up -d
--remove-orphans there. --dry-run prints the difference against the last applied
translation and changes nothing. flowctl's image (--image) must have been built on this
machine (see docs/translate.md).

--target kubernetes translates the file (as flowctl translate --to kubernetes does, with ${VAR}
substituted here) and sends every object with server-side apply (field manager flowctl) to the
cluster of the kubeconfig (--kubeconfig, else $KUBECONFIG, else ~/.kube/config; --kube-context).
The Secrets the manifest mounts are made from their sources (the components' secret files,
this shell's values of the file's ${VAR}s, the TLS certificates kept in
<pipeline dir>/.flowctl/kubernetes/<name>/tls with --tls); nothing is written to disk. Objects
of an earlier apply that the file no longer has are deleted (claims are kept). --dry-run asks
the API server (server-side dry run) and prints created / configured with a diff / unchanged.
See docs/kubernetes.md.

--target nomad translates the file (as flowctl translate --to nomad does, with ${VAR}
substituted here) into one Nomad job and registers it through Nomad's HTTP API at
NOMAD_ADDR (NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_CACERT... as the nomad CLI reads them).
--dry-run asks Nomad to plan it and prints the diff instead. See docs/nomad.md.`,
		Example: `  flowctl apply -f pipeline.yaml
  flowctl apply -f pipelines/ --dry-run
  flowctl apply -f pipeline.yaml --wait --timeout 30s
  flowctl apply -f pipeline.yaml --target docker-compose --dry-run
  flowctl apply -f pipeline.yaml --target kubernetes --image registry.example.com/flowctl:1.0 --dry-run
  NOMAD_ADDR=http://nomad:4646 flowctl apply -f pipeline.yaml --target nomad --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if kubeTarget(o.target) {
				if o.wait {
					return errors.New("--wait is for the flowctl server; with --target kubernetes watch `flowctl get pipelines NAME --target kubernetes`")
				}
				return runApplyKube(cmd.Context(), g, o)
			}
			if nomadTarget(o.target) {
				if o.wait {
					return errors.New("--wait is for the flowctl server; with --target nomad watch `flowctl get pipelines NAME --target nomad`")
				}
				return runApplyNomad(g, o)
			}
			compose, err := composeTarget(o.target)
			if err != nil {
				return err
			}
			if compose {
				if o.wait {
					return errors.New("--wait is for the flowctl server; with --target docker-compose watch `flowctl get pipelines --target docker-compose`")
				}
				return runApplyCompose(cmd.Context(), g, o)
			}
			if o.out != "" || o.image != "" || o.tls {
				return errors.New("--out, --image and --tls go with --target docker-compose")
			}
			return runApply(cmd.Context(), g, o)
		},
	}
	addServerFlags(cmd, &o.server)
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "file", "f", nil, `pipeline file or directory ("-" reads standard input); may be repeated`)
	f.BoolVar(&o.dryRun, "dry-run", false, "show what applying would do and change nothing")
	f.BoolVar(&o.wait, "wait", false, "wait until every applied pipeline is ready (or completed)")
	f.DurationVar(&o.timeout, "timeout", 60*time.Second, "how long --wait waits")
	f.StringVar(&o.target, "target", targetServer, "where the pipeline runs: server (the flowctl server), docker-compose (translated, then docker-compose up), kubernetes (translated, then server-side applied) or nomad (translated, then registered as a Nomad job)")
	addKubeFlags(cmd, &o.kube)
	f.StringVar(&o.out, "out", "", "docker-compose: directory of the translation (default <pipeline dir>/.flowctl/compose/<name>)")
	f.StringVar(&o.image, "image", "", `docker-compose, kubernetes, nomad: flowctl's own image every service runs (default "flowctl:`+version+`")`)
	f.BoolVar(&o.tls, "tls", false, "docker-compose, kubernetes: run the nodes over mutual TLS with certificates made on the first apply")
	return cmd
}

// applyFile is one pipeline file read and validated here.
type applyFile struct {
	path string // as the user named it ("-" for stdin)
	name string // how diagnostics name it
	dir  string // absolute directory relative paths resolve against
	data []byte // content after ${VAR} substitution
	pl   *spec.Pipeline
}

// runApply is the whole of `flowctl apply`.
func runApply(ctx context.Context, g *globals, o applyOptions) error {
	if len(o.files) == 0 {
		return errors.New("no pipeline file given: use -f FILE or -f DIR")
	}
	paths, err := expandApplyPaths(o.files)
	if err != nil {
		return err
	}
	files, ok, err := loadApplyFiles(g, paths)
	if err != nil {
		return err
	}
	if !ok {
		return &exitError{code: 1}
	}

	c, err := o.server.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()

	failed := false
	var applied []*controlv1.ApplyResponse
	for _, f := range files {
		resp, err := c.pipelines.Apply(ctx, &controlv1.ApplyRequest{
			Spec:   f.data,
			Dir:    f.dir,
			DryRun: o.dryRun,
			File:   f.name,
		})
		if err != nil {
			return c.rpcError(fmt.Sprintf("apply %s", f.name), err)
		}
		for _, d := range resp.GetDiagnostics() {
			fmt.Fprintln(g.stderr, wireDiagnostic(d).String())
		}
		if resp.GetRejected() {
			fmt.Fprintf(g.stderr, "%s: rejected by the server, nothing applied\n", f.name)
			failed = true
			continue
		}
		printApplyResult(g.stdout, resp)
		applied = append(applied, resp)
	}
	if o.wait && !o.dryRun {
		for _, resp := range applied {
			if err := waitReady(ctx, c, g.stdout, resp.GetName(), resp.GetRevision(), o.timeout); err != nil {
				return err
			}
		}
	}
	if failed {
		return &exitError{code: 1}
	}
	return nil
}

// expandApplyPaths turns the -f arguments into files: a directory gives its
// *.yaml, *.yml and *.json files (not recursively), sorted by name.
func expandApplyPaths(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		if a == "-" {
			out = append(out, a)
			continue
		}
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("pipeline file: %w", err)
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("read pipeline directory: %w", err)
		}
		var found []string
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					found = append(found, filepath.Join(a, e.Name()))
				}
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s holds no *.yaml, *.yml or *.json file", a)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// loadApplyFiles reads, substitutes and validates every file, printing
// every diagnostic (errors and warnings) on stderr. ok is false when any
// file has an error; then nothing may be sent. Two files naming the same
// pipeline are an error too.
func loadApplyFiles(g *globals, paths []string) (files []applyFile, ok bool, err error) {
	reg := components.NewRegistry()
	ok = true
	byName := map[string]string{}
	for _, p := range paths {
		f := applyFile{path: p, name: p}
		var raw []byte
		if p == "-" {
			f.name = spec.StdinName
			raw, err = io.ReadAll(g.stdin)
			f.dir, _ = os.Getwd()
		} else {
			raw, err = os.ReadFile(p)
			if abs, aerr := filepath.Abs(p); aerr == nil {
				f.dir = filepath.Dir(abs)
			}
		}
		if err != nil {
			return nil, false, fmt.Errorf("read pipeline file: %w", err)
		}
		data, subDiags := substituteEnv(f.name, raw)
		pl, diags := spec.Parse(f.name, raw, spec.Options{Registry: reg})
		diags = mergeDiags(subDiags, diags)
		for _, d := range diags {
			fmt.Fprintln(g.stderr, d.String())
		}
		if diags.HasErrors() || pl == nil {
			fmt.Fprintf(g.stderr, "%s: %s, nothing applied\n", f.name, plural(countErrors(diags), "error"))
			ok = false
			continue
		}
		if prev, dup := byName[pl.Name]; dup {
			fmt.Fprintf(g.stderr, "%s: pipeline %q is also defined in %s — give each pipeline its own name\n", f.name, pl.Name, prev)
			ok = false
			continue
		}
		byName[pl.Name] = f.name
		f.data, f.pl = data, pl
		files = append(files, f)
	}
	return files, ok, nil
}

// mergeDiags adds the substitution diagnostics that Parse did not already
// report (it substitutes too, so they usually are the same).
func mergeDiags(sub, parsed spec.Diagnostics) spec.Diagnostics {
	seen := map[string]bool{}
	for _, d := range parsed {
		seen[d.String()] = true
	}
	out := parsed
	for _, d := range sub {
		if !seen[d.String()] {
			out = append(out, d)
		}
	}
	return out
}

func countErrors(ds spec.Diagnostics) int {
	n := 0
	for _, d := range ds {
		if d.Severity == spec.SevError {
			n++
		}
	}
	return n
}

// substituteEnv replaces ${VAR} in data with this process's environment,
// as the file is sent to the server substituted.
func substituteEnv(name string, data []byte) ([]byte, spec.Diagnostics) {
	return spec.Substitute(name, data, os.LookupEnv)
}

// wireDiagnostic converts a server diagnostic to the spec type (for its
// String form).
func wireDiagnostic(d *controlv1.Diagnostic) spec.Diagnostic {
	return spec.Diagnostic{
		File:     d.GetFile(),
		Line:     int(d.GetLine()),
		Col:      int(d.GetColumn()),
		Severity: spec.Severity(d.GetSeverity()),
		Message:  d.GetMessage(),
		Hint:     d.GetHint(),
	}
}

// printApplyResult prints the outcome line, and for a dry run the plan.
func printApplyResult(w io.Writer, r *controlv1.ApplyResponse) {
	verb := "unchanged"
	switch {
	case r.GetChanged() && (r.GetRevision() == 1 || allStart(r.GetPlan())):
		verb = "created"
	case r.GetChanged():
		verb = "configured"
	}
	suffix := ""
	if r.GetDryRun() {
		suffix = " (dry run)"
	}
	fmt.Fprintf(w, "pipeline/%s %s (revision %d)%s\n", r.GetName(), verb, r.GetRevision(), suffix)
	if !r.GetDryRun() {
		return
	}
	t := newTable(w, "COMPONENT", "ROLE", "ACTION", "FIELDS")
	t.blank = true
	for _, it := range r.GetPlan() {
		t.row(it.GetComponent(), it.GetRole(), planAction(it.GetAction()), strings.Join(it.GetFields(), ","))
	}
	_ = t.flush()
	if r.GetChanged() && r.GetRestartsAll() && r.GetRevision() > 1 {
		why := strings.TrimPrefix(r.GetRestartReason(), "reload: ")
		if why == "" {
			why = "this server restarts the whole pipeline on a change"
		}
		fmt.Fprintf(w, "note: the whole pipeline restarts, unchanged components too: %s\n", why)
	}
}

// allStart reports whether every component of the plan is new: nothing
// was applied under this name before (or it was deleted).
func allStart(plan []*controlv1.PlanItem) bool {
	for _, it := range plan {
		if it.GetAction() != controlv1.PlanAction_PLAN_ACTION_START {
			return false
		}
	}
	return len(plan) > 0
}

// planAction is the lower-case word of a plan action.
func planAction(a controlv1.PlanAction) string {
	switch a {
	case controlv1.PlanAction_PLAN_ACTION_START:
		return "start"
	case controlv1.PlanAction_PLAN_ACTION_STOP:
		return "stop"
	case controlv1.PlanAction_PLAN_ACTION_CHANGE:
		return "change"
	case controlv1.PlanAction_PLAN_ACTION_UNCHANGED:
		return "unchanged"
	}
	return "unknown"
}

// Ready must hold this long before --wait believes it: components
// register before they open, so a pipeline that fails at start-up can look
// ready for a moment; one that already restarted must prove it stays up.
const (
	readySettle        = 150 * time.Millisecond
	readySettleRestart = 2 * time.Second
)

// waitReady polls the pipeline until it runs revision rev and is Ready
// (held for the settle time), or completed it; it fails with the reason
// when the revision failed or the timeout passed.
func waitReady(ctx context.Context, c *client, w io.Writer, name string, rev int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var (
		last       *controlv1.Pipeline
		readySince time.Time
		readyPID   int32
	)
	// gaveUp says why waiting ended early: the timeout, or an interrupt.
	gaveUp := func() error {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return waitTimeout(name, rev, timeout, last)
		}
		return &exitError{code: 130}
	}
	for {
		resp, err := c.pipelines.Get(ctx, &controlv1.GetPipelineRequest{Name: name})
		if err != nil {
			if ctx.Err() != nil {
				return gaveUp()
			}
			return c.rpcError("wait for pipeline/"+name, err)
		}
		p := resp.GetPipeline()
		last = p
		st := p.GetStatus()
		if p.GetRevision() != rev {
			return fmt.Errorf("pipeline/%s: revision %d was applied while waiting for revision %d", name, p.GetRevision(), rev)
		}
		ready := false
		switch st.GetPhase() {
		case controlv1.Phase_PHASE_RUNNING:
			ready = st.GetRunningRevision() == rev && conditionTrue(st, "Ready")
		case controlv1.Phase_PHASE_COMPLETED, controlv1.Phase_PHASE_FAILED:
			run, err := latestRun(ctx, c, name)
			if err != nil {
				if ctx.Err() != nil {
					return gaveUp()
				}
				return err
			}
			if run == nil || run.GetRevision() != rev {
				break
			}
			if st.GetPhase() == controlv1.Phase_PHASE_COMPLETED {
				fmt.Fprintf(w, "pipeline/%s completed (revision %d, %s)\n", name, rev, waited(start))
				return nil
			}
			reason := st.GetLastError()
			if reason == "" {
				reason = run.GetReason()
			}
			return fmt.Errorf("pipeline/%s failed (revision %d): %s", name, rev, reason)
		}
		now := time.Now()
		switch {
		case !ready:
			readySince = time.Time{}
		case readySince.IsZero() || st.GetPid() != readyPID:
			readySince, readyPID = now, st.GetPid()
		default:
			settle := readySettle
			if st.GetRestarts() > 0 {
				settle = readySettleRestart
			}
			if now.Sub(readySince) >= settle {
				fmt.Fprintf(w, "pipeline/%s ready (revision %d, %s)\n", name, rev, waited(start))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return gaveUp()
		case <-tick.C:
		}
	}
}

// latestRun is the pipeline's newest run, nil if it has none.
func latestRun(ctx context.Context, c *client, name string) (*controlv1.Run, error) {
	resp, err := c.runs.ListRuns(ctx, &controlv1.ListRunsRequest{Pipeline: name, Limit: 1})
	if err != nil {
		return nil, c.rpcError("list runs of pipeline/"+name, err)
	}
	if len(resp.GetRuns()) == 0 {
		return nil, nil
	}
	return resp.GetRuns()[0], nil
}

// waitTimeout says what the pipeline was doing when --wait gave up.
func waitTimeout(name string, rev int64, timeout time.Duration, p *controlv1.Pipeline) error {
	msg := fmt.Sprintf("pipeline/%s not ready after %s (revision %d)", name, timeout, rev)
	if p == nil {
		return errors.New(msg)
	}
	st := p.GetStatus()
	msg += ": phase " + phaseName(st.GetPhase())
	for _, cond := range st.GetConditions() {
		if cond.GetType() == "Ready" && cond.GetStatus() != controlv1.ConditionStatus_CONDITION_STATUS_TRUE && cond.GetMessage() != "" {
			msg += ", " + cond.GetMessage()
		}
	}
	if st.GetLastError() != "" {
		msg += ", last error: " + st.GetLastError()
	}
	return errors.New(msg)
}

func waited(start time.Time) string {
	return "after " + time.Since(start).Round(time.Millisecond).String()
}

// conditionTrue reports whether the status has the condition typ set TRUE.
func conditionTrue(st *controlv1.PipelineStatus, typ string) bool {
	for _, c := range st.GetConditions() {
		if c.GetType() == typ {
			return c.GetStatus() == controlv1.ConditionStatus_CONDITION_STATUS_TRUE
		}
	}
	return false
}
