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

	"github.com/flowctl/flowctl/internal/report"
	"github.com/flowctl/flowctl/pkg/wire/controlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

func init() { register("get", newGetCmd) }

// resource is a kind of object the observing commands know.
type resource string

// The resources of get.
const (
	resPipelines  resource = "pipelines"
	resComponents resource = "components"
	resRuns       resource = "runs"
)

// resourceAliases maps every accepted spelling to its resource.
var resourceAliases = map[string]resource{
	"pipelines": resPipelines, "pipeline": resPipelines, "pl": resPipelines,
	"components": resComponents, "component": resComponents, "comp": resComponents,
	"runs": resRuns, "run": resRuns,
}

// parseResource reads a resource name or alias.
func parseResource(s string) (resource, error) {
	if r, ok := resourceAliases[strings.ToLower(s)]; ok {
		return r, nil
	}
	return "", fmt.Errorf("unknown resource %q: use pipelines (pipeline, pl), components (component, comp) or runs (run)", s)
}

// getOptions are get's flags.
type getOptions struct {
	server serverFlags
	output string
	limit  int
	target string
	kube   kubeFlags
}

func newGetCmd(g *globals) *cobra.Command {
	var o getOptions
	cmd := &cobra.Command{
		Use:   "get pipelines|components|runs [NAME]",
		Short: "List pipelines, components or runs of the flowctl server",
		Long: `get prints a table of the server's pipelines, registered components or runs.

  pipelines (pipeline, pl)      NAME, REVISION, PHASE, READY (healthy/total), RESTARTS, AGE
  components (component, comp)  NAME, PIPELINE, ROLE, HEALTH, ENDPOINT, LAST-HEARTBEAT, AGE
  runs (run)                    ID, PIPELINE, REVISION, STATE, STARTED, DURATION, REASON

NAME picks one pipeline; for components it is PIPELINE/COMPONENT or a pipeline's name
(its components); for runs a pipeline's name (its runs) or PIPELINE/N (its run N).
-o wide adds columns; -o json and -o yaml print the objects (a list is {"items": [...]}).

--target docker-compose lists the pipelines run by docker-compose instead (pipelines only):
NAME, PROJECT, PHASE (Running, Partial, Completed, Failed), RUNNING, COMPLETED (exited 0),
FAILED and SERVICES, from the labels of their containers.

--target kubernetes lists the workloads of the pipelines apply --target kubernetes put in the
cluster of the kubeconfig (pipelines only): PIPELINE, COMPONENT, KIND (deployment or
statefulset), NAMESPACE and READY (ready/desired replicas), from the labels translate sets.

--target nomad shows one pipeline's Nomad job (NAME is needed): its status and, per group
(one per component), DESIRED, RUNNING, PENDING (queued or starting), FAILED, COMPLETE and
LOST allocations, from the Nomad agent at NOMAD_ADDR.`,
		Example: `  flowctl get pipelines
  flowctl get pl payments -o yaml
  flowctl get components payments
  flowctl get runs payments -o wide`,
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: []string{"pipelines", "components", "runs"},
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := parseResource(args[0])
			if err != nil {
				return err
			}
			format, err := parseOutput(o.output)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			if kubeTarget(o.target) {
				if res != resPipelines || format != outTable {
					return errors.New("--target kubernetes lists pipelines only, as a table")
				}
				return getKubePipelines(cmd.Context(), g, o.kube, name)
			}
			if nomadTarget(o.target) {
				if res != resPipelines || format != outTable {
					return errors.New("--target nomad shows pipelines only, as a table")
				}
				return getNomadPipeline(g, name)
			}
			compose, err := composeTarget(o.target)
			if err != nil {
				return err
			}
			if compose {
				if res != resPipelines || (format != outTable && format != outWide) {
					return errors.New("--target docker-compose lists pipelines only, as a table (-o wide adds the Compose file)")
				}
				return getComposePipelines(cmd.Context(), g, name, format == outWide)
			}
			c, err := o.server.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			ctx := cmd.Context()
			switch res {
			case resPipelines:
				return getPipelines(ctx, c, g, name, format)
			case resComponents:
				return getComponents(ctx, c, g, name, format)
			default:
				return getRuns(ctx, c, g, name, format, o.limit)
			}
		},
	}
	addServerFlags(cmd, &o.server)
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "output format: wide, json or yaml (default: a table)")
	cmd.Flags().IntVar(&o.limit, "limit", 100, "runs: show at most this many, newest first")
	cmd.Flags().StringVar(&o.target, "target", targetServer, "server (the flowctl server), docker-compose (the projects `apply --target docker-compose` started, from their containers' labels), kubernetes (the workloads `apply --target kubernetes` made) or nomad (the job `apply --target nomad` registered)")
	addKubeFlags(cmd, &o.kube)
	return cmd
}

