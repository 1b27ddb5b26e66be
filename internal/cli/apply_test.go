package cli

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/server"
	"github.com/flowctl/flowctl/internal/store/memory"
	"github.com/flowctl/flowctl/internal/tlsutil"
	"github.com/flowctl/flowctl/internal/tlsutil/tlstest"
)

// startServer runs a real flowctl server in this process on a loopback
// port with an in-memory store; its pipelines run as children of the
// flowctl binary built from this tree. It returns the address.
func startServer(t *testing.T) string {
	t.Helper()
	return startServerWith(t, server.Options{})
}

// startServerWith is startServer with some options set (TLS, say).
func startServerWith(t *testing.T, opts server.Options) string {
	t.Helper()
	opts.Store = memory.New()
	opts.DataDir = t.TempDir()
	opts.Executable = flowctlBinary(t)
	opts.Grace = 3 * time.Second
	opts.HeartbeatInterval = 200 * time.Millisecond
	opts.Version = "test"
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop within 30s")
		}
	})
	return lis.Addr().String()
}

// The pipeline file of the apply tests, and its changed version: keep
// changes (config), stamp goes (stop), tag comes (start), out changes
// (inputs), ticks and count stay as they were.
const (
	demoV1 = `name: demo
sources:
  - name: ticks
    type: generate
    config: {rate: 20, data: {kind: tick}}
processors:
  - name: keep
    type: filter
    inputs: [ticks]
    config: {expr: "data.kind == 'tick'"}
  - name: stamp
    type: map
    inputs: [keep]
    config: {set: {seen: "true"}}
sinks:
  - name: out
    type: drop
    inputs: [stamp]
  - name: count
    type: drop
    inputs: [keep]
`
	demoV2 = `name: demo
sources:
  - name: ticks
    type: generate
    config: {rate: 20, data: {kind: tick}}
processors:
  - name: keep
    type: filter
    inputs: [ticks]
    config: {expr: "data.kind != 'tock'"}
  - name: tag
    type: map
    inputs: [keep]
    config: {set: {tag: "'t'"}}
sinks:
  - name: out
    type: drop
    inputs: [tag]
  - name: count
    type: drop
    inputs: [keep]
`
)

// mask replaces what changes from run to run (ages, durations, times,
// PIDs, hashes, ports) with fixed words and re-aligns the table columns,
// so that golden files stay stable.
func mask(s string, extra map[string]string) string {
	for k, v := range extra {
		s = strings.ReplaceAll(s, k, v)
	}
	s = timeRE.ReplaceAllString(s, "TIME")
	s = ageRE.ReplaceAllString(s, "AGE")
	s = regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(s, "HOST:PORT")
	s = regexp.MustCompile(`sha256:[0-9a-f]{64}|\b[0-9a-f]{12}\b`).ReplaceAllString(s, "HASH")
	s = regexp.MustCompile(`(process(es)? |pid:)\d+`).ReplaceAllString(s, "${1}PID")
	s = regexp.MustCompile(`\b\d{3,}\b`).ReplaceAllString(s, "PID")
	// Re-align: a masked cell is wider or narrower than what it replaced.
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	for _, line := range strings.SplitAfter(s, "\n") {
		if line == "" {
			continue
		}
		tw.Write([]byte(strings.Join(regexp.MustCompile(` {2,}`).Split(strings.TrimRight(line, "\n"), -1), "\t") + "\n"))
	}
	tw.Flush()
	return b.String()
}

