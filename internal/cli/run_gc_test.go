package cli

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestParseBytes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"1024", 1024, ""},
		{"64MiB", 64 << 20, ""},
		{"64mib", 64 << 20, ""},
		{" 1.5 GiB ", 3 << 29, ""},
		{"10MB", 10e6, ""},
		{"512K", 512 << 10, ""},
		{"2G", 2 << 30, ""},
		{"", 0, "no number"},
		{"MiB", 0, "no number"},
		{"12x", 0, `unknown unit "x"`},
		{"1.2.3MiB", 0, "not a number"},
		{"99999999999TiB", 0, "too large"},
	} {
		got, err := parseBytes(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseBytes(%q) = %d, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

// restoreGC puts the collector's settings back after a test changed them.
func restoreGC(t *testing.T) {
	t.Helper()
	p, l := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(p)
	t.Cleanup(func() {
		debug.SetGCPercent(p)
		debug.SetMemoryLimit(l)
		gcStepBack.Store(0)
		gcStepBackOn.Store(false)
	})
}

func TestApplyGCTarget(t *testing.T) {
	for _, c := range []struct {
		name     string
		env      map[string]string
		flag     string
		percent  int
		limit    int64
		adaptive bool
		source   string
		err      string
	}{
		{name: "defaults", percent: runGCPercent, limit: runMemoryLimit, adaptive: true, source: "flowctl's defaults"},
		// The runtime read GOGC at start; the test process has Go's
		// default, so "the user's GOGC" is what is in force: 100.
		{name: "GOGC kept", env: map[string]string{"GOGC": "100"}, percent: 100, limit: math.MaxInt64, source: "from GOGC"},
		{name: "GOMEMLIMIT kept, our percent", env: map[string]string{"GOMEMLIMIT": "100MiB"}, percent: runGCPercent, limit: math.MaxInt64, source: "from GOMEMLIMIT"},
		{name: "flag", flag: "64MiB", percent: runGCPercent, limit: 64 << 20, source: "from --memory-limit"},
		{name: "flag none", flag: "0", percent: runGCPercent, limit: math.MaxInt64, source: "from --memory-limit"},
		{name: "flag and GOGC", env: map[string]string{"GOGC": "100"}, flag: "32MiB", percent: 100, limit: 32 << 20, source: "from --memory-limit and GOGC"},
		{name: "bad flag", flag: "lots", err: `--memory-limit "lots": no number; write a size such as 64MiB`},
	} {
		t.Run(c.name, func(t *testing.T) {
			restoreGC(t)
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			s, err := applyGCTarget(c.flag, func(k string) string { return c.env[k] })
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.percent != c.percent || s.limit != c.limit || s.adaptive != c.adaptive || s.source != c.source {
				t.Errorf("applyGCTarget = %+v, want percent %d limit %d adaptive %v source %q", s, c.percent, c.limit, c.adaptive, c.source)
			}
			// What it says is what is in force.
			if now := currentGC(); now.percent != c.percent || now.limit != c.limit {
				t.Errorf("in force: percent %d limit %d, reported %d %d", now.percent, now.limit, c.percent, c.limit)
			}
		})
	}
}

// TestRunLeavesGCAsFound: an in-process run puts the collector's settings
// back when it ends.
func TestRunLeavesGCAsFound(t *testing.T) {
	restoreGC(t)
	debug.SetGCPercent(123)
	debug.SetMemoryLimit(456 << 20)
	dir := t.TempDir()
	pf := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pf, []byte("name: p\nsources:\n  - {name: g, type: generate, config: {count: 3, data: {k: 1}}}\nsinks:\n  - {name: out, type: file, inputs: [g], config: {path: out.jsonl}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if code := Main([]string{"run", "-f", pf, "--state-dir", t.TempDir()}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if now := currentGC(); now.percent != 123 || now.limit != 456<<20 || gcStepBackOn.Load() {
		t.Errorf("after the run: percent %d limit %d step-back %v, want 123 %d false", now.percent, now.limit, gcStepBackOn.Load(), 456<<20)
	}
}

// TestGCStepBack: when the limit leaves less room for the heap to grow
// than Go's default would (goal - live < live), Go's defaults come into
// force; flowctl's return once the live heap is at most two fifths of the
// goal the limit gave; in between nothing changes.
func TestGCStepBack(t *testing.T) {
	restoreGC(t)
	debug.SetGCPercent(runGCPercent)
	debug.SetMemoryLimit(runMemoryLimit)
	const mib = 1 << 20
	for i, c := range []struct {
		live, goal int64
		percent    int
		limit      int64
	}{
		{1 * mib, 5 * mib, runGCPercent, runMemoryLimit},  // GOGC 400's goal
		{5 * mib, 14 * mib, runGCPercent, runMemoryLimit}, // room 9 MiB > 5
		{7 * mib, 14 * mib, runGCPercent, runMemoryLimit}, // room 7 MiB = 7
		{8 * mib, 14 * mib, 100, math.MaxInt64},           // room 6 MiB < 8: step back
		{6 * mib, 12 * mib, 100, math.MaxInt64},           // 6 > 14*2/5: stays
		{14*mib*2/5 + 1, 11 * mib, 100, math.MaxInt64},    // just above two fifths
		{5 * mib, 10 * mib, runGCPercent, runMemoryLimit}, // 5 <= 5.6: back
		{5 * mib, 14 * mib, runGCPercent, runMemoryLimit}, // stays
		{13 * mib, 12 * mib, 100, math.MaxInt64},          // over the limit's goal
		{5 * mib, 10 * mib, 100, math.MaxInt64},           // 5 > 12*2/5: stays
		{4 * mib, 8 * mib, runGCPercent, runMemoryLimit},  // back
	} {
		gcAdjust(c.live, c.goal)
		if now := currentGC(); now.percent != c.percent || now.limit != c.limit {
			t.Errorf("step %d, live %d goal %d: percent %d limit %d, want %d %d", i, c.live, c.goal, now.percent, now.limit, c.percent, c.limit)
		}
	}
}

func TestGCSettingsString(t *testing.T) {
	for _, c := range []struct {
		s    gcSettings
		want string
	}{
		{gcSettings{percent: 400, limit: 24 << 20, source: "flowctl's defaults"}, "GC percent 400, memory limit 24MiB (flowctl's defaults)"},
		{gcSettings{percent: -1, limit: 3 << 19, source: "from GOGC"}, "GC percent off, memory limit 1.5MiB (from GOGC)"},
		{gcSettings{percent: 100, limit: math.MaxInt64, source: "from GOGC"}, "GC percent 100, memory limit none (from GOGC)"},
	} {
		if got := c.s.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.s, got, c.want)
		}
	}
}

// TestGCStepBackHook: the hook runs after real collections: with a live
// heap larger than half the limit Go's defaults come into force, and
// flowctl's return once it is gone.
func TestGCStepBackHook(t *testing.T) {
	restoreGC(t)
	if _, err := applyGCTarget("", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	waitGC := func(percent int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
			runtime.GC() // each collection runs the hook once, soon after
			if currentGC().percent == percent {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("GC percent still %d, want %d", currentGC().percent, percent)
	}
	big := make([]byte, runMemoryLimit*3/4)
	for i := range big {
		big[i] = byte(i)
	}
	waitGC(100)
	if l := currentGC().limit; l != math.MaxInt64 {
		t.Errorf("limit %d with a large live heap, want none", l)
	}
	runtime.KeepAlive(big)
	big = nil
	waitGC(runGCPercent)
	if l := currentGC().limit; l != runMemoryLimit {
		t.Errorf("limit %d after the heap shrank, want %d", l, runMemoryLimit)
	}
}