// getPipelines prints one pipeline or all of them.
func getPipelines(ctx context.Context, c *client, g *globals, name string, format outputFormat) error {
	var pls []*controlv1.Pipeline
	if name != "" {
		resp, err := c.pipelines.Get(ctx, &controlv1.GetPipelineRequest{Name: name})
		if err != nil {
			return c.rpcError("get pipeline/"+name, err)
		}
		pls = []*controlv1.Pipeline{resp.GetPipeline()}
	} else {
		resp, err := c.pipelines.List(ctx, &controlv1.ListPipelinesRequest{})
		if err != nil {
			return c.rpcError("list pipelines", err)
		}
		pls = resp.GetPipelines()
	}
	if format == outJSON || format == outYAML {
		return printObjects(g.stdout, format, name != "", pls)
	}
	if len(pls) == 0 {
		fmt.Fprintln(g.stderr, "No pipelines found. Apply one with `flowctl apply -f FILE`.")
		return nil
	}
	return pipelineTable(g.stdout, pls, format == outWide, time.Now())
}

// pipelineTable writes the pipelines table.
func pipelineTable(w io.Writer, pls []*controlv1.Pipeline, wide bool, now time.Time) error {
	headers := []string{"NAME", "REVISION", "PHASE", "READY", "RESTARTS", "AGE"}
	if wide {
		headers = append(headers, "RUNNING", "PID", "HASH", "UPDATED", "LAST-ERROR")
	}
	t := newTable(w, headers...)
	for _, p := range pls {
		st := p.GetStatus()
		row := []string{
			p.GetName(),
			strconv.FormatInt(p.GetRevision(), 10),
			phaseName(st.GetPhase()),
			readyCount(p),
			strconv.Itoa(int(st.GetRestarts())),
			ageSince(pipelineCreated(p), now),
		}
		if wide {
			row = append(row,
				revisionOrNone(st.GetRunningRevision()),
				pidOrNone(st.GetPid()),
				shortHash(p.GetHash()),
				ageSince(asTime(p.GetUpdatedAt()), now),
				st.GetLastError(),
			)
		}
		t.row(row...)
	}
	return t.flush()
}

// pipelineCreated is when the pipeline was first applied (the current
// revision's time when the server does not say).
func pipelineCreated(p *controlv1.Pipeline) time.Time {
	if t := asTime(p.GetCreatedAt()); !t.IsZero() {
		return t
	}
	return asTime(p.GetUpdatedAt())
}

// readyCount is "healthy/total" over the pipeline's components.
func readyCount(p *controlv1.Pipeline) string {
	healthy := 0
	for _, c := range p.GetComponents() {
		if c.GetHealth() == streamv1.HealthStatus_HEALTH_STATUS_HEALTHY {
			healthy++
		}
	}
	return fmt.Sprintf("%d/%d", healthy, len(p.GetComponents()))
}

// getComponents prints the registry's components (all, one pipeline's, or
// one).
func getComponents(ctx context.Context, c *client, g *globals, name string, format outputFormat) error {
	resp, err := c.registry.List(ctx, &streamv1.ListRequest{})
	if err != nil {
		return c.rpcError("list components", err)
	}
	var comps []*streamv1.ComponentStatus
	for _, cs := range resp.GetComponents() {
		pipe, comp := componentNames(cs.GetRegistration())
		id := cs.GetRegistration().GetId()
		if name == "" || id == name || (!strings.Contains(name, "/") && (pipe == name || comp == name)) {
			comps = append(comps, cs)
		}
	}
	sort.SliceStable(comps, func(i, j int) bool {
		return comps[i].GetRegistration().GetId() < comps[j].GetRegistration().GetId()
	})
	single := name != "" && strings.Contains(name, "/")
	if single && len(comps) == 0 {
		return fmt.Errorf("component %q is not registered: `flowctl get components` lists those that are", name)
	}
	if format == outJSON || format == outYAML {
		return printObjects(g.stdout, format, single, comps)
	}
	if len(comps) == 0 {
		if name != "" {
			fmt.Fprintf(g.stderr, "No components found for %q.\n", name)
		} else {
			fmt.Fprintln(g.stderr, "No components found.")
		}
		return nil
	}
	return componentTable(g.stdout, comps, format == outWide, time.Now())
}