// TestApplyGetDeleteAgainstServer drives apply, get, describe, logs,
// status and delete against a real in-process server whose pipelines run
// as real `flowctl run` children.
func TestApplyGetDeleteAgainstServer(t *testing.T) {
	isolateClientConfig(t)
	addr := startServer(t)
	t.Setenv("FLOWCTL_SERVER", addr)
	dir := t.TempDir()
	file := filepath.Join(dir, "demo.yaml")
	writeFileAt(t, file, demoV1)

	run := func(t *testing.T, wantCode int, args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := runFlowctl(t, "", args...)
		if code != wantCode {
			t.Fatalf("flowctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
		}
		return stdout, stderr
	}
	golden := func(t *testing.T, name, got string) {
		t.Helper()
		checkGolden(t, filepath.Join("testdata", "apply", name), got)
	}

	// First apply, dry run: every component starts; nothing is stored.
	out, _ := run(t, 0, "apply", "-f", file, "--dry-run")
	golden(t, "first-dry-run.txt", out)
	_, stderr := run(t, 0, "get", "pipelines")
	if !strings.Contains(stderr, "No pipelines found") {
		t.Errorf("after a dry run: stderr %q, want no pipelines", stderr)
	}

	// Apply for real and wait until it is ready.
	out, _ = run(t, 0, "apply", "-f", file, "--wait", "--timeout", "30s")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "pipeline/demo created (revision 1)" || !strings.HasPrefix(lines[1], "pipeline/demo ready (revision 1, after ") {
		t.Fatalf("apply --wait:\n%s", out)
	}

	// The same file again: unchanged, and the dry run says so per component.
	out, _ = run(t, 0, "apply", "-f", file)
	if out != "pipeline/demo unchanged (revision 1)\n" {
		t.Errorf("re-apply: %q", out)
	}
	out, _ = run(t, 0, "apply", "-f", file, "--dry-run")
	golden(t, "unchanged-dry-run.txt", out)

	// Tables.
	out, _ = run(t, 0, "get", "pipelines")
	golden(t, "get-pipelines.txt", mask(out, nil))
	out, _ = run(t, 0, "get", "pl", "demo", "-o", "wide")
	golden(t, "get-pipeline-wide.txt", mask(out, nil))
	out, _ = run(t, 0, "get", "components", "demo")
	golden(t, "get-components.txt", mask(out, nil))

	var pl struct {
		Name     string `json:"name"`
		Revision string `json:"revision"`
		Status   struct {
			Phase string `json:"phase"`
		} `json:"status"`
	}
	out, _ = run(t, 0, "get", "pipeline", "demo", "-o", "json")
	if err := json.Unmarshal([]byte(out), &pl); err != nil || pl.Name != "demo" || pl.Revision != "1" || pl.Status.Phase != "PHASE_RUNNING" {
		t.Errorf("get -o json: %+v (%v)\n%s", pl, err, out)
	}
	out, _ = run(t, 0, "get", "pipelines", "-o", "yaml")
	if !strings.HasPrefix(out, "items:\n  - name: demo\n") {
		t.Errorf("get -o yaml:\n%s", out)
	}

	// A changed file: change / start / stop / unchanged.
	writeFileAt(t, file, demoV2)
	out, _ = run(t, 0, "apply", "-f", file, "--dry-run")
	golden(t, "changed-dry-run.txt", out)
	out, _ = run(t, 0, "apply", "-f", file, "--wait", "--timeout", "30s")
	if !strings.HasPrefix(out, "pipeline/demo configured (revision 2)\npipeline/demo ready (revision 2, after ") {
		t.Errorf("apply changed --wait:\n%s", out)
	}
	out, _ = run(t, 0, "get", "runs", "demo")
	golden(t, "get-runs.txt", mask(out, nil))
	// Applied in place: the same run goes on with the new revision.
	out, _ = run(t, 0, "get", "runs", "demo/1", "-o", "json")
	if !strings.Contains(out, `"state": "RUN_STATE_RUNNING"`) || !strings.Contains(out, `"revision": "2"`) {
		t.Errorf("get runs demo/1 -o json:\n%s", out)
	}
	// A change that cannot be applied in place says so in the dry run.
	writeFileAt(t, file, demoV2+"dead_letter: {name: failed, type: drop}\n")
	out, _ = run(t, 0, "apply", "-f", file, "--dry-run")
	golden(t, "restart-dry-run.txt", out)
	writeFileAt(t, file, demoV2)

	out, _ = run(t, 0, "describe", "pipeline", "demo")
	for _, want := range []string{"Name:", "demo", "Revision:", "Phase:", "Running", "Conditions:", "Ready", "Components:", "keep", "tag", "Recent runs:", "Recent logs:", "2 sources"} {
		if want == "2 sources" {
			want = "1 source, 2 processors, 2 sinks"
		}
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	// Created (revision 1) and Updated (revision 2) are both filled.
	for _, f := range []string{"Created", "Updated"} {
		if !regexp.MustCompile(`(?m)^` + f + `: +\S+ \(.+ ago\)$`).MatchString(out) {
			t.Errorf("describe lacks a %s time:\n%s", f, out)
		}
	}
	// The counters come from the components' heartbeats.
	counted := regexp.MustCompile(`(?m)^  ticks +source +generate +<none> +Healthy +\S+ +\S+ +[1-9]\d*\b`)
	for deadline := time.Now().Add(5 * time.Second); !counted.MatchString(out); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("describe shows no events out of ticks:\n%s", out)
			break
		}
		out, _ = run(t, 0, "describe", "pipeline", "demo")
	}
	run(t, 0, "logs", "demo", "--tail", "5")
	out, _ = run(t, 0, "status")
	for _, want := range []string{"Server:", addr, "Version:", "test", "Uptime:", "Pipelines:", "running 1", "Components:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	out, _ = run(t, 0, "delete", "pipeline", "demo")
	golden(t, "delete.txt", mask(out, nil))
	_, stderr = run(t, 1, "describe", "pipeline/demo")
	golden(t, "describe-missing.txt", stderr)
}

// TestApplyDirSubstitutesAndReportsFailure applies a directory of two
// files: ${VAR} is substituted here (the server stores the substituted
// file), both are created in name order, and --wait reports the failure of
// the one whose source cannot open its file, with the reason.
func TestApplyDirSubstitutesAndReportsFailure(t *testing.T) {
	isolateClientConfig(t)
	addr := startServer(t)
	dir := t.TempDir()
	writeFileAt(t, filepath.Join(dir, "a-ok.yaml"), `name: ok
sources:
  - name: gen
    type: generate
    config: {rate: ${RATE}, data: {kind: x}}
sinks:
  - name: out
    type: drop
    inputs: [gen]
`)
	writeFileAt(t, filepath.Join(dir, "b-broken.yml"), `name: broken
sources:
  - name: in
    type: file
    config: {path: does-not-exist.jsonl}
sinks:
  - name: out
    type: drop
    inputs: [in]
`)
	writeFileAt(t, filepath.Join(dir, "README.md"), "not a pipeline\n")
	t.Setenv("RATE", "7")

	code, stdout, stderr := runFlowctl(t, "", "apply", "-f", dir, "--server", addr)
	if code != 0 {
		t.Fatalf("apply DIR: exit %d\n%s%s", code, stdout, stderr)
	}
	if want := "pipeline/ok created (revision 1)\npipeline/broken created (revision 1)\n"; stdout != want {
		t.Errorf("apply DIR:\n%s\nwant\n%s", stdout, want)
	}

	code, stdout, stderr = runFlowctl(t, "", "get", "pl", "ok", "-o", "json", "--server", addr)
	if code != 0 {
		t.Fatalf("get: exit %d: %s", code, stderr)
	}
	var pl struct {
		Spec string `json:"spec"`
		Dir  string `json:"dir"`
	}
	if err := json.Unmarshal([]byte(stdout), &pl); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pl.Spec, "config: {rate: 7, data:") || pl.Dir != dir {
		t.Errorf("stored spec/dir: %q in %q, want rate 7 substituted in %q", pl.Spec, pl.Dir, dir)
	}

	code, stdout, stderr = runFlowctl(t, "", "apply", "-f", filepath.Join(dir, "b-broken.yml"), "--wait", "--timeout", "20s", "--server", addr)
	if code != 1 {
		t.Fatalf("apply --wait of a failing pipeline: exit %d\n%s%s", code, stdout, stderr)
	}
	if stdout != "pipeline/broken unchanged (revision 1)\n" {
		t.Errorf("stdout %q", stdout)
	}
	if !strings.HasPrefix(stderr, "flowctl: pipeline/broken failed (revision 1): ") || !strings.Contains(stderr, "does-not-exist.jsonl") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestLogsFollow follows a pipeline's logs and stops cleanly when the
// context ends (as Ctrl-C does).
func TestLogsFollow(t *testing.T) {
	isolateClientConfig(t)
	addr := startServer(t)
	file := filepath.Join(t.TempDir(), "demo.yaml")
	writeFileAt(t, file, demoV1)
	if code, out, errb := runFlowctl(t, "", "apply", "-f", file, "--wait", "--server", addr); code != 0 {
		t.Fatalf("apply: %s%s", out, errb)
	}
	// A new dead-letter sink restarts the run: the first run's summary
	// lands in the logs.
	writeFileAt(t, file, demoV1+"dead_letter: {name: failed, type: drop}\n")
	if code, out, errb := runFlowctl(t, "", "apply", "-f", file, "--wait", "--server", addr); code != 0 {
		t.Fatalf("apply: %s%s", out, errb)
	}
	sf := &serverFlags{server: addr}
	c, err := sf.connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var b strings.Builder
	err = streamLogs(ctx, c, &b, "demo", "", logsOptions{follow: true, tail: -1, prefix: true})
	if err != nil {
		t.Errorf("follow ended with %v, want nil on cancel", err)
	}
	if !strings.Contains(b.String(), "[run 1 ") || !strings.Contains(b.String(), `pipeline "demo" stopped`) {
		t.Errorf("followed logs lack run 1's summary:\n%s", b.String())
	}
	if ctx.Err() == nil {
		t.Error("follow returned before the context ended")
	}
}

// TestApplyWaitTenComponents measures `apply --wait` of a 10-component
// pipeline of built-ins (the target: ready in under 1 s; asserted
// loosely here, since CI machines are shared).
func TestApplyWaitTenComponents(t *testing.T) {
	isolateClientConfig(t)
	addr := startServer(t)
	var b strings.Builder
	b.WriteString("name: ten\nsources:\n  - name: gen\n    type: generate\n    config: {rate: 100, data: {n: 1}}\nprocessors:\n")
	prev := "gen"
	for i := 1; i <= 8; i++ {
		name := "f" + string(rune('0'+i))
		b.WriteString("  - name: " + name + "\n    type: filter\n    inputs: [" + prev + "]\n    config: {expr: \"data.n == 1\"}\n")
		prev = name
	}
	b.WriteString("sinks:\n  - name: out\n    type: drop\n    inputs: [" + prev + "]\n")
	file := filepath.Join(t.TempDir(), "ten.yaml")
	writeFileAt(t, file, b.String())

	start := time.Now()
	code, stdout, stderr := runFlowctl(t, "", "apply", "-f", file, "--wait", "--server", addr)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("apply --wait: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("apply --wait of 10 components: %v\n%s", took, stdout)
	if took > 5*time.Second {
		t.Errorf("apply --wait took %v", took)
	}

	// A wait that runs out of time says so, with the revision.
	code, stdout, stderr = runFlowctl(t, "", "apply", "-f", file, "--wait", "--timeout", "1ns", "--server", addr)
	if code != 1 || stdout != "pipeline/ten unchanged (revision 1)\n" || stderr != "flowctl: pipeline/ten not ready after 1ns (revision 1)\n" {
		t.Errorf("--timeout 1ns: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestObserveErrors checks the one-line errors of the observing commands
// against a real server that holds no pipeline.
func TestObserveErrors(t *testing.T) {
	isolateClientConfig(t)
	t.Setenv("FLOWCTL_SERVER", startServer(t))
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"get-missing", []string{"get", "pl", "nosuch"}, `flowctl: pipeline "nosuch" not found: ` + "`flowctl get pipelines` lists them\n"},
		{"describe-missing", []string{"describe", "pipeline", "nosuch"}, `flowctl: pipeline "nosuch" not found: ` + "`flowctl get pipelines` lists them\n"},
		{"delete-missing", []string{"delete", "pipeline", "nosuch"}, `flowctl: pipeline "nosuch" not found: ` + "`flowctl get pipelines` lists them\n"},
		{"logs-missing", []string{"logs", "nosuch"}, `flowctl: pipeline "nosuch" not found and has no logs: ` + "`flowctl get pipelines` lists them\n"},
		{"unknown-resource", []string{"get", "pods"}, `flowctl: unknown resource "pods": use pipelines (pipeline, pl), components (component, comp) or runs (run)` + "\n"},
		{"bad-output", []string{"get", "runs", "-o", "xml"}, `flowctl: -o "xml": use json, yaml or wide (or leave it out for a table)` + "\n"},
		{"describe-component", []string{"describe", "component", "x"}, "flowctl: only pipelines can be named here, not components\n"},
		{"run-not-number", []string{"get", "runs", "demo/abc"}, "flowctl: run \"demo/abc\": use PIPELINE/N, N being the run number `flowctl get runs demo` shows\n"},
		{"component-missing", []string{"get", "comp", "demo/x"}, "flowctl: component \"demo/x\" is not registered: `flowctl get components` lists those that are\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runFlowctl(t, "", tc.args...)
			if code != 1 || stdout != "" || stderr != tc.want {
				t.Errorf("exit %d, stdout %q, stderr\n%q\nwant\n%q", code, stdout, stderr, tc.want)
			}
		})
	}
	// Empty lists are not errors.
	for _, res := range []string{"pipelines", "components", "runs"} {
		code, stdout, stderr := runFlowctl(t, "", "get", res)
		if code != 0 || stdout != "" || !strings.HasPrefix(stderr, "No ") {
			t.Errorf("get %s on an empty server: exit %d, stdout %q, stderr %q", res, code, stdout, stderr)
		}
	}
}

// TestMutualTLS checks that the commands reach a server that wants client
// certificates with --tls-ca/--tls-cert/--tls-key, and that without a
// certificate the refusal is one clear line.
func TestMutualTLS(t *testing.T) {
	isolateClientConfig(t)
	b := tlstest.New(t)
	addr := startServerWith(t, server.Options{
		ServerOptions: []grpc.ServerOption{tlsutil.ServerCredentials(b.ServerConfig(t))},
		TLS:           true,
		MTLS:          true,
	})
	f := b.Files
	code, stdout, stderr := runFlowctl(t, "", "status", "--server", addr, "--tls-ca", f.CACert, "--tls-cert", f.ClientCert, "--tls-key", f.ClientKey)
	if code != 0 || !strings.Contains(stdout, "mutual TLS") {
		t.Errorf("status with a client certificate: exit %d\n%s%s", code, stdout, stderr)
	}
	file := filepath.Join(t.TempDir(), "demo.yaml")
	writeFileAt(t, file, demoV1)
	t.Setenv("FLOWCTL_TLS_CA", f.CACert)
	t.Setenv("FLOWCTL_TLS_CERT", f.ClientCert)
	t.Setenv("FLOWCTL_TLS_KEY", f.ClientKey)
	code, stdout, stderr = runFlowctl(t, "", "apply", "-f", file, "--dry-run", "--server", addr)
	if code != 0 || !strings.HasPrefix(stdout, "pipeline/demo created (revision 1) (dry run)") {
		t.Errorf("apply --dry-run over mTLS (credentials from the environment): exit %d\n%s%s", code, stdout, stderr)
	}

	t.Setenv("FLOWCTL_TLS_CERT", "")
	t.Setenv("FLOWCTL_TLS_KEY", "")
	code, stdout, stderr = runFlowctl(t, "", "get", "pipelines", "--server", addr)
	if code != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "client certificate") {
		t.Errorf("get without a client certificate: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
}
