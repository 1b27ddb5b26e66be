package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/engine"
	"github.com/flowctl/flowctl/internal/flow"
)

func TestShort(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0"}, {9999, "9999"}, {12345, "12k"}, {1_250_000, "1.2M"}, {25_000_000, "25M"}} {
		if got := short(tc.n); got != tc.want {
			t.Errorf("short(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func sampleStats() engine.Stats {
	return engine.Stats{
		Elapsed: 2 * time.Second,
		Components: []engine.ComponentStats{
			{Name: "ledger", Role: flow.RoleSource, Out: 1000},
			{Name: "large", Role: flow.RoleProcessor, In: 1000, Out: 400, Filtered: 500, DeadLettered: 100, Errors: 100},
			{Name: "out", Role: flow.RoleSink, In: 400, Out: 400},
			{Name: "failed", Role: flow.RoleSink, DeadLetter: true, In: 100, Out: 100},
		},
	}
}

func TestLiveLine(t *testing.T) {
	prev := map[string]int64{"ledger": 500}
	got := liveLine(sampleStats(), prev, time.Second)
	want := "2s │ ledger out 1000 (500/s) │ large in 1000 out 400 (400/s) │ out in 400 out 400 (400/s) │ failed in 100 out 100 (100/s)"
	if got != want {
		t.Fatalf("live line\n got %q\nwant %q", got, want)
	}
	if prev["ledger"] != 1000 {
		t.Fatal("liveLine must remember the counts for the next rate")
	}
}

// TestHealthShown: a sink that is retrying says so, with the reason, on
// the live line (clipped to one line) and in the summary.
func TestHealthShown(t *testing.T) {
	s := sampleStats()
	long := "retrying for 12s (40 failed attempts): sink \"out\": POST http://127.0.0.1:9/ingest: status 503: " + strings.Repeat("x", 200)
	s.Components[2].Health, s.Components[2].Reason = engine.HealthUnhealthy, long
	line := liveLine(s, map[string]int64{}, time.Second)
	if !strings.Contains(line, "out in 400 out 400 (400/s) UNHEALTHY: retrying for 12s (40 failed attempts)") || strings.Contains(line, long) {
		t.Errorf("live line %q", line)
	}
	if n := len([]rune(line[strings.Index(line, "UNHEALTHY: ")+len("UNHEALTHY: "):])); n > liveReason+len(" │ failed in 100 out 100 (100/s)") {
		t.Errorf("live line reason not clipped: %d runes", n)
	}
	if strings.Contains(line, "ledger out 1000 (1000/s) DEGRADED") || strings.Count(line, "UNHEALTHY") != 1 {
		t.Errorf("only the sink is unhealthy: %q", line)
	}
	var b bytes.Buffer
	printSummary(&b, "payments", s, "stopped")
	if want := `sink "out" was unhealthy when the run ended: ` + long + `; what it held was neither written nor acknowledged`; !strings.Contains(b.String(), want) {
		t.Errorf("summary lacks %q:\n%s", want, b.String())
	}
}

func TestSummary(t *testing.T) {
	var b bytes.Buffer
	printSummary(&b, "payments", sampleStats(), "finished")
	out := b.String()
	for _, want := range []string{
		`pipeline "payments" finished in 2s: 1000 events in, 400 written, 500 events/s; 100 dead-lettered, 0 dropped, 100 errors`,
		"component  role         in    out   filtered  dropped  dead-lettered  errors  retries  unrouted",
		"large      processor    1000  400   500       0        100            100     0",
		"failed     dead_letter  100   100",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestRunInProcess runs a small pipeline through Main, as the binary
// would, and checks the exit code and output file.
func TestRunInProcess(t *testing.T) {
	dir := t.TempDir()
	writeEvents(t, filepath.Join(dir, "in.jsonl"), 10)
	pf := filepath.Join(dir, "p.yaml")
	os.WriteFile(pf, []byte(`
name: tiny
sources: [{name: ledger, type: file, config: {path: in.jsonl}}]
sinks: [{name: out, type: file, inputs: [ledger], config: {path: out.jsonl}}]
`), 0o644)
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"run", "-f", pf, "--grace", "1s"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if got := len(readLines(t, filepath.Join(dir, "out.jsonl"))); got != 10 {
		t.Fatalf("%d lines", got)
	}
	if !strings.Contains(stderr.String(), "10 events in, 10 written") {
		t.Fatalf("summary:\n%s", stderr.String())
	}
	if code := Main([]string{"run", "-f", filepath.Join(dir, "missing.yaml")}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("missing file: exit %d", code)
	}
}

// TestHTTPExposureWarning: --http on every interface, or an address other
// machines reach, gets one warning line; loopback gets none.
func TestHTTPExposureWarning(t *testing.T) {
	for _, tc := range []struct {
		addr, want string
	}{
		{"127.0.0.1:9090", ""},
		{"localhost:9090", ""},
		{"[::1]:9090", ""},
		{":9090", "every machine that can reach this one"},
		{"0.0.0.0:9090", "every machine that can reach this one"},
		{"[::]:9090", "every machine that can reach this one"},
		{"10.1.2.3:9090", "every machine that can reach 10.1.2.3"},
	} {
		got := httpExposureWarning(tc.addr)
		if tc.want == "" {
			if got != "" {
				t.Errorf("%s: warned %q", tc.addr, got)
			}
			continue
		}
		if !strings.HasPrefix(got, "flowctl run: warning: --http "+tc.addr) || !strings.Contains(got, tc.want) ||
			!strings.Contains(got, "127.0.0.1:PORT") || strings.Contains(got, "\n") {
			t.Errorf("%s: warning %q, want one line naming %q and the loopback fix", tc.addr, got, tc.want)
		}
	}
}

// TestRunSummaryCounts runs pipelines through Main and reads the summary's
// first line: the events in are every line the sources read, those they
// rejected (dead-lettered or dropped) included, so that in = written +
// filtered + dead-lettered + dropped; and a run that failed says failed,
// not finished.
func TestRunSummaryCounts(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(`{"id":1,"amount":7000}
{"id":2,"amount":100}
not json
{"id":4}
{"id":5,"amount":9000}
`), 0o644)
	const body = `
sources: [{name: ledger, type: file, config: {path: %s}}]
processors: [{name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}]
sinks: [{name: out, type: file, inputs: [large], config: {path: out.jsonl}}]
`
	for _, tc := range []struct {
		name, file string
		code       int
		want       [3]string // the first line's start, middle and end
	}{
		{"rejected lines dead-lettered", "name: dl\n" + fmt.Sprintf(body, "in.jsonl") + "dead_letter: {type: file, config: {path: failed.jsonl}}\n", 0,
			[3]string{`pipeline "dl" finished in `, `: 5 events in, 2 written, `, `; 2 dead-lettered, 0 dropped, 2 errors`}},
		{"rejected lines dropped", "name: drop\n" + fmt.Sprintf(body, "in.jsonl"), 4,
			[3]string{`pipeline "drop" finished in `, `: 5 events in, 2 written, `, `; 0 dead-lettered, 2 dropped, 2 errors`}},
		{"a source that cannot open", "name: nofile\n" + fmt.Sprintf(body, "missing.jsonl"), 1,
			[3]string{`pipeline "nofile" failed in `, `: 0 events in, 0 written, `, `; 0 dead-lettered, 0 dropped, 0 errors`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pf := filepath.Join(dir, tc.name+".yaml")
			os.WriteFile(pf, []byte(tc.file), 0o644)
			var stdout, stderr bytes.Buffer
			code := Main([]string{"run", "-f", pf, "--grace", "1s", "--state-dir", t.TempDir()}, nil, &stdout, &stderr)
			var head string
			for _, l := range strings.Split(stderr.String(), "\n") {
				if strings.HasPrefix(l, "pipeline ") {
					head = l
				}
			}
			if code != tc.code || !strings.HasPrefix(head, tc.want[0]) || !strings.Contains(head, tc.want[1]) || !strings.HasSuffix(head, tc.want[2]) {
				t.Errorf("exit %d, summary %q; want exit %d and %q", code, head, tc.code, tc.want)
			}
		})
	}
}
