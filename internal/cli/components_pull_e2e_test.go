package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/componentref"
	"github.com/flowctl/flowctl/internal/componentref/ocitest"
)

// runWithEnv runs the flowctl binary with extra environment, bounded in
// time, and returns its exit code and output.
func runWithEnv(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run flowctl %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// closedPort returns a loopback host:port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestComponentRefEndToEnd publishes examples/sdk-processor as an OCI
// image (binary at /component, metadata.json beside it) to a registry
// served on loopback, and uses it as a user would: components pull, ls
// --installed, a run of a pipeline naming it `type: usd@v1.0.0` (pulled
// by the run into a fresh cache), a changed cached binary, and no
// registry at all.
func TestComponentRefEndToEnd(t *testing.T) {
	bin := flowctlBinary(t)
	sdk, err := os.ReadFile(sdkProcessorBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := ocitest.Serve(t)
	meta := `{"name":"usd","type":"processor","produces":["payment","trade","fee"]}`
	img := ocitest.Image(t, "", "", ocitest.Layer(t,
		ocitest.File{Path: "component", Data: sdk, Mode: 0o755},
		ocitest.File{Path: "metadata.json", Data: []byte(meta), Mode: 0o644}))
	digest := reg.Push(t, reg.Host+"/withobsrvr/usd:v1.0.0", img)
	env := func(cache, registry string) []string {
		return []string{componentref.EnvCache + "=" + cache, componentref.EnvRegistry + "=" + registry}
	}

	// components pull HOST/ORG/NAME:VERSION, then ls --installed.
	cache := t.TempDir()
	code, out, errOut := runWithEnv(t, bin, env(cache, closedPort(t)), "components", "pull", reg.Host+"/withobsrvr/usd:v1.0.0")
	wantBin := filepath.Join(cache, "withobsrvr", "usd", "v1.0.0", componentref.BinaryName)
	if code != 0 || !strings.Contains(out, "image digest:  "+digest) || !strings.Contains(out, "installed at:  "+wantBin) ||
		!strings.Contains(out, "metadata:      a processor") {
		t.Fatalf("pull: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = runWithEnv(t, bin, env(cache, reg.Host), "components", "ls", "--installed", "-o", "json")
	var listed []installedJSON
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 1 {
		t.Fatalf("ls --installed -o json: exit %d\n%s\n%s", code, out, errOut)
	}
	if l := listed[0]; l.Name != "withobsrvr/usd" || l.Version != "v1.0.0" || l.ImageDigest != digest || l.Status != "ok" ||
		l.Path != wantBin || l.Size != int64(len(sdk)) {
		t.Fatalf("listed %+v", l)
	}
	code, out, _ = runWithEnv(t, bin, env(cache, reg.Host), "components", "ls", "--installed")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "withobsrvr/usd  v1.0.0") || !strings.Contains(out, digest[:19]) {
		t.Fatalf("ls --installed:\n%s", out)
	}

	// A pipeline naming it by reference; the run pulls it into an empty
	// cache from the registry of FLOWCTL_COMPONENT_REGISTRY.
	dir := t.TempDir()
	const n = 300
	writeEvents(t, filepath.Join(dir, "events.jsonl"), n)
	pipeline := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(pipeline, []byte(`apiVersion: flowctl/v1
kind: Pipeline
metadata: {name: refs}
spec:
  sources:
    - id: events
      type: file
      config: {path: events.jsonl}
  processors:
    - id: usd
      type: usd@v1.0.0
      protocol: grpc
      inputs: [events]
  sinks:
    - id: out
      type: file
      config: {path: out.jsonl}
      inputs: [usd]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	runCache := t.TempDir()
	run := func(registry string) (int, string) {
		t.Helper()
		os.Remove(filepath.Join(dir, "out.jsonl"))
		code, _, errOut := runWithEnv(t, bin, env(runCache, registry), "run", "-f", pipeline, "--state-dir", t.TempDir(), "--grace", "5s")
		return code, errOut
	}
	checkOut := func(errOut string) {
		t.Helper()
		lines := readLines(t, filepath.Join(dir, "out.jsonl"))
		if len(lines) != n {
			t.Fatalf("%d events out, want %d\n%s", len(lines), n, errOut)
		}
		for _, l := range lines {
			var ev struct {
				Amount    float64 `json:"amount"`
				AmountUSD float64 `json:"amount_usd"`
				Kind      string  `json:"kind"`
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.AmountUSD != ev.Amount/100 || ev.Kind != strings.ToUpper(ev.Kind) {
				t.Fatalf("event not processed by the component: %s (%v)", l, err)
			}
		}
	}
	code, errOut = run(reg.Host)
	if code != 0 || !strings.Contains(errOut, "flowctl run: pulling component usd@v1.0.0 from "+reg.Host+"/withobsrvr/usd:v1.0.0") {
		t.Fatalf("run: exit %d\n%s", code, errOut)
	}
	checkOut(errOut)
	// From the cache: no registry needed.
	code, errOut = run(closedPort(t))
	if code != 0 || strings.Contains(errOut, "pulling") {
		t.Fatalf("run from the cache: exit %d\n%s", code, errOut)
	}
	checkOut(errOut)

	// validate needs no network, and says whether it is installed.
	code, out, _ = runWithEnv(t, bin, env(runCache, closedPort(t)), "validate", "-f", pipeline)
	if code != 0 || strings.Contains(out, "not installed") {
		t.Fatalf("validate with the component installed: exit %d\n%s", code, out)
	}
	code, out, _ = runWithEnv(t, bin, env(t.TempDir(), closedPort(t)), "validate", "-f", pipeline)
	if code != 0 || !strings.Contains(out, "pipeline.yaml:11:13: warning: processor \"usd\": component usd@v1.0.0 is not installed") {
		t.Fatalf("validate without it: exit %d\n%s", code, out)
	}

	// A cached binary changed on disk is not run: with no registry the
	// run stops with one line; with the registry it is pulled again.
	cached := filepath.Join(runCache, "withobsrvr", "usd", "v1.0.0", componentref.BinaryName)
	if err := os.WriteFile(cached, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	closed := closedPort(t)
	code, errOut = run(closed)
	if code != 1 || !strings.Contains(errOut, "flowctl run: component usd@v1.0.0: "+cached+" was changed since it was pulled") ||
		!strings.Contains(errOut, "and pulling it again from "+closed+"/withobsrvr/usd:v1.0.0 failed") {
		t.Fatalf("run with a changed binary and no registry: exit %d\n%s", code, errOut)
	}
	code, errOut = run(reg.Host)
	if code != 0 || !strings.Contains(errOut, "was changed since it was pulled") || !strings.Contains(errOut, "pulling it again") {
		t.Fatalf("run with a changed binary: exit %d\n%s", code, errOut)
	}
	checkOut(errOut)

	// No registry and nothing cached: one line saying what to do.
	empty := t.TempDir()
	code, _, errOut = runWithEnv(t, bin, env(empty, closed), "run", "-f", pipeline, "--state-dir", t.TempDir())
	want := fmt.Sprintf("flowctl run: component usd@v1.0.0 is not installed and cannot be pulled from %s/withobsrvr/usd:v1.0.0 (", closed)
	suffix := fmt.Sprintf("): put the binary at %s, or run \"flowctl components pull usd@v1.0.0\" where the registry is reachable\n",
		filepath.Join(empty, "withobsrvr", "usd", "v1.0.0", componentref.BinaryName))
	// The notice of the attempt, then the error on one line.
	lines := strings.SplitAfter(strings.TrimSuffix(errOut, "\n"), "\n")
	if code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], "flowctl run: pulling component usd@v1.0.0") ||
		!strings.HasPrefix(lines[1], want) || !strings.HasSuffix(lines[1]+"\n", suffix) {
		t.Fatalf("run without registry: exit %d\n%s\nwant one line %s…%s", code, errOut, want, suffix)
	}
}
