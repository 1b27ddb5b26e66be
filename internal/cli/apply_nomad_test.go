package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/nomad/api"
)

// No Nomad agent runs here (it is not open source from v1.7.0). These
// tests run the CLI against nomadRecorder: an HTTP server that records
// the requests of Nomad's HTTP API flowctl makes, decodes each body
// strictly into the api package's own request types (an unknown field
// fails the test) and answers with its response types. They check the
// requests against Nomad's Go types, not against a running Nomad.

// nomadRequest is one request the recorder saw.
type nomadRequest struct {
	Method, Path, Query string
	Register            *api.JobRegisterRequest
	Plan                *api.JobPlanRequest
}

func (r nomadRequest) String() string { return r.Method + " " + r.Path + "?" + r.Query }

// nomadRecorder records Nomad HTTP API requests and answers them from
// jobs (by ID); it fails the test on a request it does not expect.
type nomadRecorder struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []nomadRequest
	jobs map[string]*api.Job
	// plan is the diff the plan endpoint answers.
	plan *api.JobPlanResponse
}

func newNomadRecorder(t *testing.T) *nomadRecorder {
	r := &nomadRecorder{t: t, jobs: map[string]*api.Job{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	t.Setenv("NOMAD_ADDR", r.srv.URL)
	for _, v := range []string{"NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "NOMAD_CACERT", "NOMAD_CLIENT_CERT", "NOMAD_CLIENT_KEY", "NOMAD_HTTP_AUTH"} {
		t.Setenv(v, "")
	}
	return r
}

func strictDecode(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}

func (r *nomadRecorder) serve(w http.ResponseWriter, req *http.Request) {
	rec := nomadRequest{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery}
	answer := func(v any) {
		w.Header().Set("X-Nomad-Index", "7")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(code int, format string, a ...any) {
		r.t.Errorf("nomadRecorder: %s: "+format, append([]any{rec}, a...)...)
		http.Error(w, fmt.Sprintf(format, a...), code)
	}
	defer func() {
		r.mu.Lock()
		r.reqs = append(r.reqs, rec)
		r.mu.Unlock()
	}()
	id, rest, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v1/job/"), "/")
	switch {
	case req.Method == http.MethodPut && req.URL.Path == "/v1/jobs":
		var body api.JobRegisterRequest
		if err := strictDecode(req.Body, &body); err != nil {
			fail(http.StatusBadRequest, "register body is not an api.JobRegisterRequest: %v", err)
			return
		}
		rec.Register = &body
		r.mu.Lock()
		r.jobs[*body.Job.ID] = body.Job
		r.mu.Unlock()
		answer(api.JobRegisterResponse{EvalID: "eval-register", EvalCreateIndex: 7, JobModifyIndex: 7})
	case req.Method == http.MethodPut && strings.HasPrefix(req.URL.Path, "/v1/job/") && rest == "plan":
		var body api.JobPlanRequest
		if err := strictDecode(req.Body, &body); err != nil {
			fail(http.StatusBadRequest, "plan body is not an api.JobPlanRequest: %v", err)
			return
		}
		rec.Plan = &body
		if *body.Job.ID != id {
			fail(http.StatusBadRequest, "plan of job %q at %q", *body.Job.ID, id)
			return
		}
		answer(r.plan)
	case req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v1/job/"):
		r.mu.Lock()
		job := r.jobs[id]
		r.mu.Unlock()
		if job == nil {
			http.Error(w, "job not found", http.StatusNotFound)
			return
		}
		switch rest {
		case "":
			answer(job)
		case "summary":
			answer(api.JobSummary{JobID: id, Namespace: "default", Summary: map[string]api.TaskGroupSummary{
				"in":  {Running: 1},
				"out": {Running: 1, Starting: 1, Failed: 2},
			}})
		default:
			fail(http.StatusNotFound, "unexpected")
		}
	case req.Method == http.MethodDelete && strings.HasPrefix(req.URL.Path, "/v1/job/") && rest == "":
		answer(api.JobDeregisterResponse{EvalID: "eval-deregister"})
	default:
		fail(http.StatusNotFound, "unexpected request")
	}
}

func (r *nomadRecorder) requests() []nomadRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]nomadRequest(nil), r.reqs...)
}

func (r *nomadRecorder) requestLines() string {
	var lines []string
	for _, q := range r.requests() {
		lines = append(lines, q.String())
	}
	return strings.Join(lines, "\n")
}

const nomadTestPipeline = `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: Pay_Ments
  namespace: team-a
spec:
  sources:
    - name: in
      type: generate
      config: {count: 5, data: {kind: ping, who: "${WHO:-nobody}"}}
  sinks:
    - name: out
      type: stdout
      inputs: [in]
      replicas: 2
`

func runNomadCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(args, nil, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestApplyNomad registers the translated job with ${VAR} substituted
// here, in the pipeline's namespace, with the exact requests Nomad's
// client makes; --dry-run plans with diff=true and prints the diff.
func TestApplyNomad(t *testing.T) {
	rec := newNomadRecorder(t)
	t.Setenv("WHO", "alice")
	pf := writeAt(t, filepath.Join(t.TempDir(), "pay.yaml"), nomadTestPipeline)

	rec.plan = &api.JobPlanResponse{
		Diff: &api.JobDiff{Type: "Edited", ID: "pay-ments", TaskGroups: []*api.TaskGroupDiff{
			{Type: "Added", Name: "in", Updates: map[string]uint64{"create": 1}, Tasks: []*api.TaskDiff{{Type: "Added", Name: "node"}}},
			{Type: "Edited", Name: "out", Updates: map[string]uint64{"in-place update": 2, "ignore": 0},
				Fields: []*api.FieldDiff{{Type: "Edited", Name: "Count", Old: "1", New: "2"}},
				Tasks: []*api.TaskDiff{{Type: "Edited", Name: "node", Annotations: []string{"forces create/destroy update"},
					Objects: []*api.ObjectDiff{{Type: "Edited", Name: "Config", Fields: []*api.FieldDiff{
						{Type: "Edited", Name: "image", Old: "flowctl:old", New: "flowctl:t"},
						{Type: "None", Name: "entrypoint[0]", Old: "/flowctl", New: "/flowctl"},
					}}}}}},
			{Type: "None", Name: "same"},
		}},
		FailedTGAllocs: map[string]*api.AllocationMetric{"out": {DimensionExhausted: map[string]int{"memory": 3}}},
	}
	code, stdout, stderr := runNomadCLI(t, "apply", "-f", pf, "--target", "nomad", "--image", "flowctl:t", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, stderr)
	}
	wantPlan := `pipeline/Pay_Ments: job pay-ments would be updated (dry run: nothing registered)
  + group "in" (create 1)
    + task "node"
  ~ group "out" (in-place update 2)
      ~ Count: "1" => "2"
    ~ task "node" (forces create/destroy update)
        ~ Config.image: "flowctl:old" => "flowctl:t"
  ! group "out" cannot be placed now: memory exhausted on 3 nodes
`
	if stdout != wantPlan {
		t.Errorf("dry run printed\n%s\nwant\n%s", stdout, wantPlan)
	}
	if got := rec.requestLines(); got != "PUT /v1/job/pay-ments/plan?namespace=team-a" {
		t.Fatalf("dry run requests:\n%s", got)
	}
	plan := rec.requests()[0].Plan
	if !plan.Diff || plan.PolicyOverride || *plan.Job.Namespace != "team-a" {
		t.Errorf("plan request %+v", plan)
	}
	if len(rec.jobs) != 0 {
		t.Fatal("a dry run registered the job")
	}

	code, stdout, stderr = runNomadCLI(t, "apply", "-f", pf, "--target", "nomad", "--image", "flowctl:t")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	reqs := rec.requests()
	if len(reqs) != 2 || reqs[1].String() != "PUT /v1/jobs?namespace=team-a" {
		t.Fatalf("apply requests:\n%s", rec.requestLines())
	}
	reg := reqs[1].Register
	if reg.EnforceIndex || reg.PolicyOverride || reg.PreserveCounts || reg.Submission != nil {
		t.Errorf("register options %+v", reg)
	}
	job := reg.Job
	if *job.ID != "pay-ments" || *job.Namespace != "team-a" || *job.Type != "service" || len(job.TaskGroups) != 2 {
		t.Fatalf("registered job %+v", job)
	}
	if *job.TaskGroups[1].Count != 2 || job.TaskGroups[0].Tasks[0].Config["image"] != "flowctl:t" {
		t.Errorf("groups %+v", job.TaskGroups)
	}
	data := *job.TaskGroups[0].Tasks[0].Templates[0].EmbeddedTmpl
	if !strings.Contains(data, `who: "alice"`) || strings.Contains(data, "${WHO") {
		t.Errorf("the job carries the file without ${VAR} substituted here:\n%s", data)
	}
	if !strings.Contains(stdout, "pipeline/Pay_Ments applied to nomad: job pay-ments at "+rec.srv.URL+", evaluation eval-register") {
		t.Errorf("stdout %q", stdout)
	}
	if !strings.Contains(stderr, "pay.yaml:1:1: warning: pipeline \"Pay_Ments\" becomes Nomad job \"pay-ments\"") {
		t.Errorf("stderr lacks the translation's warnings:\n%s", stderr)
	}
}

