package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/internal/state"
)

const dlqBroken = `
name: shop
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors:
  - {name: usd, type: map, inputs: [ledger], config: {set: {kind: "data.kind.upperAscii()"}}}
  - {name: cents, type: map, inputs: [usd], config: {set: {cents: "data.amount * 100"}}}
sinks: [{name: out, type: file, inputs: [cents], config: {path: out.jsonl}}]
dead_letter: {type: file, config: {path: failed.jsonl}}
`

// TestDLQReplay: a pipeline whose maps fail on some events writes them to
// the dead-letter file; ls and show list them; a replay that fails again
// appends them; a replay is refused while the state is locked; once the
// file is fixed a replay delivers exactly those events to the sink once,
// a second one replays nothing, and the pipeline's next run neither cuts
// nor repeats the sink's file.
func TestDLQReplay(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	var in strings.Builder
	for i := range 10 {
		switch i {
		case 3:
			fmt.Fprintf(&in, `{"id":%d,"amount":%d}`+"\n", i, i) // no kind: usd fails
		case 6:
			fmt.Fprintf(&in, `{"id":%d,"kind":"fee"}`+"\n", i) // no amount: cents fails
		default:
			fmt.Fprintf(&in, `{"id":%d,"amount":%d,"kind":"fee"}`+"\n", i, i)
		}
	}
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("in.jsonl", in.String())
	write("p.yaml", dlqBroken)
	pf := filepath.Join(dir, "p.yaml")
	out, failed := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "failed.jsonl")
	cli := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append(args, "-f", pf, "--state-dir", stateDir)
		if code := Main(args, nil, &stdout, &stderr); code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	must := func(what, got string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Fatalf("%s: want %q in:\n%s", what, w, got)
			}
		}
	}

	cli(0, "run")
	if n := len(readLines(t, out)); n != 8 {
		t.Fatalf("first run wrote %d events, want 8", n)
	}
	if n := len(readLines(t, failed)); n != 2 {
		t.Fatalf("first run dead-lettered %d events, want 2", n)
	}

	must("ls", cli(0, "dlq", "ls"), "2 dead letters, 0 replayed, 2 to replay", "usd ", "cents ", "no such key: kind", "no such key: amount")
	var shown []dlqShowEntry
	if err := json.Unmarshal([]byte(cli(0, "dlq", "show", "-o", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	// Two processors dead-letter concurrently: the file's order between
	// them is not fixed.
	slices.SortFunc(shown, func(a, b dlqShowEntry) int { return strings.Compare(a.Event.ID, b.Event.ID) })
	var data bytes.Buffer
	if len(shown) > 0 {
		_ = json.Compact(&data, shown[0].Event.Data)
	}
	if len(shown) != 2 || shown[0].Component != "usd" || shown[0].Event.ID != "ledger:4" || shown[1].Event.ID != "ledger:7" ||
		shown[0].Replayed == nil || *shown[0].Replayed || data.String() != `{"id":3,"amount":3}` {
		t.Fatalf("show -o json: %+v", shown)
	}
	if s := cli(0, "dlq", "show", "--component", "cents", "-n", "1"); !strings.Contains(s, "ledger:7") || strings.Contains(s, "ledger:4") {
		t.Fatalf("show --component cents:\n%s", s)
	}

	// Replayed before the fix: it fails again and goes back to the file.
	must("replay unfixed", cli(0, "dlq", "replay", "--component", "cents"), `replayed 1 event of "cents" to cents`, "1 failed again")
	if n := len(readLines(t, failed)); n != 3 {
		t.Fatalf("%d dead letters after a replay that failed again, want 3", n)
	}
	must("ls after", cli(0, "dlq", "ls"), "3 dead letters, 1 replayed, 2 to replay")

	st, err := state.Open(stateDir, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	must("replay while locked", cli(1, "dlq", "replay"), "is running", "stop it first", "not supported yet")
	must("ls while locked", cli(0, "dlq", "ls"), "is running")
	st.Close()

	write("p.yaml", strings.NewReplacer(
		`"data.kind.upperAscii()"`, `"has(data.kind) ? data.kind.upperAscii() : 'NONE'"`,
		`"data.amount * 100"`, `"has(data.amount) ? data.amount * 100 : 0"`).Replace(dlqBroken))
	must("dry run", cli(0, "dlq", "replay", "--dry-run"), `would replay 1 event of "usd" to usd`, `would replay 1 event of "cents" to cents`, "nothing replayed")
	if n := len(readLines(t, out)); n != 8 {
		t.Fatalf("a dry run wrote: %d events", n)
	}
	must("replay", cli(0, "dlq", "replay"), `replayed 1 event of "usd" to usd`, `replayed 1 event of "cents" to cents`, "0 failed again")
	checkIDs := func(when string) {
		t.Helper()
		var ids []int
		for _, l := range readLines(t, out) {
			var v struct{ ID int }
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, v.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Fatalf("%s: ids in the sink %v, want 0..9 once each", when, ids)
		}
	}
	checkIDs("after the replay")
	if l := readLines(t, out); !slices.Contains(l, `{"id":3,"amount":3,"kind":"NONE","cents":300}`) {
		t.Fatalf("the replayed event went through both maps? %v", l)
	}
	must("second replay", cli(0, "dlq", "replay"), "nothing to replay")
	must("ls at the end", cli(0, "dlq", "ls"), "3 dead letters, 3 replayed, 0 to replay")
	if msg := cli(0, "run"); strings.Contains(msg, "cut off") {
		t.Fatalf("the run after a replay cut the sink back:\n%s", msg)
	}
	checkIDs("after the next run")
}

// TestDLQNotAFile: a dead-letter sink that is not a file gets one clear
// line.
func TestDLQNotAFile(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pf, []byte(`
name: s
sources: [{name: g, type: generate, config: {count: 1, data: {x: 1}}}]
sinks: [{name: out, type: stdout, inputs: [g]}]
dead_letter: {type: stdout}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"dlq", "ls", "-f", pf}, nil, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "is not a file") || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}

// TestDLQReplayStoppedMidway: a replay that stops on an event it cannot
// handle (on_error: stop) commits what it wrote; once fixed, the next
// replay goes on from there, and the sink holds every event exactly once.
func TestDLQReplayStoppedMidway(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	const n = 2000 // several batches of the dead-letter source
	var dl bytes.Buffer
	for i := range n {
		ev := &flow.Event{ID: fmt.Sprintf("ledger:%d", i+1), Type: "ledger", Source: "ledger", Data: fmt.Appendf(nil, `{"n":%d}`, i)}
		b, err := json.Marshal(flow.NewDeadLetter("m", errors.New("was broken"), 1, ev))
		if err != nil {
			t.Fatal(err)
		}
		dl.Write(append(b, '\n'))
	}
	writeFile := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("failed.jsonl", dl.String())
	writeFile("in.jsonl", "")
	const pipeline = `
name: midway
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
processors:
  - {name: m, type: map, inputs: [ledger], on_error: stop, config: {set: {inv: "EXPR"}}}
sinks: [{name: out, type: file, inputs: [m], config: {path: out.jsonl}}]
dead_letter: {type: file, config: {path: failed.jsonl}}
`
	pf := filepath.Join(dir, "p.yaml")
	replay := func(want int) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := Main([]string{"dlq", "replay", "-f", pf, "--state-dir", stateDir}, nil, &stdout, &stderr); code != want {
			t.Fatalf("replay: exit %d, want %d\n%s%s", code, want, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	// The last event divides by zero and stops the replay.
	writeFile("p.yaml", strings.Replace(pipeline, "EXPR", fmt.Sprintf("100 / (%d - data.n)", n-1), 1))
	msg := replay(1)
	if !strings.Contains(msg, "run replay again to go on") {
		t.Fatalf("stopped replay:\n%s", msg)
	}
	writeFile("p.yaml", strings.Replace(pipeline, "EXPR", "data.n", 1))
	msg = replay(0)
	if strings.Contains(msg, fmt.Sprintf("replayed %d events", n)) {
		t.Logf("the stopped replay committed nothing (it stopped before its first commit):\n%s", msg)
	}
	seen := map[int]int{}
	for _, l := range readLines(t, filepath.Join(dir, "out.jsonl")) {
		var v struct{ N int }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		seen[v.N]++
	}
	for i := range n {
		if seen[i] != 1 {
			t.Fatalf("event %d is in the sink %d times, want once (%d distinct)", i, seen[i], len(seen))
		}
	}
	if msg := replay(0); !strings.Contains(msg, "nothing to replay") {
		t.Fatalf("third replay:\n%s", msg)
	}
}

// TestDLQReplaySourceRejects: a line the file source rejected (invalid
// UTF-8 in a string) is dead-lettered; replay sends it from the source's
// place to what the source feeds, byte for byte.
func TestDLQReplaySourceRejects(t *testing.T) {
	dir := t.TempDir()
	bad := "{\"id\":2,\"name\":\"\xff\"}"
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte("{\"id\":1}\n"+bad+"\n{\"id\":3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pf, []byte(`
name: rejects
sources: [{name: in, type: file, config: {path: in.jsonl}}]
sinks: [{name: out, type: file, inputs: [in], config: {path: out.jsonl}}]
dead_letter: {type: file, config: {path: dead.jsonl}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := Main(append(args, "-f", pf, "--state-dir", state), nil, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	run("run")
	if got := readLines(t, filepath.Join(dir, "out.jsonl")); len(got) != 2 {
		t.Fatalf("out before the replay: %q", got)
	}
	if msg := run("dlq", "replay"); !strings.Contains(msg, `replayed 1 event of "in"`) {
		t.Fatalf("replay:\n%s", msg)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\"id\":1}\n{\"id\":3}\n" + bad + "\n"; string(b) != want {
		t.Fatalf("out after the replay: %q, want %q", b, want)
	}
	if msg := run("dlq", "replay"); !strings.Contains(msg, "nothing to replay") {
		t.Fatalf("second replay:\n%s", msg)
	}
}
