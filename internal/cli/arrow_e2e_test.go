//go:build arrow

package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// TestArrowSinkKill9E2E runs `flowctl run` writing 5000 events from a
// file into Arrow IPC files of 500 rows (flowctl built with -tags arrow), kills it with SIGKILL when some
// files are finished and one is being written, runs it again, reads every
// finished file back with arrow-go and counts the events lost and stored
// twice (both must be 0). One malformed event (an id that is not a
// number) must end in the dead-letter file, not crash the run.
func TestArrowSinkKill9E2E(t *testing.T) {
	bin := flowctlTaggedBinary(t, "arrow")
	const total = 5000
	for _, tt := range []struct {
		name      string
		format    string // arrow_format
		ext       string
		killFiles int // SIGKILL once this many files are finished
	}{
		{"file, kill early", "file", "arrow", 2},
		{"file, kill late", "file", "arrow", 6},
		{"stream, kill mid-run", "stream", "arrows", 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeEvents(t, filepath.Join(dir, "events.jsonl"), total)
			f, err := os.OpenFile(filepath.Join(dir, "events.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(f, `{"id":"not-a-number","ts":"2026-01-01T00:00:00Z","account":"x","amount":1,"kind":"fee"}`)
			f.Close()
			pf := filepath.Join(dir, "pipeline.yaml")
			// The rate limit stretches the run over about 2.5 s so the
			// kill lands in the middle of it, after a checkpoint or two.
			os.WriteFile(pf, []byte(`name: ar
sources:
  - {name: in, type: file, config: {path: events.jsonl}}
processors:
  - {name: slow, type: rate_limit, inputs: [in], config: {rate: 2000, burst: 100}}
sinks:
  - name: store
    type: arrow
    inputs: [slow]
    on_error: {then: dead_letter}
    config:
      path: out
      arrow_format: `+tt.format+`
      compression: zstd
      max_rows: 500
      batch_rows: 128
      schema:
        - {name: id, type: int64, optional: false}
        - {name: ts, type: timestamp}
        - {name: account, type: string}
        - {name: amount, type: int64}
        - {name: kind, type: string}
dead_letter:
  name: failed
  type: file
  config: {path: failed.jsonl, format: envelope}
`), 0o644)
			out := filepath.Join(dir, "out")
			state := t.TempDir()
			finished := func() []string {
				names, _ := filepath.Glob(filepath.Join(out, "part-*."+tt.ext))
				return names
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			first := startFlowctl(t, bin, nil, "run", "-f", pf, "--state-dir", state)
			first.waitOutput(t, ctx, fmt.Sprintf("%d finished files", tt.killFiles),
				func() (int, int) { n := len(finished()); return n, n },
				func(files, _ int) bool { return files >= tt.killFiles })
			first.kill9(t)
			filesKilled := len(finished())
			rowsKilled := 0
			for _, name := range finished() {
				rowsKilled += len(readArrowIDs(t, name, tt.ext == "arrows"))
			}
			tmps, _ := filepath.Glob(filepath.Join(out, ".part-*"))
			if rowsKilled >= total {
				t.Fatalf("every row was in before the kill (%d): the test proves nothing", rowsKilled)
			}

			second := startFlowctl(t, bin, nil, "run", "-f", pf, "--state-dir", state)
			select {
			case <-second.exited:
			case <-ctx.Done():
				t.Fatalf("the resumed run did not end:\n%s", second.stderr.String())
			}
			if second.err != nil {
				t.Fatalf("the resumed run: %v\n%s", second.err, second.stderr.String())
			}
			seen := map[int64]int{}
			rows := 0
			for _, name := range finished() {
				for _, id := range readArrowIDs(t, name, tt.ext == "arrows") {
					seen[id]++
					rows++
				}
			}
			lost, repeated := 0, 0
			for i := int64(0); i < total; i++ {
				switch c := seen[i]; {
				case c == 0:
					lost++
				case c > 1:
					repeated += c - 1
				}
			}
			left, _ := filepath.Glob(filepath.Join(out, ".part-*"))
			t.Logf("%s: killed with %d finished files (%d rows) and %v unfinished; after the resumed run %d rows in %d files: lost %d, repeated %d",
				tt.name, filesKilled, rowsKilled, tmps, rows, len(finished()), lost, repeated)
			if lost != 0 || repeated != 0 || rows != total {
				t.Fatalf("lost %d, repeated %d, %d rows; second run:\n%s", lost, repeated, rows, second.stderr.String())
			}
			if len(left) > 0 {
				t.Errorf("temporary files left after a clean end: %v", left)
			}
			dl, err := os.ReadFile(filepath.Join(dir, "failed.jsonl"))
			if err != nil || bytes.Count(dl, []byte(`"id":"not-a-number"`)) != 1 || !bytes.Contains(dl, []byte("int64")) {
				t.Errorf("the malformed event is not in the dead-letter file once with its reason (%v):\n%s", err, dl)
			}
		})
	}
}

// readArrowIDs reads the id column of an Arrow IPC file (or stream),
// checking its type.
func readArrowIDs(t *testing.T, name string, stream bool) []int64 {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []int64
	add := func(rec arrow.RecordBatch) {
		cols := rec.Schema().FieldIndices("id")
		if len(cols) != 1 {
			t.Fatalf("%s has no id column: %v", name, rec.Schema())
		}
		col, ok := rec.Column(cols[0]).(*array.Int64)
		if !ok {
			t.Fatalf("%s: id is %s, want int64", name, rec.Column(cols[0]).DataType())
		}
		ids = append(ids, col.Int64Values()...)
	}
	if stream {
		r, err := ipc.NewReader(f)
		if err != nil {
			t.Fatalf("%s is not a readable Arrow IPC stream: %v", name, err)
		}
		defer r.Release()
		for r.Next() {
			add(r.RecordBatch())
		}
		if r.Err() != nil {
			t.Fatalf("%s: %v", name, r.Err())
		}
		return ids
	}
	r, err := ipc.NewFileReader(f)
	if err != nil {
		t.Fatalf("%s is not a readable Arrow IPC file: %v", name, err)
	}
	defer r.Close()
	for i := range r.NumRecords() {
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			t.Fatalf("%s batch %d: %v", name, i, err)
		}
		add(rec)
		rec.Release()
	}
	return ids
}

// TestArrowVersionE2E: the tagged binary says it has Arrow.
func TestArrowVersionE2E(t *testing.T) {
	out, err := exec.Command(flowctlTaggedBinary(t, "arrow"), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\noptional: arrow\n") {
		t.Fatalf("version: %v\n%s", err, out)
	}
}