// componentTable writes the components table.
func componentTable(w io.Writer, comps []*streamv1.ComponentStatus, wide bool, now time.Time) error {
	headers := []string{"NAME", "PIPELINE", "ROLE", "HEALTH", "ENDPOINT", "LAST-HEARTBEAT", "AGE"}
	if wide {
		headers = append(headers, "KIND", "VERSION", "PROTOCOL", "TTL", "METRICS")
	}
	t := newTable(w, headers...)
	for _, cs := range comps {
		reg := cs.GetRegistration()
		pipe, comp := componentNames(reg)
		role := roleName(reg.GetRole())
		if reg.GetMetadata()[report.MetaDeadLetter] == "true" {
			role = "dead_letter"
		}
		row := []string{
			comp,
			pipe,
			role,
			healthName(cs.GetHealth()),
			reg.GetEndpoint(),
			ageSince(asTime(cs.GetLastHeartbeat()), now),
			ageSince(asTime(cs.GetRegisteredAt()), now),
		}
		if wide {
			ttl := ""
			if cs.GetTtl() != nil {
				ttl = cs.GetTtl().AsDuration().String()
			}
			kind := reg.GetMetadata()[report.MetaKind]
			if kind == "" {
				kind = reg.GetName()
			}
			row = append(row, kind, reg.GetVersion(), cs.GetProtocol(), ttl, formatMetrics(cs.GetMetrics()))
		}
		t.row(row...)
	}
	return t.flush()
}

// componentNames are the pipeline and component a registration belongs
// to: from the metadata a pipeline's child registers with, else from the
// id.
func componentNames(reg *streamv1.Registration) (pipeline, component string) {
	pipeline, component = splitComponentID(reg.GetId())
	if p := reg.GetMetadata()[report.MetaPipeline]; p != "" {
		pipeline = p
	}
	if c := reg.GetMetadata()[report.MetaComponent]; c != "" {
		component = c
	}
	return pipeline, component
}

// splitComponentID splits a registry id "PIPELINE/COMPONENT"; an id
// without a slash belongs to no pipeline.
func splitComponentID(id string) (pipeline, component string) {
	if p, c, ok := strings.Cut(id, "/"); ok {
		return p, c
	}
	return "", id
}

