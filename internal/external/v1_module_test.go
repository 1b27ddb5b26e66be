package external

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/flow"
)

// repoRoot is the flowctl module's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the test's source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildV1Component builds test/v1component, a separate module written
// against our flowctl.v1 protobufs only, into the test's temporary
// directory. It needs no network: its dependencies are ours, already in
// the module cache (GOFLAGS=-mod=mod lets go record them in its go.sum).
func buildV1Component(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the test/v1component module")
	}
	bin := filepath.Join(t.TempDir(), "v1component")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(repoRoot(t), "test", "v1component")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test/v1component: %v\n%s", err, out)
	}
	return bin
}

// TestV1ModuleComponentThroughAdapter starts the separately built
// flowctl.v1 component as a child process, the way the process driver
// does (environment of the compat page, PORT a free host:port), and
// drives it through the flowctl-v1 protocol.
func TestV1ModuleComponentThroughAdapter(t *testing.T) {
	bin := buildV1Component(t)
	rt := newGRPCRuntime(t)
	for _, p := range []Protocol{v1Protocol{}, autoProtocol{}} {
		t.Run(p.Name(), func(t *testing.T) {
			id := "v1mod-" + p.Name()
			inst := instance(t, id, flow.RoleProcessor)
			launch, err := p.Launch(rt, inst.Component)
			if err != nil {
				t.Fatal(err)
			}
			if launch.Env["PORT"] == "" || strings.HasSuffix(launch.Env["PORT"], ":0") {
				t.Fatalf("PORT=%q: a flowctl.v1 component needs a real port", launch.Env["PORT"])
			}
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(),
				"ENABLE_FLOWCTL=true",
				"FLOWCTL_ENDPOINT="+rt.Endpoint,
				"FLOWCTL_COMPONENT_ID="+id,
				"FLOWCTL_HEARTBEAT_INTERVAL=1s",
				"PORT="+launch.Env["PORT"],
			)
			cmd.Stderr = tlogWriter{t}
			cmd.SysProcAttr = childProcAttr()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			inst.Exited = exited
			t.Cleanup(func() {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
			})
			conn := readyConns(t, p, rt, inst).Processor
			batch := jsonBatch("m", 100, func(i int) string {
				if i%10 == 0 {
					return `,"drop":true`
				}
				return ""
			})
			batch[1] = &flow.Event{ID: batch[1].ID, Type: "t", Data: batch[1].Data, Metadata: map[string]string{StellarCursorKey: "9:1"}}
			res, err := conn.Process(testCtx(t), batch)
			if err != nil {
				t.Fatal(err)
			}
			for i, in := range batch {
				outs := res.Outputs[i]
				if i%10 == 0 {
					if len(outs) != 0 {
						t.Fatalf("input %d was to be dropped: %v", i, outs)
					}
					continue
				}
				var m map[string]any
				if len(outs) != 1 || outs[0].ID != in.ID || outs[0].Type != "v1.t" || json.Unmarshal(outs[0].Data, &m) != nil || m["v1"] != true {
					t.Fatalf("input %d: %v", i, outs)
				}
			}
			if got := res.Outputs[1][0].Metadata[StellarCursorKey]; got != "9:1" {
				t.Fatalf("cursor %q after the flowctl.v1 hop, want 9:1", got)
			}
		})
	}
}

// TestV1ModuleComponentInPipeline runs the separately built flowctl.v1
// component in a pipeline with built-ins, through the real flowctl
// binary: generate → v1 processor → file sink.
func TestV1ModuleComponentInPipeline(t *testing.T) {
	bin := buildV1Component(t)
	dir := t.TempDir()
	flowctl := filepath.Join(dir, "flowctl")
	build := exec.Command("go", "build", "-o", flowctl, "./cmd/flowctl")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build flowctl: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out.jsonl")
	pipeline := fmt.Sprintf(`name: v1-module
sources:
  - name: gen
    type: generate
    config:
      count: 5000
      expr: '{"n": i, "drop": i %% 7 == 0}'
processors:
  - name: v1proc
    command: [%q]
    protocol: PROTOCOL
    inputs: [gen]
sinks:
  - name: out
    type: file
    inputs: [v1proc]
    config: {path: %q, format: envelope}
`, bin, out)
	for _, proto := range []string{"flowctl-v1", "auto"} {
		t.Run(proto, func(t *testing.T) {
			file := filepath.Join(dir, proto+".yaml")
			if err := os.WriteFile(file, []byte(strings.ReplaceAll(pipeline, "PROTOCOL", proto)), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(flowctl, "run", "-f", file, "--state-dir", t.TempDir())
			cmd.Dir = dir
			logs, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("flowctl run: %v\n%s", err, logs)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			seen := map[string]bool{}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var ev struct {
					ID   string
					Type string
					Data struct {
						N    int
						Drop bool
						V1   bool
					}
				}
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatalf("%v: %s", err, sc.Bytes())
				}
				if !ev.Data.V1 || ev.Data.Drop || ev.Data.N%7 == 0 || !strings.HasPrefix(ev.Type, "v1.") {
					t.Fatalf("unexpected output %s", sc.Bytes())
				}
				seen[ev.ID] = true
			}
			want := 5000 - (5000+6)/7
			if len(seen) != want {
				t.Fatalf("%d distinct events in the sink, want %d\n%s", len(seen), want, logs)
			}
		})
	}
}
