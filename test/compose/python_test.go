//go:build linux

package compose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rootfsWait bounds the wait for the Python root file system: .ci/run
// starts its debootstrap in the background (6 min on an idle two-core
// machine, 16 on a loaded one) and this test waits for it.
const rootfsWait = 20 * time.Minute

// pythonRootfs returns the cached tarball of a Debian bookworm root file
// system with python3 that test/images/python-rootfs.sh builds (or waits
// for, while .ci/run's background build holds its lock). Where it cannot
// be built (not root, no debootstrap) the test skips — except under
// CI=true, where .ci/run installs debootstrap, so that is a failure.
func pythonRootfs(t *testing.T) string {
	t.Helper()
	wait := rootfsWait
	if d, ok := t.Deadline(); ok && time.Until(d)-2*time.Minute < wait {
		wait = time.Until(d) - 2*time.Minute
	}
	if wait < time.Minute {
		t.Fatalf("too little time left to build or wait for the Python root file system (go test -timeout): %s", wait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	script, err := filepath.Abs("../images/python-rootfs.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, script)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PYTHON_ROOTFS_WAIT=%d", int(wait.Seconds())))
	// debootstrap runs in the script's process group: end it all on timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		reason := "no Python root file system can be built here: " + strings.TrimSpace(stderr.String())
		if os.Getenv("CI") == "true" {
			t.Fatal(reason + " (CI=true: .ci/run installs debootstrap)")
		}
		t.Skip(reason)
	case err != nil:
		t.Fatalf("%s: %v after %s\n%s", script, err, time.Since(start).Round(time.Second), stderr.String())
	}
	ls := strings.Split(strings.TrimSpace(string(out)), "\n")
	tarball := ls[len(ls)-1]
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("Python root file system ready after %s: %s", d.Round(time.Second), strings.TrimSpace(stderr.String()))
	}
	return tarball
}

// pythonNodeImage builds flowctl's node image with python3 in it: the
// root file system imported (`docker import`, no registry), flowctl's
// static binary added at /flowctl. Both images are removed at cleanup;
// only the tarball stays, in the cache outside the repository.
func pythonNodeImage(t *testing.T) string {
	t.Helper()
	tarball := pythonRootfs(t)
	bin := binaries(t)
	start := time.Now() // compiling flowctl is not the image's time
	base := unique("flowctl-e2e-pybase:")
	t.Cleanup(func() { _, _ = runErr("", time.Minute, "docker", "rmi", "-f", base) })
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	imp := exec.CommandContext(ctx, "docker", "import", "-", base)
	imp.Stdin = f
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("docker import %s: %v\n%s", tarball, err, out)
	}

	dir := t.TempDir()
	copyFile(t, filepath.Join(bin, "flowctl"), filepath.Join(dir, "flowctl"), 0o755)
	// Debian's /etc/nsswitch.conf already says `hosts: files dns`.
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+base+"\nCOPY flowctl /flowctl\nENTRYPOINT [\"/flowctl\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	image := unique("flowctl-e2e-python:")
	t.Cleanup(func() { _, _ = runErr("", time.Minute, "docker", "rmi", "-f", image) })
	run(t, dir, 3*time.Minute, "docker", "build", "-q", "-t", image, ".")
	t.Logf("Python node image %s built in %s (import of %s, COPY flowctl)", image, time.Since(start).Round(100*time.Millisecond), filepath.Base(tarball))
	return image
}

