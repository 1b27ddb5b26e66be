package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/translate"
)

// `--target nomad` on apply, get and delete: the pipeline file translated
// into one Nomad job (as `flowctl translate --to nomad` writes it) and
// handed to Nomad's HTTP API through its own Go client, which reads
// NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT and
// the rest as the nomad CLI does. The job carries the pipeline file, so
// nothing is written here.

// nomadTarget reports whether --target names Nomad.
func nomadTarget(target string) bool { return target == string(translate.Nomad) }

// newNomadClient is the client of the Nomad agent the environment names.
// A variable so tests can count on the environment alone.
func newNomadClient() (*api.Client, string, error) {
	cfg := api.DefaultConfig()
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, cfg.Address, fmt.Errorf("nomad client for %s: %w", cfg.Address, err)
	}
	return c, cfg.Address, nil
}

// nomadError says what went wrong talking to Nomad: no agent, not found,
// refused (with Nomad's own words), or the error as it is.
func nomadError(addr, what string, err error) error {
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) && ue.HasStatusCode() {
		body := strings.TrimSpace(ue.Body())
		switch ue.StatusCode() {
		case http.StatusNotFound:
			return fmt.Errorf("%s: not found in Nomad at %s (%s)", what, addr, firstLineOf([]byte(body), err))
		case http.StatusForbidden, http.StatusUnauthorized:
			return fmt.Errorf("%s: Nomad at %s refused the request (%s): set NOMAD_TOKEN to a token allowed to submit and read jobs in the namespace", what, addr, firstLineOf([]byte(body), err))
		}
		return fmt.Errorf("%s: Nomad at %s answered %d: %s", what, addr, ue.StatusCode(), firstLineOf([]byte(body), err))
	}
	var ne net.Error
	var ue2 *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue2) {
		return fmt.Errorf("%s: no Nomad agent at %s (%v): set NOMAD_ADDR to a Nomad server's HTTP address (and NOMAD_TOKEN, NOMAD_CACERT when ACLs or TLS are on)", what, addr, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// runApplyNomad is `flowctl apply --target nomad`.
func runApplyNomad(g *globals, o applyOptions) error {
	if len(o.files) == 0 {
		return errors.New("no pipeline file given: use -f FILE or -f DIR")
	}
	if o.tls {
		return errors.New("--tls is not supported with --target nomad yet: Nomad gives each node an address known only at run time (see docs/nomad.md)")
	}
	if o.out != "" {
		return errors.New("--out goes with --target docker-compose: --target nomad writes no files (flowctl translate --to nomad -o DIR does)")
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
	image := o.image
	if image == "" {
		image = "flowctl:" + version
	}
	client, addr, err := newNomadClient()
	if err != nil {
		return err
	}
	for _, f := range files {
		res, err := translate.Translate(f.pl, translate.Options{
			Target: translate.Nomad, Image: image, PipelineData: f.data,
			Registry: components.NewRegistry(),
		})
		if err != nil {
			return err
		}
		for _, d := range res.Warnings {
			fmt.Fprintln(g.stderr, d.String())
		}
		job, err := decodeNomadJobFile(res.Main().Data)
		if err != nil {
			return err
		}
		q := &api.WriteOptions{}
		if job.Namespace != nil {
			q.Namespace = *job.Namespace
		}
		what := fmt.Sprintf("pipeline/%s (Nomad job %s)", f.pl.Name, *job.ID)
		if o.dryRun {
			plan, _, err := client.Jobs().Plan(job, true, q)
			if err != nil {
				return nomadError(addr, what, err)
			}
			printNomadPlan(g.stdout, f.pl.Name, plan)
			continue
		}
		resp, _, err := client.Jobs().Register(job, q)
		if err != nil {
			return nomadError(addr, what, err)
		}
		if resp.Warnings != "" {
			fmt.Fprintf(g.stderr, "%s: Nomad warns: %s\n", what, strings.TrimSpace(resp.Warnings))
		}
		fmt.Fprintf(g.stdout, "pipeline/%s applied to nomad: job %s at %s, evaluation %s (watch it with flowctl get pipelines %s --target nomad)\n",
			f.pl.Name, *job.ID, addr, resp.EvalID, f.pl.Name)
	}
	return nil
}

// decodeNomadJobFile reads back the job translate wrote ({"Job": ...}).
func decodeNomadJobFile(data []byte) (*api.Job, error) {
	var req struct{ Job *api.Job }
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Job == nil || req.Job.ID == nil {
		return nil, fmt.Errorf("internal error: the translated Nomad job does not decode: %v", err)
	}
	return req.Job, nil
}

// printNomadPlan summarises a plan's diff: the job, then per group and
// task whether it is added, deleted or edited, and each changed field.
func printNomadPlan(w io.Writer, name string, plan *api.JobPlanResponse) {
	d := plan.Diff
	if d == nil || d.Type == "None" || d.Type == "" {
		fmt.Fprintf(w, "pipeline/%s: unchanged in Nomad (dry run)\n", name)
		return
	}
	verb := map[string]string{"Added": "created", "Deleted": "deleted", "Edited": "updated"}[d.Type]
	if verb == "" {
		verb = strings.ToLower(d.Type)
	}
	fmt.Fprintf(w, "pipeline/%s: job %s would be %s (dry run: nothing registered)\n", name, d.ID, verb)
	writeNomadFields(w, "  ", "", d.Fields, d.Objects)
	for _, tg := range d.TaskGroups {
		if tg.Type == "None" && len(tg.Updates) == 0 {
			continue
		}
		line := fmt.Sprintf("  %s group %q", diffMark(tg.Type), tg.Name)
		if u := nomadUpdates(tg.Updates); u != "" {
			line += " (" + u + ")"
		}
		fmt.Fprintln(w, line)
		writeNomadFields(w, "      ", "", tg.Fields, tg.Objects)
		for _, t := range tg.Tasks {
			if t.Type == "None" {
				continue
			}
			line := fmt.Sprintf("    %s task %q", diffMark(t.Type), t.Name)
			if len(t.Annotations) > 0 {
				line += " (" + strings.Join(t.Annotations, ", ") + ")"
			}
			fmt.Fprintln(w, line)
			writeNomadFields(w, "        ", "", t.Fields, t.Objects)
		}
	}
	groups := make([]string, 0, len(plan.FailedTGAllocs))
	for g := range plan.FailedTGAllocs {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		m := plan.FailedTGAllocs[g]
		why := ""
		if m != nil {
			var parts []string
			for _, k := range sortedMapKeys(m.DimensionExhausted) {
				parts = append(parts, fmt.Sprintf("%s exhausted on %d nodes", k, m.DimensionExhausted[k]))
			}
			for _, k := range sortedMapKeys(m.ConstraintFiltered) {
				parts = append(parts, fmt.Sprintf("%s filtered %d nodes", k, m.ConstraintFiltered[k]))
			}
			if len(parts) > 0 {
				why = ": " + strings.Join(parts, "; ")
			}
		}
		fmt.Fprintf(w, "  ! group %q cannot be placed now%s\n", g, why)
	}
	if plan.Warnings != "" {
		fmt.Fprintf(w, "  Nomad warns: %s\n", strings.TrimSpace(plan.Warnings))
	}
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func diffMark(typ string) string {
	switch typ {
	case "Added":
		return "+"
	case "Deleted":
		return "-"
	case "Edited":
		return "~"
	}
	return " "
}

// nomadUpdates is a group's scheduler verdict ("create 1, in-place update 2").
func nomadUpdates(u map[string]uint64) string {
	var parts []string
	for _, k := range sortedMapKeys(u) {
		if u[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, u[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// writeNomadFields writes changed fields as PATH.NAME, nested objects
// flattened into the path; unchanged ones are left out.
func writeNomadFields(w io.Writer, indent, prefix string, fields []*api.FieldDiff, objects []*api.ObjectDiff) {
	for _, f := range fields {
		name := prefix + f.Name
		switch f.Type {
		case "Added":
			fmt.Fprintf(w, "%s+ %s: %q\n", indent, name, f.New)
		case "Deleted":
			fmt.Fprintf(w, "%s- %s: %q\n", indent, name, f.Old)
		case "Edited":
			fmt.Fprintf(w, "%s~ %s: %q => %q\n", indent, name, f.Old, f.New)
		}
	}
	for _, o := range objects {
		if o.Type == "None" {
			continue
		}
		writeNomadFields(w, indent, prefix+o.Name+".", o.Fields, o.Objects)
	}
}

// getNomadPipeline is `flowctl get pipelines NAME --target nomad`: the
// job's status and, per group, its allocations by state.
func getNomadPipeline(g *globals, name string) error {
	if name == "" {
		return errors.New("--target nomad shows one pipeline: give its name (flowctl get pipelines NAME --target nomad); nomad job status lists them all")
	}
	client, addr, err := newNomadClient()
	if err != nil {
		return err
	}
	id := translate.NomadJobID(name)
	what := fmt.Sprintf("pipeline/%s (Nomad job %s)", name, id)
	job, _, err := client.Jobs().Info(id, nil)
	if err != nil {
		return nomadError(addr, what, err)
	}
	sum, _, err := client.Jobs().Summary(id, nil)
	if err != nil {
		return nomadError(addr, what, err)
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	version := ""
	if job.Version != nil {
		version = fmt.Sprint(*job.Version)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tNAMESPACE\tSTATUS\tVERSION\tTYPE")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", str(job.ID), str(job.Namespace), str(job.Status), version, str(job.Type))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(g.stdout)
	tw = tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tDESIRED\tRUNNING\tPENDING\tFAILED\tCOMPLETE\tLOST")
	for _, tg := range job.TaskGroups {
		n := str(tg.Name)
		desired := 0
		if tg.Count != nil {
			desired = *tg.Count
		}
		s := sum.Summary[n]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", n, desired, s.Running, s.Queued+s.Starting, s.Failed, s.Complete, s.Lost+s.Unknown)
	}
	return tw.Flush()
}

// deleteNomad is `flowctl delete pipeline NAME --target nomad`: the job
// is stopped (deregistered, not purged: Nomad keeps it until garbage
// collection, and `nomad job status` still shows it).
func deleteNomad(g *globals, name string) error {
	client, addr, err := newNomadClient()
	if err != nil {
		return err
	}
	id := translate.NomadJobID(name)
	what := fmt.Sprintf("pipeline/%s (Nomad job %s)", name, id)
	if _, _, err := client.Jobs().Info(id, nil); err != nil {
		return nomadError(addr, what, err)
	}
	eval, _, err := client.Jobs().Deregister(id, false, nil)
	if err != nil {
		return nomadError(addr, what, err)
	}
	fmt.Fprintf(g.stdout, "pipeline/%s deleted from nomad: job %s stopped, evaluation %s (not purged: Nomad keeps it until garbage collection)\n", name, id, eval)
	return nil
}