// formatMetrics prints a metrics map as sorted k=v pairs.
func formatMetrics(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// getRuns prints runs: all, one pipeline's, or one run by id.
func getRuns(ctx context.Context, c *client, g *globals, name string, format outputFormat, limit int) error {
	runs, single, err := findRuns(ctx, c, name, limit)
	if err != nil {
		return err
	}
	if format == outJSON || format == outYAML {
		return printObjects(g.stdout, format, single, runs)
	}
	if len(runs) == 0 {
		if name != "" {
			fmt.Fprintf(g.stderr, "No runs found for %q.\n", name)
		} else {
			fmt.Fprintln(g.stderr, "No runs found.")
		}
		return nil
	}
	return runTable(g.stdout, runs, format == outWide, time.Now())
}

// findRuns lists runs for name: every run (""), a pipeline's runs
// ("PIPELINE"), or one run ("PIPELINE/N", single).
func findRuns(ctx context.Context, c *client, name string, limit int) (runs []*controlv1.Run, single bool, err error) {
	pipe, id, hasID := strings.Cut(name, "/")
	var n int64
	if hasID {
		n, err = strconv.ParseInt(id, 10, 64)
		if err != nil || n <= 0 {
			return nil, false, fmt.Errorf("run %q: use PIPELINE/N, N being the run number `flowctl get runs %s` shows", name, pipe)
		}
		limit = 1 << 20
	}
	resp, err := c.runs.ListRuns(ctx, &controlv1.ListRunsRequest{Pipeline: pipe, Limit: int32(limit)})
	if err != nil {
		return nil, false, c.rpcError("list runs", err)
	}
	if !hasID {
		return resp.GetRuns(), false, nil
	}
	for _, r := range resp.GetRuns() {
		if r.GetId() == n {
			return []*controlv1.Run{r}, true, nil
		}
	}
	return nil, true, fmt.Errorf("pipeline %q has no run %d", pipe, n)
}

// runTable writes the runs table.
func runTable(w io.Writer, runs []*controlv1.Run, wide bool, now time.Time) error {
	headers := []string{"ID", "PIPELINE", "REVISION", "STATE", "STARTED", "DURATION", "REASON"}
	if wide {
		headers = append(headers, "PID", "EXIT-CODE", "OUT")
	}
	t := newTable(w, headers...)
	for _, r := range runs {
		row := []string{
			strconv.FormatInt(r.GetId(), 10),
			r.GetPipeline(),
			strconv.FormatInt(r.GetRevision(), 10),
			runStateName(r.GetState()),
			ageSince(asTime(r.GetStartedAt()), now),
			runDuration(r, now),
			r.GetReason(),
		}
		if wide {
			exit := ""
			// An interrupted run's child was not seen to exit (the server
			// restarted): its code is unknown.
			if r.GetEndedAt() != nil && r.GetState() != controlv1.RunState_RUN_STATE_INTERRUPTED {
				exit = strconv.Itoa(int(r.GetExitCode()))
			}
			row = append(row, pidOrNone(r.GetPid()), exit, runOut(r))
		}
		t.row(row...)
	}
	return t.flush()
}

// runDuration is how long the run ran (so far, while running).
func runDuration(r *controlv1.Run, now time.Time) string {
	start := asTime(r.GetStartedAt())
	if start.IsZero() {
		return "<unknown>"
	}
	end := now
	if r.GetEndedAt() != nil {
		end = asTime(r.GetEndedAt())
	}
	return humanDuration(end.Sub(start))
}

// runOut lists how many events each component emitted ("out" of its
// counters) in the run's last report: gen=16,large=9,out=9.
func runOut(r *controlv1.Run) string {
	parts := make([]string, 0, len(r.GetCounters()))
	for _, cc := range r.GetCounters() {
		if v, ok := cc.GetCounters()["out"]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", cc.GetComponent(), v))
		}
	}
	return strings.Join(parts, ",")
}

// phaseName is a phase as a table shows it ("Running").
func phaseName(p controlv1.Phase) string {
	return enumWord(p.String(), "PHASE_")
}

// runStateName is a run state as a table shows it ("Completed").
func runStateName(s controlv1.RunState) string {
	return enumWord(s.String(), "RUN_STATE_")
}

// healthName is a health status as a table shows it ("Healthy").
func healthName(h streamv1.HealthStatus) string {
	return enumWord(h.String(), "HEALTH_STATUS_")
}

// roleName is a role as a table shows it ("source").
func roleName(r streamv1.Role) string {
	if r == streamv1.Role_ROLE_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// conditionStatusName is "True", "False" or "Unknown".
func conditionStatusName(s controlv1.ConditionStatus) string {
	return enumWord(s.String(), "CONDITION_STATUS_")
}

// enumWord turns "PREFIX_SOME_VALUE" into "SomeValue"; UNSPECIFIED is
// "Unknown".
func enumWord(s, prefix string) string {
	s = strings.TrimPrefix(s, prefix)
	if s == "UNSPECIFIED" || s == "" {
		return "Unknown"
	}
	var b strings.Builder
	for _, part := range strings.Split(strings.ToLower(s), "_") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func revisionOrNone(r int64) string {
	if r == 0 {
		return ""
	}
	return strconv.FormatInt(r, 10)
}

func pidOrNone(pid int32) string {
	if pid == 0 {
		return ""
	}
	return strconv.Itoa(int(pid))
}

// shortHash is the first 12 hex digits of a "sha256:..." hash.
func shortHash(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