// replicas are the containers of one service, sorted by id.
func (p *project) replicas(service string) []container {
	p.t.Helper()
	var out []container
	for _, c := range p.containers() {
		if c.Service == service {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// fanoutPython is the pipeline: one file source fanned out to a built-in
// map with two replicas (each stamps its container's hostname), paced by
// a rate limit, and to a Python stdio processor run by its node, each into
// a file sink. The rate limit holds the map's batches unacknowledged
// (a node acknowledges upstream once its downstream did), so a replica
// killed mid-run has work in flight.
const fanoutPython = `name: fanout-python
sources:
  - name: src
    type: file
    config:
      path: data/events.jsonl
      batch_size: 50
processors:
  - name: tag
    type: map
    replicas: 2
    inputs: [src]
    config:
      set:
        # Resolved by flowctl node inside each container: Docker sets
        # HOSTNAME to the container's short id.
        replica: '"${HOSTNAME:-local}"'
  - name: pace
    type: rate_limit
    inputs: [tag]
    config: {rate: %d}
  - name: py
    command: [python3, stamp.py]   # started in the pipeline file's directory
    protocol: stdio
    inputs: [src]
    volumes:
      - host_path: stamp.py
        container_path: /etc/flowctl/stamp.py
        read_only: true
sinks:
  - name: tagged
    type: file
    inputs: [pace]
    config: {path: out/tagged.jsonl, format: envelope}
  - name: python
    type: file
    inputs: [py]
    config: {path: out/python.jsonl, format: envelope}
`

// outLine is one envelope line of either sink.
type outLine struct {
	ID   string `json:"id"`
	Data struct {
		N       *int   `json:"n"`
		Replica string `json:"replica"`
		Python  string `json:"python"`
	} `json:"data"`
}

func readOut(t *testing.T, path string) []outLine {
	t.Helper()
	var out []outLine
	for _, l := range lines(t, path) {
		var e outLine
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.ID == "" || e.Data.N == nil {
			t.Fatalf("%s: line without an id or n: %q (%v)", filepath.Base(path), l, err)
		}
		out = append(out, e)
	}
	return out
}

// countOnce checks every n in [0, count) is in ls and none other; it
// returns how many lines are duplicates (same id, or same n, again).
func countOnce(t *testing.T, what string, ls []outLine, count int) (dups int) {
	t.Helper()
	seenN := make([]int, count)
	seenID := map[string]bool{}
	for _, e := range ls {
		n := *e.Data.N
		if n < 0 || n >= count {
			t.Fatalf("%s: event %s has n=%d, outside [0,%d)", what, e.ID, n, count)
		}
		if seenN[n] > 0 != seenID[e.ID] {
			t.Fatalf("%s: event %s (n=%d) with an id and a payload seen a different number of times", what, e.ID, n)
		}
		seenN[n]++
		seenID[e.ID] = true
		if seenN[n] > 1 {
			dups++
		}
	}
	var missing []int
	for n, c := range seenN {
		if c == 0 {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s: %d of %d events lost, e.g. n=%v", what, len(missing), count, missing[:min(10, len(missing))])
	}
	return dups
}

// redelivered is what a container's node says it had redelivered, from
// the summary line of its last run ("… R redelivered (E events …").
func (p *project) redelivered(c container) (batches, events int, ok bool) {
	p.t.Helper()
	m := summary.FindAllStringSubmatch(run(p.t, "", time.Minute, "docker", "logs", c.ID), -1)
	if len(m) == 0 {
		return 0, 0, false
	}
	last := m[len(m)-1]
	batches, _ = strconv.Atoi(last[1])
	events, _ = strconv.Atoi(last[3])
	return batches, events, true
}

// TestFanoutReplicasPythonUnderCompose runs a file source fanned out to a
// built-in processor with `replicas: 2` (then a rate limit) and to a Python stdio processor
// (a `command:` component, run by its node inside a node image that holds
// python3: Debian from debootstrap plus flowctl's static binary), into two
// file sinks: seven containers. Every event reaches each sink once; both
// replicas take work. Then again with one replica killed mid-run (`docker
// kill`) and started again, and once more with the Python node's container
// killed (its python3 child dies with it): every event still arrives, and
// duplicates on the killed branch are at most the events its nodes count
// as redelivered (at-least-once across a node crash, docs/node.md); the
// other branch has none.
func TestFanoutReplicasPythonUnderCompose(t *testing.T) {
	requireCompose(t)
	image := pythonNodeImage(t)
	const count = 20000
	var events strings.Builder
	for i := range count {
		fmt.Fprintf(&events, `{"n":%d,"kind":"payment","pad":"%s"}`+"\n", i, strings.Repeat("x", 64))
	}

	for _, tc := range []struct {
		name string
		rate int    // events per second through pace
		kill string // the service whose container is killed mid-run: tag (its second replica) or py
	}{{"once", 100000, ""}, {"replica killed", 500, "tag"}, {"python node killed", 500, "py"}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(fmt.Sprintf(fanoutPython, tc.rate)), 0o644); err != nil {
				t.Fatal(err)
			}
			copyFile(t, "testdata/stamp.py", filepath.Join(dir, "stamp.py"), 0o644)
			if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "data", "events.jsonl"), []byte(events.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			// One --image for every service: translate has no per-component
			// node image, so the built-in nodes run the Python image too.
			warnings := flowctl(t, dir, "translate", "-f", "pipeline.yaml", "--to", "docker-compose", "-o", "deploy", "--image", image)
			if !strings.Contains(warnings, `processor "py" runs command "python3 stamp.py"`) {
				t.Errorf("translate did not warn that py runs a command inside the node's image:\n%s", warnings)
			}
			deploy := filepath.Join(dir, "deploy")
			run(t, deploy, time.Minute, "docker-compose", "-f", "docker-compose.yml", "config", "-q")

			p := composeUp(t, deploy)
			if n := len(p.containers()); n != 7 {
				t.Fatalf("%d containers, want 7 (src, tag ×2, pace, py, tagged, python)", n)
			}
			tags := p.replicas("tag")
			if len(tags) != 2 {
				t.Fatalf("%d containers of tag, want 2", len(tags))
			}
			pyNode := p.container("py") // looked up now: docker-compose ps takes seconds on a loaded machine
			tagged, python := filepath.Join(dir, "out", "tagged.jsonl"), filepath.Join(dir, "out", "python.jsonl")

			var killed container
			var before, killedBefore int
			if tc.kill != "" {
				// Kill once the branch's sink shows work (of both replicas
				// for tag), far from the end.
				sink := map[string]string{"tag": tagged, "py": python}[tc.kill]
				deadline := time.Now().Add(finishTimeout)
				for {
					ls := readOut(t, sink)
					per := map[string]int{}
					for _, e := range ls {
						per[e.Data.Replica]++
					}
					if tc.kill == "py" && len(ls) >= 2000 {
						killed = pyNode
						break
					}
					if tc.kill == "tag" && len(ls) >= 2000 && per[tags[0].ID[:12]] > 0 && per[tags[1].ID[:12]] > 0 {
						killed, killedBefore = tags[1], per[tags[1].ID[:12]]
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s wrote %d events (per tag replica %v) in %s", filepath.Base(sink), len(ls), per, finishTimeout)
					}
					time.Sleep(pollEvery)
				}
				run(t, "", time.Minute, "docker", "kill", killed.ID)
				before = len(lines(t, sink))
				if before >= count {
					t.Fatalf("%s had all %d events before the kill: nothing was in flight", filepath.Base(sink), before)
				}
				// docker kill is a manual stop: restart: on-failure leaves
				// the container down, and the sink waits for End from every
				// node upstream (docs/node.md), so start it again.
				run(t, deploy, time.Minute, "docker", "start", killed.ID)
			}
			p.waitFinished()

			tl, pl := readOut(t, tagged), readOut(t, python)
			tagDups := countOnce(t, "tagged.jsonl", tl, count)
			pyDups := countOnce(t, "python.jsonl", pl, count)
			per := map[string]int{}
			for _, e := range tl {
				per[e.Data.Replica]++
			}
			for _, c := range tags {
				if per[c.ID[:12]] == 0 {
					t.Errorf("replica %s of tag stamped no event: %v", c.ID[:12], per)
				}
			}
			if len(per) != 2 {
				t.Errorf("events stamped by %d hostnames, want the 2 replicas': %v", len(per), per)
			}
			for _, e := range pl {
				if e.Data.Python == "" {
					t.Fatalf("event %s did not go through stamp.py", e.ID)
				}
			}

			redelivered := 0
			for _, c := range tags {
				batches, ev, ok := p.redelivered(c)
				if !ok {
					t.Fatalf("tag replica %s printed no summary line", c.ID[:12])
				}
				if batches == 0 && c.ID != killed.ID {
					t.Errorf("tag replica %s received no batch from src", c.ID[:12])
				}
				redelivered += ev
			}
			_, pyRedelivered, ok := p.redelivered(pyNode)
			if !ok {
				t.Fatalf("py's node printed no summary line")
			}
			switch tc.kill {
			case "":
				if tagDups != 0 || pyDups != 0 || redelivered != 0 || pyRedelivered != 0 {
					t.Fatalf("without a crash: %d duplicates in tagged.jsonl, %d in python.jsonl, %d+%d events redelivered", tagDups, pyDups, redelivered, pyRedelivered)
				}
			case "tag":
				if pyDups != 0 {
					t.Errorf("%d duplicates on the Python branch, where no node was killed", pyDups)
				}
				if tagDups > redelivered {
					t.Errorf("%d duplicates in tagged.jsonl, but the tag replicas had only %d events redelivered", tagDups, redelivered)
				}
			case "py":
				if tagDups != 0 {
					t.Errorf("%d duplicates on the tag branch, where no node was killed", tagDups)
				}
				if pyDups > pyRedelivered {
					t.Errorf("%d duplicates in python.jsonl, but py's node had only %d events redelivered", pyDups, pyRedelivered)
				}
			}
			t.Logf("%d events per branch in %s; tag replicas stamped %v; killed: %q (container %s, %d of its events written when the kill was decided, %d of %d in its sink right after it); lost 0; duplicates: tagged %d, python %d; redelivered: %d events to tag, %d to py",
				count, time.Since(start).Round(100*time.Millisecond), per, tc.kill, shortID(killed), killedBefore, before, count, tagDups, pyDups, redelivered, pyRedelivered)
		})
	}
}

func shortID(c container) string {
	if len(c.ID) < 12 {
		return "-"
	}
	return c.ID[:12]
}
