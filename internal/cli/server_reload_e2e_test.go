package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	controlv1 "github.com/flowctl/flowctl/pkg/wire/controlv1"
)

// reloadPipelineText is a pipeline that keeps running: a paced generator,
// a filter keeping the ids where keep holds, a file sink.
func reloadPipelineText(keep string) string {
	return `name: reload
sources:
  - name: gen
    type: generate
    config: {count: 0, rate: 100, batch_size: 5, expr: '{"i": i}'}
processors:
  - {name: keep, type: filter, inputs: [gen], config: {expr: "` + keep + `"}}
sinks:
  - name: out
    type: file
    inputs: [keep]
    config: {path: reload.jsonl, format: envelope}
`
}

// readIDs returns the generator indexes in an envelope JSON lines file.
func readIDs(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var env struct{ ID string }
		if json.Unmarshal(sc.Bytes(), &env) != nil {
			continue // a line being written
		}
		if i, err := strconv.Atoi(strings.TrimPrefix(env.ID, "gen:")); err == nil {
			ids = append(ids, i)
		}
	}
	return ids
}

// componentCounter is a component's counter as the server shows it.
func componentCounter(t *testing.T, c *controlClient, pipeline, comp, counter string) int64 {
	t.Helper()
	for _, cs := range getPipeline(t, c, pipeline).GetComponents() {
		if cs.GetName() == comp {
			return cs.GetCounters()[counter]
		}
	}
	return -1
}

// TestServerReloadInPlace applies a running pipeline, then a revision that
// changes only the filter's condition: the server applies it in place (the
// child gets SIGHUP): the same pid runs revision 2 in the same run, the
// source's counter keeps rising from where it was, and the output after
// the change follows the new condition with no id lost on the way.
func TestServerReloadInPlace(t *testing.T) {
	bin := flowctlBinary(t)
	work, dataDir := t.TempDir(), t.TempDir()
	c := dialControl(t, startServerProc(t, bin, dataDir).addr)
	out := filepath.Join(work, "reload.jsonl")

	if r := apply(t, c, work, "reload.yaml", reloadPipelineText("data.i % 2 == 0")); r.GetRejected() || r.GetRevision() != 1 {
		t.Fatalf("first apply = %v", r)
	}
	var pid int32
	waitFor(t, 15*time.Second, "the pipeline to be ready", func() bool {
		p := getPipeline(t, c, "reload")
		pid = p.GetStatus().GetPid()
		return p.GetStatus().GetPhase() == controlv1.Phase_PHASE_RUNNING && readyCondition(p) && pid > 0
	})
	waitFor(t, 10*time.Second, "the source's counter", func() bool { return componentCounter(t, c, "reload", "gen", "out") > 0 })
	before := componentCounter(t, c, "reload", "gen", "out")

	// The dry run says what changes, and no longer that everything restarts.
	v2 := reloadPipelineText("data.i % 5 == 0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	dry, err := c.pipelines.Apply(ctx, &controlv1.ApplyRequest{Spec: []byte(v2), Dir: work, File: "reload.yaml", DryRun: true})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	printApplyResult(&table, dry)
	checkGolden(t, filepath.Join("testdata", "apply", "reload-dry-run.txt"), table.String())
	if dry.GetRestartsAll() {
		t.Fatalf("dry run of a filter change: restarts_all = true")
	}

	applied := time.Now()
	if r := apply(t, c, work, "reload.yaml", v2); r.GetRevision() != 2 || r.GetRestartsAll() {
		t.Fatalf("second apply = %v, want revision 2 without restarts_all", r)
	}
	waitFor(t, 20*time.Second, "revision 2 to run", func() bool {
		st := getPipeline(t, c, "reload").GetStatus()
		return st.GetRunningRevision() == 2 && readyCondition(getPipeline(t, c, "reload"))
	})
	t.Logf("revision 2 runs %s after the apply", time.Since(applied).Round(time.Millisecond))
	if got := getPipeline(t, c, "reload").GetStatus().GetPid(); got != pid {
		t.Fatalf("pid after the reload = %d, want the same %d", got, pid)
	}
	runs := listRuns(t, c, "reload")
	if len(runs) != 1 || runs[0].GetRevision() != 2 || runs[0].GetPid() != pid || runs[0].GetState() != controlv1.RunState_RUN_STATE_RUNNING {
		t.Fatalf("runs = %v, want one RUNNING run of revision 2 with pid %d", runs, pid)
	}
	if now := componentCounter(t, c, "reload", "gen", "out"); now < before {
		t.Fatalf("the source's counter went back from %d to %d", before, now)
	}
	after := componentCounter(t, c, "reload", "gen", "out")
	waitFor(t, 10*time.Second, "the source's counter to keep rising", func() bool {
		return componentCounter(t, c, "reload", "gen", "out") > after+50
	})

	// The file: even ids up to some point, then multiples of 5, none lost.
	ids := readIDs(t, out)
	if len(ids) == 0 {
		t.Fatal("no output")
	}
	last := ids[len(ids)-1]
	cut := -1
	for k := 0; k <= last+1 && cut < 0; k++ {
		var want []int
		for i := 0; i <= last; i++ {
			if (i < k && i%2 == 0) || (i >= k && i%5 == 0) {
				want = append(want, i)
			}
		}
		if equalIDs(ids, want) {
			cut = k
		}
	}
	if cut < 0 {
		t.Fatalf("output is not the old filter's then the new one's: %v", ids)
	}
	if cut <= 0 || cut > last-50 {
		t.Fatalf("switch-over at id %d of %d: want output from both revisions", cut, last)
	}
	t.Logf("pid %d kept running; the filter switched at id %d; %d ids up to %d", pid, cut, len(ids), last)
}

func equalIDs(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
