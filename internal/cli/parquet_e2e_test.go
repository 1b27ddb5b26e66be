package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// TestParquetSinkKill9E2E runs `flowctl run` writing 5000 events from a
// file into Parquet files of 500 rows, kills it with SIGKILL when some
// files are finished and one is being written, runs it again, reads every
// finished file back and counts the events lost and stored twice. One
// malformed event (an id that is not a number) must end in the
// dead-letter file, not crash the run.
func TestParquetSinkKill9E2E(t *testing.T) {
	bin := flowctlBinary(t)
	const total = 5000
	for _, tt := range []struct {
		name      string
		killFiles int // SIGKILL once this many files are finished
	}{
		{"kill early", 2},
		{"kill late", 6},
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
			os.WriteFile(pf, []byte(`name: pq
sources:
  - {name: in, type: file, config: {path: events.jsonl}}
processors:
  - {name: slow, type: rate_limit, inputs: [in], config: {rate: 2000, burst: 100}}
sinks:
  - name: store
    type: parquet
    inputs: [slow]
    on_error: {then: dead_letter}
    config:
      path: out
      max_rows: 500
      row_group_rows: 128
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
			run := func() *exec.Cmd { return exec.Command(bin, "run", "-f", pf, "--state-dir", state) }
			finished := func() []string {
				names, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
				return names
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			first := run()
			var out1 bytes.Buffer
			first.Stderr = &out1
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- first.Wait() }()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for i := 0; len(finished()) < tt.killFiles; i++ {
				select {
				case err := <-exited:
					t.Fatalf("the first run ended (%v) before the kill:\n%s", err, out1.String())
				case <-ctx.Done():
					first.Process.Kill()
					t.Fatalf("fewer than %d files after %d polls:\n%s", tt.killFiles, i, out1.String())
				case <-tick.C:
				}
			}
			if err := first.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-exited
			filesKilled := len(finished())
			rowsKilled := 0
			for _, name := range finished() {
				rowsKilled += len(readParquetIDs(t, name))
			}
			tmps, _ := filepath.Glob(filepath.Join(out, ".part-*"))
			if rowsKilled >= total {
				t.Fatalf("every row was in before the kill (%d): the test proves nothing", rowsKilled)
			}

			second := run()
			var out2 bytes.Buffer
			second.Stderr = &out2
			if err := second.Run(); err != nil {
				t.Fatalf("the resumed run: %v\n%s", err, out2.String())
			}
			seen := map[int64]int{}
			rows := 0
			for _, name := range finished() {
				for _, id := range readParquetIDs(t, name) {
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
				t.Fatalf("lost %d, repeated %d, %d rows; second run:\n%s", lost, repeated, rows, out2.String())
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

// readParquetIDs reads the id column of a Parquet file.
func readParquetIDs(t *testing.T, name string) []int64 {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("%s is not a readable Parquet file: %v", name, err)
	}
	leaf, ok := pf.Schema().Lookup("id")
	if !ok {
		t.Fatalf("%s has no id column", name)
	}
	var ids []int64
	r := parquet.NewReader(pf)
	defer r.Close()
	buf := make([]parquet.Row, 256)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			for _, v := range row {
				if v.Column() == leaf.ColumnIndex {
					ids = append(ids, v.Int64())
				}
			}
		}
		if err != nil {
			break
		}
	}
	if int64(len(ids)) != pf.NumRows() {
		t.Fatalf("%s: read %d ids of %d rows", name, len(ids), pf.NumRows())
	}
	return ids
}
