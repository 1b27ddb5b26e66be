//go:build unix

package crash

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestKill9Server applies a pipeline with an unbounded generator and a file
// sink to flowctl server, SIGKILLs the server (its pipeline child dies with
// it) when the output has grown by a random amount, starts it again (it
// brings the pipeline back), and at the end stops it cleanly. The
// generator's ids must be in the file with no gap and no repeat, and the
// file may shrink on a restart only by what was written after the last
// checkpoint. FLOWCTL_CRASH_SERVER_KILLS sets the kills (default 5; the
// issue's full size is 20).
func TestKill9Server(t *testing.T) {
	kills := 5
	if v := os.Getenv("FLOWCTL_CRASH_SERVER_KILLS"); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	sock := "unix:" + filepath.Join(data, "flowctl.sock")
	out := filepath.Join(dir, "out.jsonl")
	pf := filepath.Join(dir, "gen.yaml")
	if err := os.WriteFile(pf, []byte(`name: gen
sources:
  - {name: gen, type: generate, config: {rate: 20000, batch_size: 64, expr: '{"i": i}'}}
sinks:
  - {name: out, type: file, inputs: [gen], config: {path: out.jsonl}}
`), 0o644); err != nil {
		t.Fatal(err)
	}

	var srv *exec.Cmd
	var srvErr bytes.Buffer
	start := func() {
		t.Helper()
		srv = exec.Command(binPath, "server", "--data-dir", data, "--grace", "5s")
		srvErr.Reset()
		srv.Stderr = &srvErr
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binPath, append(args, "--server", sock)...).CombinedOutput()
		if err != nil {
			t.Fatalf("flowctl %v: %v\n%s\nserver:\n%s", args, err, out, srvErr.String())
		}
		return string(out)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 60s\nserver:\n%s", what, srvErr.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	size := func() int64 {
		st, err := os.Stat(out)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	// serving waits until the server answers: it has its signal handling
	// in place from then on.
	serving := func() {
		t.Helper()
		waitFor("the server to answer", func() bool {
			return exec.Command(binPath, "status", "--server", sock).Run() == nil
		})
	}
	start()
	serving()
	cli("apply", "-f", pf)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var maxCut int64
	for k := 0; k < kills; k++ {
		target := size() + 20_000 + rng.Int64N(200_000)
		waitFor("the output to grow", func() bool { return size() >= target })
		before := size()
		_ = srv.Process.Signal(syscall.SIGKILL)
		_ = srv.Wait()
		start()
		serving()
		// The old child may have written a little more before it died
		// with the server; the new one must get past all of it.
		before = max(before, size())
		// The restarted server starts the pipeline again; until the
		// output passes where it was, note how far it was cut back.
		low := before
		waitFor("the output to pass where it was", func() bool {
			s := size()
			low = min(low, s)
			return s > before
		})
		maxCut = max(maxCut, before-low)
	}
	waitFor("the output to grow after the last restart", func() bool { return size() > 0 })
	// A clean stop drains and commits.
	_ = srv.Process.Signal(syscall.SIGTERM)
	if err := srv.Wait(); err != nil {
		t.Fatalf("server stop: %v\n%s", err, srvErr.String())
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	last := -1
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var ev struct{ I *int }
		if err := json.Unmarshal(line, &ev); err != nil || ev.I == nil {
			t.Fatalf("line %d is not a whole event: %q", i+1, line)
		}
		n := *ev.I
		seen[n]++
		last = max(last, n)
	}
	gaps, dup := 0, 0
	for i := 0; i <= last; i++ {
		switch c := seen[i]; {
		case c == 0:
			gaps++
		case c > 1:
			dup += c - 1
		}
	}
	fmt.Printf("crash server: %d SIGKILLs of flowctl server, %d events (0..%d), %d missing, %d duplicated, the file shrank by %d bytes at most\n",
		kills, len(seen), last, gaps, dup, maxCut)
	if gaps != 0 || dup > kills*64 {
		t.Errorf("%d ids missing, %d duplicated", gaps, dup)
	}
	// The generator is deterministic: replayed events match the bytes
	// already there, so the file never shrinks.
	if maxCut != 0 {
		t.Errorf("the file shrank by %d bytes on a restart", maxCut)
	}
}
