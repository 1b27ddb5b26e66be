package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/components"
	"github.com/flowctl/flowctl/internal/drivers/docker"
	"github.com/flowctl/flowctl/internal/drivers/docker/dockertest"
	"github.com/flowctl/flowctl/internal/flow"
)

// These tests drive `flowctl sandbox` with the real binary and Debian's
// PostgreSQL server, started by the sandbox itself.

// needPostgres returns the psql to query the sandbox's server with. Under
// CI=true (where .ci/run installs Debian's postgresql) a missing server
// fails the test; elsewhere it skips.
func needPostgres(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the sandbox's end-to-end tests scan /proc for processes left behind: linux only")
	}
	servers, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if _, err := exec.LookPath("postgres"); err == nil {
		servers = append(servers, "postgres")
	}
	psql, err := exec.LookPath("psql")
	if len(servers) == 0 || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL's server or psql is missing under CI=true: .ci/run installs Debian's postgresql package")
		}
		t.Skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
	}
	return psql
}

// sandboxDir copies the files into a new directory that PostgreSQL,
// which the sandbox runs as the user postgres when the tests run as
// root, may enter.
func sandboxDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sandboxRun runs `flowctl sandbox ARGS...` in dir and returns its exit
// code, standard output and standard error.
func sandboxRun(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flowctlBinary(t), append([]string{"sandbox"}, args...)...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("flowctl sandbox %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// mustSandbox runs `flowctl sandbox ARGS...` and wants exit code 0.
func mustSandbox(t *testing.T, dir string, args ...string) string {
	t.Helper()
	code, out, errs := sandboxRun(t, dir, args...)
	if code != 0 {
		t.Fatalf("flowctl sandbox %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

var dbURLRE = regexp.MustCompile(`DB_URL=(postgres://\S+)`)

// sandboxPIDs are the pids the state file of the sandbox in dir records.
func sandboxPIDs(t *testing.T, dir, name string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".flowctl", "sandbox", name, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Services []struct {
			Process struct{ PID int } `json:"process"`
		} `json:"services"`
		Pipeline *struct{ PID int } `json:"pipeline"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, s := range st.Services {
		pids = append(pids, s.Process.PID)
	}
	if st.Pipeline != nil {
		pids = append(pids, st.Pipeline.PID)
	}
	return pids
}

// liveProcess reports whether pid runs (a zombie that nobody reaped, as
// happens under an init that does not reap, has ended).
func liveProcess(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// assertNothingLeft fails when a recorded pid still runs, or any process
// has dir in its command line.
func assertNothingLeft(t *testing.T, dir string, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if liveProcess(pid) {
			t.Errorf("pid %d from the state file still runs after down", pid)
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cl), dir) || !liveProcess(pid) {
			continue
		}
		t.Errorf("process %d is left behind after down: %s", pid, strings.ReplaceAll(string(cl), "\x00", " "))
	}
}

// psqlQuery runs one query against url and returns its unaligned output.
func psqlQuery(t *testing.T, psql, url, query string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, psql, url, "-X", "-v", "ON_ERROR_STOP=1", "-tAc", query).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitFileLines waits (bounded) until the file at path has n lines.
func waitFileLines(t *testing.T, path string, n int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), "\n") >= n {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has not %d lines after 30s:\n%s", path, n, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSandboxPostgresAndPipeline: up starts PostgreSQL and a pipeline
// that is given its URL; the database answers on it; status, logs and
// down work; down leaves no process; a second up keeps the data and the
// pipeline's checkpoint.
func TestSandboxPostgresAndPipeline(t *testing.T) {
	psql := needPostgres(t)
	dir := sandboxDir(t, map[string]string{
		"sandbox.yaml": "name: e2e\npipeline: pipeline.yaml\nservices:\n  db:\n    postgres: {database: payments}\n",
		"pipeline.yaml": `name: e2e
sources:
  - name: payments
    type: file
    config: {path: payments.jsonl, follow: true}
processors:
  - name: tag
    type: map
    inputs: [payments]
    config: {expr: '{"id": data.id, "db": "${DB_URL}"}'}
sinks:
  - name: out
    type: file
    inputs: [tag]
    config: {path: out.jsonl}
`,
		"payments.jsonl": "{\"id\":1}\n{\"id\":2}\n",
	})
	t.Cleanup(func() { sandboxRun(t, dir, "down", "--purge") })

	out := mustSandbox(t, dir, "up")
	m := dbURLRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "db        healthy") || !strings.Contains(out, "pipeline  running") {
		t.Fatalf("up printed no DB_URL or not everything healthy:\n%s", out)
	}
	url := m[1]
	if got := psqlQuery(t, psql, url, "SELECT current_database()"); got != "payments" {
		t.Errorf("the sandbox's database is %q, want payments", got)
	}
	psqlQuery(t, psql, url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
	lines := waitFileLines(t, filepath.Join(dir, "out.jsonl"), 2)
	if !strings.Contains(lines, `"db":"`+url+`"`) {
		t.Errorf("the pipeline was not given ${DB_URL} = %s:\n%s", url, lines)
	}

	if out := mustSandbox(t, dir, "status"); !strings.Contains(out, "db        healthy") {
		t.Errorf("status:\n%s", out)
	}
	if out := mustSandbox(t, dir, "logs", "db"); !strings.Contains(out, "database system is ready to accept connections") {
		t.Errorf("logs db:\n%s", out)
	}
	if out := mustSandbox(t, dir, "logs", "pipeline", "--tail", "50"); !strings.Contains(out, `checkpoints of "e2e"`) {
		t.Errorf("logs pipeline:\n%s", out)
	}
	if out := mustSandbox(t, dir, "logs", "--tail", "1"); !strings.Contains(out, "==> db <==\n") || !strings.Contains(out, "==> pipeline <==\n") {
		t.Errorf("logs (all):\n%s", out)
	}
	if code, out, _ := sandboxRun(t, dir, "logs", "nosuch"); code == 0 {
		t.Errorf("logs of an unknown name succeeded:\n%s", out)
	}
	if out := mustSandbox(t, dir, "up"); !strings.Contains(out, "already up") {
		t.Errorf("up on a sandbox that is up:\n%s", out)
	}

	pids := sandboxPIDs(t, dir, "e2e")
	if out := mustSandbox(t, dir, "down"); !strings.Contains(out, "stopped the pipeline\nstopped db") {
		t.Errorf("down stops the pipeline, then the database:\n%s", out)
	}
	assertNothingLeft(t, dir, pids)
	if code, out, _ := sandboxRun(t, dir, "status"); code != 1 || !strings.Contains(out, "not up") {
		t.Errorf("status after down: exit %d\n%s", code, out)
	}

	out = mustSandbox(t, dir, "up")
	url = dbURLRE.FindStringSubmatch(out)[1]
	if got := psqlQuery(t, psql, url, "SELECT n FROM kept"); got != "42" {
		t.Errorf("after down and up the table holds %q, want 42", got)
	}
	if lines := waitFileLines(t, filepath.Join(dir, "out.jsonl"), 2); strings.Count(lines, "\n") != 2 {
		t.Errorf("the pipeline resumed from its checkpoint, yet wrote again:\n%s", lines)
	}
	pids = sandboxPIDs(t, dir, "e2e")
	if out := mustSandbox(t, dir, "down", "--purge"); !strings.Contains(out, "removed") {
		t.Errorf("down --purge:\n%s", out)
	}
	assertNothingLeft(t, dir, pids)
	if _, err := os.Stat(filepath.Join(dir, ".flowctl", "sandbox", "e2e")); !os.IsNotExist(err) {
		t.Errorf("the sandbox directory after down --purge: %v", err)
	}
}

// copyExample copies the files of examples/NAME (not what a sandbox left
// there) into a directory PostgreSQL may enter.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", name)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return sandboxDir(t, files)
}

// waitQuery waits (bounded) until query answers want.
func waitQuery(t *testing.T, psql, url, query, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := psqlQueryMaybe(psql, url, query)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answers %q after 30s, want %q", query, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// psqlQueryMaybe is psqlQuery for a table that may not exist yet: the
// error is the answer.
func psqlQueryMaybe(psql, url, query string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, psql, url, "-X", "-v", "ON_ERROR_STOP=1", "-tAc", query).CombinedOutput()
	if err != nil {
		return "error: " + strings.TrimSpace(string(out))
	}
	return strings.TrimSpace(string(out))
}

// TestSandboxPostgresExample runs examples/sandbox-postgres as its README
// says: up brings PostgreSQL up and the pipeline writes the settled
// payments into it through the postgres sink; a payment appended later
// arrives too; down leaves no process; up again keeps the rows without
// writing them twice.
func TestSandboxPostgresExample(t *testing.T) {
	psql := needPostgres(t)
	if _, err := components.NewRegistry().Lookup(flow.RoleSink, "postgres"); err != nil {
		t.Skip("the built-in postgres sink (branch h-pgsink) is not in this tree: " + err.Error())
	}
	dir := copyExample(t, "sandbox-postgres")
	t.Cleanup(func() { sandboxRun(t, dir, "down", "--purge") })

	out := mustSandbox(t, dir, "up")
	m := dbURLRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "pipeline  running") {
		t.Fatalf("up:\n%s", out)
	}
	url := m[1]
	const rows = "SELECT string_agg(id || ':' || account || ':' || amount, ' ' ORDER BY id) FROM payments"
	waitQuery(t, psql, url, rows, "1:acc-17:1250 3:acc-17:5400 4:acc-42:75 6:acc-42:8800")

	fh, err := os.OpenFile(filepath.Join(dir, "payments.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(`{"id": 7, "account": "acc-99", "amount": 12, "status": "settled"}` + "\n")
	fh.Close()
	waitQuery(t, psql, url, "SELECT count(*) FROM payments", "5")

	if out := mustSandbox(t, dir, "status"); !strings.Contains(out, "db        healthy") || !strings.Contains(out, "pipeline  running") {
		t.Errorf("status:\n%s", out)
	}
	if out := mustSandbox(t, dir, "logs", "db"); !strings.Contains(out, "database system is ready to accept connections") {
		t.Errorf("logs db:\n%s", out)
	}
	if out := mustSandbox(t, dir, "logs", "pipeline"); !strings.Contains(out, `checkpoints of "payments-to-postgres"`) {
		t.Errorf("logs pipeline:\n%s", out)
	}

	pids := sandboxPIDs(t, dir, "payments-dev")
	mustSandbox(t, dir, "down")
	assertNothingLeft(t, dir, pids)

	out = mustSandbox(t, dir, "up")
	url = dbURLRE.FindStringSubmatch(out)[1]
	if got := psqlQuery(t, psql, url, "SELECT count(*), count(DISTINCT id) FROM payments"); got != "5|5" {
		t.Errorf("after down and up: count, distinct ids = %s, want 5|5", got)
	}
	pids = sandboxPIDs(t, dir, "payments-dev")
	mustSandbox(t, dir, "down", "--purge")
	assertNothingLeft(t, dir, pids)
}

// TestSandboxImageService runs an image service: a FROM-scratch image
// (built here, there is no registry) holding a static HTTP server, on the
// host's network, given its PORT and env. down stops the container (its
// helper process logs how it ended) and removes it.
func TestSandboxImageService(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("containers on the host's network: linux only")
	}
	if err := dockertest.Available(); err != nil {
		t.Skip("no Docker engine: " + err.Error())
	}
	bin := filepath.Join(t.TempDir(), "webserver")
	if err := dockertest.BuildStatic(filepath.Join("..", "sandbox"), "./testdata/webserver", bin); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cli, err := docker.New().Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tag := dockertest.Tag("sandbox-web")
	if err := dockertest.BuildScratchImage(ctx, cli, tag, bin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dockertest.RemoveImage(context.Background(), cli, tag) })
	dir := sandboxDir(t, map[string]string{"sandbox.yaml": `name: images
services:
  web:
    image: ` + tag + `
    env: {GREETING: "hello from the container"}
    health: {http: /health}
`})
	t.Cleanup(func() { sandboxRun(t, dir, "down", "--purge") })

	out := mustSandbox(t, dir, "up")
	m := regexp.MustCompile(`WEB_URL=(http://\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "web      healthy") {
		t.Fatalf("up:\n%s", out)
	}
	resp, err := http.Get(m[1] + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from the container" {
		t.Errorf("GET %s/health: %q", m[1], body)
	}
	if out := mustSandbox(t, dir, "logs", "web"); !strings.Contains(out, "web | serving on 127.0.0.1:") {
		t.Errorf("logs web:\n%s", out)
	}
	pids := sandboxPIDs(t, dir, "images")
	mustSandbox(t, dir, "down")
	assertNothingLeft(t, dir, pids)
	if out := mustSandbox(t, dir, "logs", "web"); !strings.Contains(out, "web | got SIGTERM") || !strings.Contains(out, "container of web ended: exit status 0") {
		t.Errorf("the container was not stopped gracefully; logs web:\n%s", out)
	}
	ps, err := exec.Command("docker", "ps", "-aq", "--filter", "label=flowctl.sandbox=images").CombinedOutput()
	if err != nil || strings.TrimSpace(string(ps)) != "" {
		t.Errorf("containers left after down: %q %v", ps, err)
	}
}

// TestSandboxPipelineFailsUp: a pipeline that does not start fails up,
// which prints the end of its log and stops the service it started.
func TestSandboxPipelineFailsUp(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("scans /proc for processes left behind: linux only")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is missing under CI=true: .ci/run installs it")
		}
		t.Skip("python3 is not installed")
	}
	dir := sandboxDir(t, map[string]string{
		"sandbox.yaml": `name: failing
pipeline: pipeline.yaml
services:
  mock:
    command: [python3, -m, http.server, --bind, 127.0.0.1, "${PORT}"]
`,
		"pipeline.yaml": `name: failing
sources:
  - name: in
    type: file
    config: {path: "${NOT_A_SANDBOX_VARIABLE}"}
sinks:
  - name: out
    type: stdout
    inputs: [in]
`,
	})
	t.Cleanup(func() { sandboxRun(t, dir, "down", "--purge") })
	code, out, errs := sandboxRun(t, dir, "up")
	if code != 1 {
		t.Fatalf("up of a broken pipeline: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"NOT_A_SANDBOX_VARIABLE", "stopped mock", "flowctl: pipeline: flowctl run exited (exit status 1) before it was ready"} {
		if !strings.Contains(errs, want) {
			t.Errorf("up's output lacks %q:\n%s", want, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".flowctl", "sandbox", "failing", "state.json")); !os.IsNotExist(err) {
		t.Errorf("state file after a failed up: %v", err)
	}
	assertNothingLeft(t, dir, nil)
}