// TestGetDeleteNomad reads the job and its summary, then deregisters it
// without purging.
func TestGetDeleteNomad(t *testing.T) {
	rec := newNomadRecorder(t)
	rec.jobs["pay-ments"] = &api.Job{
		ID: new("pay-ments"), Namespace: new("default"), Status: new("running"), Type: new("service"), Version: new(uint64(3)),
		TaskGroups: []*api.TaskGroup{{Name: new("in"), Count: new(1)}, {Name: new("out"), Count: new(2)}},
	}
	code, stdout, stderr := runNomadCLI(t, "get", "pipelines", "Pay_Ments", "--target", "nomad")
	if code != 0 {
		t.Fatalf("get: exit %d\n%s", code, stderr)
	}
	want := `JOB        NAMESPACE  STATUS   VERSION  TYPE
pay-ments  default    running  3        service

GROUP  DESIRED  RUNNING  PENDING  FAILED  COMPLETE  LOST
in     1        1        0        0       0         0
out    2        1        1        2       0         0
`
	if stdout != want {
		t.Errorf("get printed\n%s\nwant\n%s", stdout, want)
	}
	code, stdout, stderr = runNomadCLI(t, "delete", "pipeline", "Pay_Ments", "--target", "nomad")
	if code != 0 {
		t.Fatalf("delete: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "pipeline/Pay_Ments deleted from nomad: job pay-ments stopped, evaluation eval-deregister") {
		t.Errorf("delete printed %q", stdout)
	}
	wantReqs := strings.Join([]string{
		"GET /v1/job/pay-ments?", "GET /v1/job/pay-ments/summary?",
		"GET /v1/job/pay-ments?", "DELETE /v1/job/pay-ments?purge=false",
	}, "\n")
	if got := rec.requestLines(); got != wantReqs {
		t.Errorf("requests\n%s\nwant\n%s", got, wantReqs)
	}

	// A job Nomad does not have.
	code, _, stderr = runNomadCLI(t, "delete", "pipeline", "nope", "--target", "nomad")
	if code == 0 || !strings.Contains(stderr, "pipeline/nope (Nomad job nope): not found in Nomad at "+rec.srv.URL) {
		t.Errorf("delete of a missing job: exit %d\n%s", code, stderr)
	}
}

// TestNomadNoAgent: nothing listens at NOMAD_ADDR.
func TestNomadNoAgent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close()
	t.Setenv("NOMAD_ADDR", addr)
	t.Setenv("NOMAD_TOKEN", "")
	pf := writeAt(t, filepath.Join(t.TempDir(), "pay.yaml"), nomadTestPipeline)
	for _, args := range [][]string{
		{"apply", "-f", pf, "--target", "nomad"},
		{"apply", "-f", pf, "--target", "nomad", "--dry-run"},
		{"get", "pipelines", "pay", "--target", "nomad"},
		{"delete", "pipeline", "pay", "--target", "nomad"},
	} {
		code, _, stderr := runNomadCLI(t, args...)
		if code == 0 || !strings.Contains(stderr, "no Nomad agent at "+addr) || !strings.Contains(stderr, "set NOMAD_ADDR") {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
	}
}

// TestNomadTargetFlags refuses what does not go with --target nomad.
func TestNomadTargetFlags(t *testing.T) {
	newNomadRecorder(t) // fails the test on any request
	pf := writeAt(t, filepath.Join(t.TempDir(), "pay.yaml"), nomadTestPipeline)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-f", pf, "--target", "nomad", "--tls"}, "--tls is not supported with --target nomad"},
		{[]string{"apply", "-f", pf, "--target", "nomad", "--wait"}, "--wait is for the flowctl server"},
		{[]string{"apply", "-f", pf, "--target", "nomad", "--out", "x"}, "--out goes with --target docker-compose"},
		{[]string{"get", "pipelines", "--target", "nomad"}, "give its name"},
		{[]string{"get", "runs", "x", "--target", "nomad"}, "pipelines only"},
		{[]string{"delete", "pipeline", "x", "--target", "nomad", "--volumes"}, "--volumes goes with --target docker-compose"},
		{[]string{"translate", "-f", pf, "--to", "nomad", "--tls", "-o", t.TempDir()}, "--tls is not supported with --to nomad"},
	} {
		code, _, stderr := runNomadCLI(t, c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, want %q in\n%s", c.args, code, c.want, stderr)
		}
	}
}

// TestTranslateCommandNomad writes the job file with -o and to stdout.
func TestTranslateCommandNomad(t *testing.T) {
	pf := writeAt(t, filepath.Join(t.TempDir(), "pay.yaml"), nomadTestPipeline)
	code, stdout, stderr := runNomadCLI(t, "translate", "-f", pf, "--to", "nomad", "--image", "flowctl:x")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var doc struct{ Job *api.Job }
	if err := strictDecode(strings.NewReader(stdout), &doc); err != nil || *doc.Job.ID != "pay-ments" {
		t.Fatalf("stdout is not a Nomad job: %v\n%s", err, stdout)
	}
	out := t.TempDir()
	code, _, stderr = runNomadCLI(t, "translate", "-f", pf, "--to", "nomad", "-o", out)
	if code != 0 || !strings.Contains(stderr, "wrote "+filepath.Join(out, "pay-ments.nomad.json")+" (1 files)") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}
