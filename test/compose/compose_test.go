package compose

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bounds of every wait: generous for a loaded two-core machine, finite.
const (
	finishTimeout = 3 * time.Minute
	pollEvery     = 300 * time.Millisecond
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// requireCompose skips the test when Docker or docker-compose cannot run.
func requireCompose(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("flowctl's image is linux/" + runtime.GOARCH + " and these tests mount host paths as Linux sees them")
	}
	for _, c := range [][]string{{"docker", "info"}, {"docker-compose", "version"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput()
		cancel()
		if err != nil {
			t.Skipf("%s fails, so no containers can run here: %v %s", strings.Join(c, " "), err, firstLine(out))
		}
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// binaries builds flowctl (static, linux) once, and examples/sdk-processor
// next to it.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "flowctl-compose-e2e")
		if buildErr != nil {
			return
		}
		for name, pkg := range map[string]string{"flowctl": "./cmd/flowctl", "sdk-processor": "./examples/sdk-processor"} {
			cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = "../.."
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// unique is a name no other test run uses: compose projects, images.
func unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// run runs a command (bounded), failing the test with its output.
func run(t *testing.T, dir string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// flowctl runs the static binary on this machine (it is linux too).
func flowctl(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return run(t, dir, 2*time.Minute, filepath.Join(binaries(t), "flowctl"), args...)
}

// buildImage builds flowctl's image from the Dockerfile translate wrote
// into dir, with the static binary copied next to it; removed at cleanup.
func buildImage(t *testing.T, dir, image string) {
	t.Helper()
	copyFile(t, filepath.Join(binaries(t), "flowctl"), filepath.Join(dir, "flowctl"), 0o755)
	t.Cleanup(func() { _, _ = runErr("", time.Minute, "docker", "rmi", "-f", image) })
	run(t, dir, 3*time.Minute, "docker", "build", "-q", "-t", image, ".")
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// project is a running Compose project, taken down (with its volumes)
// at cleanup.
type project struct {
	t    *testing.T
	dir  string
	name string
}

func composeUp(t *testing.T, dir string) *project {
	t.Helper()
	p := &project{t: t, dir: dir, name: unique("flowctle2e")}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := runErr(dir, time.Minute, "docker-compose", "-p", p.name, "logs", "--no-color", "--tail", "40")
			t.Logf("logs of project %s:\n%s", p.name, out)
		}
		if out, err := runErr(dir, 2*time.Minute, "docker-compose", "-p", p.name, "down", "-v", "--remove-orphans", "-t", "2"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	run(t, dir, 3*time.Minute, "docker-compose", "-p", p.name, "up", "-d")
	return p
}

// container is what docker inspect says of one service's container.
type container struct {
	ID, Service, Status string
	ExitCode, Restarts  int
}

func (p *project) containers() []container {
	p.t.Helper()
	ids := strings.Fields(run(p.t, p.dir, time.Minute, "docker-compose", "-p", p.name, "ps", "-q"))
	if len(ids) == 0 {
		p.t.Fatalf("project %s has no containers", p.name)
	}
	args := append([]string{"inspect", "--format", `{{.Id}} {{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}`}, ids...)
	var out []container
	for _, line := range strings.Split(strings.TrimSpace(run(p.t, "", time.Minute, "docker", args...)), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			p.t.Fatalf("docker inspect: unexpected line %q", line)
		}
		code, _ := strconv.Atoi(f[3])
		restarts, _ := strconv.Atoi(f[4])
		out = append(out, container{ID: f[0], Service: f[1], Status: f[2], ExitCode: code, Restarts: restarts})
	}
	return out
}

// waitFinished waits until every container exited 0 (a bounded pipeline's
// nodes do after End), failing on a non-zero exit or after finishTimeout.
func (p *project) waitFinished() {
	p.t.Helper()
	deadline := time.Now().Add(finishTimeout)
	for {
		done := true
		var states []string
		for _, c := range p.containers() {
			states = append(states, fmt.Sprintf("%s=%s(%d)", c.Service, c.Status, c.ExitCode))
			switch {
			case c.Status == "exited" && c.ExitCode != 0:
				p.t.Fatalf("service %s exited with %d", c.Service, c.ExitCode)
			case c.Status != "exited":
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the pipeline did not finish within %s: %s", finishTimeout, strings.Join(states, " "))
		}
		time.Sleep(pollEvery)
	}
}

func (p *project) container(service string) container {
	p.t.Helper()
	for _, c := range p.containers() {
		if c.Service == service {
			return c
		}
	}
	p.t.Fatalf("project %s has no service %s", p.name, service)
	return container{}
}

// logs are a service's logs, of every run of its container.
func (p *project) logs(service string) string {
	p.t.Helper()
	return run(p.t, p.dir, time.Minute, "docker", "logs", p.container(service).ID)
}

// lines reads a file's lines; a missing file has none.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sc.Text() != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

// ids are the "id" of each envelope line.
func ids(t *testing.T, ls []string) []string {
	t.Helper()
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		var e struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.ID == "" {
			t.Fatalf("line without an id: %q (%v)", l, err)
		}
		out = append(out, e.ID)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// setup copies a pipeline file (and data files) into a fresh directory
// laid out as a user's: DIR/pipeline.yaml, DIR/data/..., and translates it
// into DIR/deploy with a Dockerfile; extra are more translate flags.
func setup(t *testing.T, pipeline string, data map[string]string, extra ...string) (dir, deploy, image string) {
	t.Helper()
	dir = t.TempDir()
	copyFile(t, pipeline, filepath.Join(dir, filepath.Base(pipeline)), 0o644)
	for from, to := range data {
		copyFile(t, from, filepath.Join(dir, to), 0o644)
	}
	deploy = filepath.Join(dir, "deploy")
	image = unique("flowctl-e2e:")
	args := append([]string{"translate", "-f", filepath.Base(pipeline), "--to", "docker-compose", "-o", "deploy", "--dockerfile", "--image", image}, extra...)
	flowctl(t, dir, args...)
	buildImage(t, deploy, image)
	return dir, deploy, image
}

// TestFanoutFaninUnderCompose runs examples/fanout-fanin.yaml as seven
// containers and checks its two sink files hold what `flowctl run` writes.
func TestFanoutFaninUnderCompose(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{{"insecure", nil}, {"tls", []string{"--tls"}}} {
		t.Run(tc.name, func(t *testing.T) {
			requireCompose(t)
			dir, deploy, _ := setup(t, "../../examples/fanout-fanin.yaml", map[string]string{"../../examples/data/events.jsonl": "data/events.jsonl"}, tc.args...)
			p := composeUp(t, deploy)
			p.waitFinished()

			// The same file under flowctl run, writing elsewhere.
			local := t.TempDir()
			cmd := exec.Command(filepath.Join(binaries(t), "flowctl"), "run", "-f", filepath.Join(dir, "fanout-fanin.yaml"), "--state-dir", t.TempDir())
			cmd.Env = append(os.Environ(), "OUT_DIR="+local)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("flowctl run: %v\n%s", err, out)
			}

			gotReview, wantReview := sorted(lines(t, filepath.Join(dir, "out", "review.jsonl"))), sorted(lines(t, filepath.Join(local, "review.jsonl")))
			if len(wantReview) == 0 || strings.Join(gotReview, "\n") != strings.Join(wantReview, "\n") {
				t.Errorf("review.jsonl under Compose:\n%s\nunder flowctl run:\n%s", strings.Join(gotReview, "\n"), strings.Join(wantReview, "\n"))
			}
			gotFailed, wantFailed := ids(t, lines(t, filepath.Join(dir, "out", "failed.jsonl"))), ids(t, lines(t, filepath.Join(local, "failed.jsonl")))
			if len(wantFailed) == 0 || strings.Join(gotFailed, " ") != strings.Join(wantFailed, " ") {
				t.Errorf("failed.jsonl ids under Compose %v, under flowctl run %v", gotFailed, wantFailed)
			}
			for _, c := range p.containers() {
				if c.Restarts != 0 {
					t.Errorf("service %s was restarted %d times", c.Service, c.Restarts)
				}
			}
		})
	}
}

// summary is a node's last line: "... from upstream nodes B batches, R
// redelivered (E events, possible duplicates)".
var summary = regexp.MustCompile(`from upstream nodes (\d+) batches, (\d+) redelivered \((\d+) events`)

// TestFileVariablesUnderCompose: a ${VAR} without a default in the
// pipeline file reaches every node from the environment docker-compose
// runs in (translate lists it as a key without a value), so the file
// translated here runs there with the same value. The sink's memory limit
// is its container's, and its node gets nine tenths of it as GOMEMLIMIT.
func TestFileVariablesUnderCompose(t *testing.T) {
	requireCompose(t)
	const count = 7
	t.Setenv("FLOWCTL_E2E_COUNT", fmt.Sprint(count))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vars.yaml"), []byte(`name: vars
sources:
  - name: gen
    type: generate
    config: {count: ${FLOWCTL_E2E_COUNT}, batch_size: 3, expr: '{"n": i}'}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: out/out.jsonl, format: envelope}
    resources: {limits: {memory: 64Mi}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	deploy := filepath.Join(dir, "deploy")
	image := unique("flowctl-e2e:")
	flowctl(t, dir, "translate", "-f", "vars.yaml", "--to", "docker-compose", "-o", "deploy", "--dockerfile", "--image", image)
	compose, err := os.ReadFile(filepath.Join(deploy, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(compose), "FLOWCTL_E2E_COUNT:\n"); n != 2 {
		t.Fatalf("FLOWCTL_E2E_COUNT is a key without a value in %d services, want 2 (gen and out):\n%s", n, compose)
	}
	if strings.Contains(string(compose), fmt.Sprintf("FLOWCTL_E2E_COUNT: %d", count)) || strings.Contains(string(compose), fmt.Sprintf("FLOWCTL_E2E_COUNT=%d", count)) {
		t.Errorf("the value of FLOWCTL_E2E_COUNT is written into the Compose file:\n%s", compose)
	}
	buildImage(t, deploy, image)
	p := composeUp(t, deploy)
	p.waitFinished()
	got := ids(t, lines(t, filepath.Join(dir, "out", "out.jsonl")))
	if len(got) != count {
		t.Fatalf("%d events written, want %d: %v", len(got), count, got)
	}
	for _, c := range p.containers() {
		if c.Restarts != 0 {
			t.Errorf("service %s was restarted %d times", c.Service, c.Restarts)
		}
	}
	inspect := run(t, deploy, time.Minute, "docker", "inspect", "--format", `{{.HostConfig.Memory}} {{range .Config.Env}}{{.}} {{end}}`, p.container("out").ID)
	if f := strings.Fields(inspect); len(f) == 0 || f[0] != fmt.Sprint(64<<20) || !slices.Contains(f, "GOMEMLIMIT=57MiB") {
		t.Errorf("the sink's container: %q, want a memory limit of %d and GOMEMLIMIT=57MiB", inspect, 64<<20)
	}
}

// TestKillProcessorUnderCompose kills the processor's container while
// events flow and starts it again, then the sink's, and checks every event
// reached the sink file (none erased by the restarted sink), with no more
// duplicates than the events redelivered to the restarted nodes.
func TestKillProcessorUnderCompose(t *testing.T) {
	requireCompose(t)
	const count = 4000 // 27 s at 150/s: room for two kills on a loaded machine
	dir, deploy, _ := setup(t, "testdata/slow.yaml", nil)
	p := composeUp(t, deploy)
	out := filepath.Join(dir, "out", "out.jsonl")

	// Kill once the sink has written some, but far from all, events.
	deadline := time.Now().Add(finishTimeout)
	for len(lines(t, out)) < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("the sink wrote %d events in %s", len(lines(t, out)), finishTimeout)
		}
		time.Sleep(pollEvery)
	}
	pace := p.container("pace")
	run(t, "", time.Minute, "docker", "kill", pace.ID)
	before := len(lines(t, out))
	if before >= count {
		t.Fatalf("the sink had all %d events before the kill: nothing was in flight", before)
	}
	if c := p.container("pace"); c.Status == "running" && c.Restarts == 0 {
		t.Fatalf("pace still runs after docker kill")
	}
	// docker kill counts as a manual stop, so restart: on-failure leaves
	// the container down; the operator (or this test) starts it again.
	run(t, deploy, time.Minute, "docker-compose", "-p", p.name, "start", "pace")

	// Then the sink's: started again, it must append, not erase.
	for len(lines(t, out)) < before+150 {
		if time.Now().After(deadline) {
			t.Fatalf("the sink wrote %d events after the restart of pace within %s", len(lines(t, out))-before, finishTimeout)
		}
		time.Sleep(pollEvery)
	}
	run(t, "", time.Minute, "docker", "kill", p.container("out").ID)
	beforeSink := len(lines(t, out))
	if beforeSink >= count {
		t.Fatalf("the sink had all %d events before it was killed", beforeSink)
	}
	run(t, deploy, time.Minute, "docker-compose", "-p", p.name, "start", "out")
	p.waitFinished()

	got := ids(t, lines(t, out))
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	var missing []string
	for i := range count {
		if seen[fmt.Sprintf("gen:%d", i)] == 0 {
			missing = append(missing, strconv.Itoa(i))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d events lost after the kill, e.g. %v", len(missing), missing[:min(10, len(missing))])
	}
	if len(seen) != count {
		t.Fatalf("the sink holds %d distinct ids, want %d", len(seen), count)
	}
	dups := len(got) - count
	m := summary.FindAllStringSubmatch(p.logs("pace"), -1)
	if len(m) == 0 {
		t.Fatalf("pace's restarted node printed no summary line:\n%s", p.logs("pace"))
	}
	redelivered, _ := strconv.Atoi(m[len(m)-1][3])
	ms := summary.FindAllStringSubmatch(p.logs("out"), -1)
	if len(ms) == 0 {
		t.Fatalf("out's restarted node printed no summary line:\n%s", p.logs("out"))
	}
	sinkRedelivered, _ := strconv.Atoi(ms[len(ms)-1][3])
	if dups > redelivered+sinkRedelivered {
		t.Fatalf("%d duplicates at the sink, but only %d+%d events were redelivered to the restarted processor and sink", dups, redelivered, sinkRedelivered)
	}
	t.Logf("killed pace with %d of %d events written, out with %d; redelivered after the restarts: %d to pace, %d to out; %d duplicates at the sink",
		before, count, beforeSink, redelivered, sinkRedelivered, dups)
}

// TestSDKImageUnderCompose runs examples/sdk-processor, built static into
// a FROM-scratch image of its own, as an `image:` processor: translate
// makes it service usd-component and a node service usd that drives it at
// its PORT; every event goes through it exactly once — also when the
// image's container is killed mid-run and started again (the node
// connects again and redelivers what was in flight).
func TestSDKImageUnderCompose(t *testing.T) {
	requireCompose(t)
	sdkDir := t.TempDir()
	copyFile(t, filepath.Join(binaries(t), "sdk-processor"), filepath.Join(sdkDir, "sdk-processor"), 0o755)
	if err := os.WriteFile(filepath.Join(sdkDir, "Dockerfile"), []byte("FROM scratch\nCOPY sdk-processor /sdk-processor\nENTRYPOINT [\"/sdk-processor\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sdkImage := unique("flowctl-e2e-sdk:")
	t.Cleanup(func() { _, _ = runErr("", time.Minute, "docker", "rmi", "-f", sdkImage) })
	run(t, sdkDir, 3*time.Minute, "docker", "build", "-q", "-t", sdkImage, ".")

	for _, tc := range []struct {
		name  string
		count int
		rate  int // events per second from the source; 0: as fast as taken
		kill  bool
	}{{"once", 500, 0, false}, {"component killed", 2000, 200, true}} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "sdk.yaml")
			if err := os.WriteFile(src, []byte(fmt.Sprintf(`name: sdk
sources:
  - name: gen
    type: generate
    config:
      count: %d
      rate: %d
      batch_size: 25
      expr: '{"amount": i * 100, "kind": "payment"}'
processors:
  - name: usd
    image: %s
    ports: [{name: grpc, containerPort: 50051}]
    startup_timeout: 60s
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [usd]
    config: {path: out/out.jsonl, format: envelope}
`, tc.count, tc.rate, sdkImage)), 0o644); err != nil {
				t.Fatal(err)
			}
			dir, deploy, _ := setup(t, src, nil)
			p := composeUp(t, deploy)
			out := filepath.Join(dir, "out", "out.jsonl")
			if tc.kill {
				deadline := time.Now().Add(finishTimeout)
				for len(lines(t, out)) < 100 {
					if time.Now().After(deadline) {
						t.Fatalf("the sink wrote %d events in %s", len(lines(t, out)), finishTimeout)
					}
					time.Sleep(pollEvery)
				}
				run(t, "", time.Minute, "docker", "kill", p.container("usd-component").ID)
				if before := len(lines(t, out)); before >= tc.count {
					t.Fatalf("the sink had all %d events before the kill", before)
				}
				run(t, deploy, time.Minute, "docker-compose", "-p", p.name, "start", "usd-component")
			}
			// The SDK processor serves until stopped: the pipeline is
			// finished when every node exited 0.
			deadline := time.Now().Add(finishTimeout)
			for {
				pending := 0
				for _, c := range p.containers() {
					if c.Service == "usd-component" {
						continue
					}
					if c.Status == "exited" && c.ExitCode != 0 {
						t.Fatalf("service %s exited with %d", c.Service, c.ExitCode)
					}
					if c.Status != "exited" {
						pending++
					}
				}
				if pending == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d node services still run after %s", pending, finishTimeout)
				}
				time.Sleep(pollEvery)
			}

			ls := lines(t, out)
			seen := map[string]int{}
			for _, l := range ls {
				var e struct {
					ID   string `json:"id"`
					Data struct {
						Amount    float64 `json:"amount"`
						AmountUSD float64 `json:"amount_usd"`
						Kind      string  `json:"kind"`
					} `json:"data"`
				}
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				if e.Data.Kind != "PAYMENT" || e.Data.AmountUSD != e.Data.Amount/100 {
					t.Fatalf("event %s did not go through the SDK processor: %s", e.ID, l)
				}
				seen[e.ID]++
			}
			for i := range tc.count {
				if n := seen[fmt.Sprintf("gen:%d", i)]; n != 1 {
					t.Fatalf("gen:%d written %d times, want once", i, n)
				}
			}
			if len(ls) != tc.count {
				t.Fatalf("%d events written, want %d", len(ls), tc.count)
			}
		})
	}
}

// flowctlEnv runs the binary with extra environment, returning its
// output and error (the caller checks).
func flowctlEnv(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binaries(t), "flowctl"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestApplyCompose drives `flowctl apply/get/delete --target
// docker-compose` as a user would: a dry run that writes and starts
// nothing, an apply that runs the pipeline to completion, get, a second
// dry run without and with a change, and delete, which keeps the
// checkpoints' volume.
func TestApplyCompose(t *testing.T) {
	requireCompose(t)
	dir := t.TempDir()
	name := unique("applye2e")
	image := unique("flowctl-e2e:")
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`name: `+name+`
sources:
  - name: gen
    type: generate
    config: {count: ${COUNT}, batch_size: 10, expr: '{"n": i}'}
sinks:
  - name: out
    type: file
    inputs: [gen]
    config: {path: out/out.jsonl, format: envelope}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	// flowctl's image, from the Dockerfile translate writes.
	if out, err := flowctlEnv(t, dir, []string{"COUNT=1"}, "translate", "-f", "p.yaml", "--to", "docker-compose", "-o", "image", "--dockerfile", "--image", image); err != nil {
		t.Fatalf("translate: %v\n%s", err, out)
	}
	buildImage(t, filepath.Join(dir, "image"), image)

	deploy := filepath.Join(dir, ".flowctl", "compose", name)
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(deploy, "docker-compose.yml")); err == nil {
			_, _ = runErr(deploy, 2*time.Minute, "docker-compose", "-p", name, "down", "-v", "--remove-orphans", "-t", "2")
		}
		_, _ = runErr("", time.Minute, "docker", "volume", "rm", "-f", name+"_gen-state")
	})

	out, err := flowctlEnv(t, dir, []string{"COUNT=40"}, "apply", "-f", "p.yaml", "--target", "docker-compose", "--image", image, "--dry-run")
	if err != nil || !strings.Contains(out, "+++ docker-compose.yml (new)") || !strings.Contains(out, "would change") {
		t.Fatalf("first dry run: %v\n%s", err, out)
	}
	if _, err := os.Stat(deploy); !os.IsNotExist(err) {
		t.Fatalf("the dry run wrote %s (%v)", deploy, err)
	}

	out, err = flowctlEnv(t, dir, []string{"COUNT=40"}, "apply", "-f", "p.yaml", "--target", "docker-compose", "--image", image)
	if err != nil || !strings.Contains(out, "pipeline/"+name+" applied to docker-compose") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	p := &project{t: t, dir: deploy, name: name}
	p.waitFinished()
	got := ids(t, lines(t, filepath.Join(dir, "out", "out.jsonl")))
	if len(got) != 40 {
		t.Fatalf("%d events written, want 40: %v", len(got), got)
	}
	for i, id := range got {
		if i > 0 && got[i-1] == id {
			t.Fatalf("%s written twice", id)
		}
	}

	out, err = flowctlEnv(t, dir, nil, "get", "pipelines", name, "--target", "docker-compose")
	if err != nil || !regexp.MustCompile(name+`\s+`+name+`\s+Completed\s+0/2\s+2\s+0\s+2`).MatchString(out) {
		t.Fatalf("get pipelines: %v\n%s", err, out)
	}

	out, err = flowctlEnv(t, dir, []string{"COUNT=40"}, "apply", "-f", "p.yaml", "--target", "docker-compose", "--image", image, "--dry-run")
	if err != nil || !strings.Contains(out, "unchanged") || strings.Contains(out, "+++") {
		t.Fatalf("dry run of the applied file: %v\n%s", err, out)
	}
	out, err = flowctlEnv(t, dir, []string{"COUNT=50"}, "apply", "-f", "p.yaml", "--target", "docker-compose", "--image", image, "--dry-run")
	if err != nil || !strings.Contains(out, "- ") || !strings.Contains(out, "count: 40") || !strings.Contains(out, "count: 50") || !strings.Contains(out, "1 file would change") {
		t.Fatalf("dry run of a change: %v\n%s", err, out)
	}

	// Applying the changed file recreates the services (only the mounted
	// file changed); the generator resumes from its checkpoint volume.
	out, err = flowctlEnv(t, dir, []string{"COUNT=50"}, "apply", "-f", "p.yaml", "--target", "docker-compose", "--image", image)
	if err != nil || !strings.Contains(out, "applied to docker-compose") {
		t.Fatalf("apply of a change: %v\n%s", err, out)
	}
	p.waitFinished()
	got = ids(t, lines(t, filepath.Join(dir, "out", "out.jsonl")))
	if len(got) != 50 {
		t.Fatalf("after the re-apply %d events written, want 50 (40, then 10 more from the checkpoint)", len(got))
	}
	for i, id := range got {
		if i > 0 && got[i-1] == id {
			t.Fatalf("%s written twice after the re-apply", id)
		}
	}

	out, err = flowctlEnv(t, dir, nil, "delete", "pipeline", name, "--target", "docker-compose")
	if err != nil || !strings.Contains(out, "deleted from docker-compose") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if left := run(t, "", time.Minute, "docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+name); strings.TrimSpace(left) != "" {
		t.Fatalf("containers left after delete: %s", left)
	}
	if _, err := runErr("", time.Minute, "docker", "volume", "inspect", name+"_gen-state"); err != nil {
		t.Fatalf("delete without --volumes removed the checkpoints' volume: %v", err)
	}
	if out, err = flowctlEnv(t, dir, nil, "get", "pipelines", name, "--target", "docker-compose"); err == nil {
		t.Fatalf("get after delete found the pipeline:\n%s", out)
	}
}
