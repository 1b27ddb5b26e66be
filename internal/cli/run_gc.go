package cli

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
)

// The garbage collector's target for `flowctl run` (docs/perf.md has the
// measurements). Go's default, GOGC=100, lets the heap grow to twice what
// is live before collecting again; a pipeline's live heap is small (a few
// MiB: the events waiting in the queues) while it allocates a lot (every
// event's bytes and views), so with the default the collector runs after
// every few MiB, well over a hundred times a second on W1.
//
// flowctl run collects when the heap reaches runGCPercent more than what is
// live, but not beyond a soft memory limit: the heap of a small pipeline
// stays under runMemoryLimit, and the collector runs ~runGCPercent/100
// times less often. The limit counts all of the runtime's memory, ~10 MiB
// of which is not the heap, so a pipeline whose live heap is larger than a
// few MiB gets less room under it than Go's default would give, and
// collects more often; for it the defaults step back to Go's own
// (GOGC=100, no limit) after the collection that sees it, and come back
// when the live heap shrinks again (gcAdjust).
//
// GOGC and GOMEMLIMIT in the environment, and --memory-limit, are the
// user's: a set one is never overridden, and with either set the
// step-back does not run.
const (
	runGCPercent   = 400
	runMemoryLimit = 24 << 20
)

// memoryLimitUsage is the help of run's and node's --memory-limit.
const memoryLimitUsage = "soft limit of the Go runtime's memory (e.g. 64MiB, 0 for none); the collector works harder near it [GOMEMLIMIT, else 24MiB while that leaves the heap more room than Go's default would; see docs/perf.md]"

// gcSettings is what applyGCTarget decided, for the debug log line.
type gcSettings struct {
	percent  int   // -1: off
	limit    int64 // math.MaxInt64: none
	adaptive bool  // the step-back for large heaps runs
	source   string
}

func (s gcSettings) String() string {
	p := "off"
	if s.percent >= 0 {
		p = strconv.Itoa(s.percent)
	}
	l := "none"
	if s.limit != math.MaxInt64 {
		l = formatBytes(s.limit)
	}
	return fmt.Sprintf("GC percent %s, memory limit %s (%s)", p, l, s.source)
}

// applyGCTarget sets the collector's target for a run: memLimit is the
// --memory-limit flag ("" when not given), getenv reads the environment.
// It returns what it set.
func applyGCTarget(memLimit string, getenv func(string) string) (gcSettings, error) {
	userGOGC := strings.TrimSpace(getenv("GOGC")) != ""
	userLimit := strings.TrimSpace(getenv("GOMEMLIMIT")) != ""
	s := currentGC()
	var parts []string
	if memLimit != "" {
		n, err := parseBytes(memLimit)
		if err != nil {
			return s, fmt.Errorf("--memory-limit %q: %v; write a size such as 64MiB, 1GiB or 0 for none", memLimit, err)
		}
		if n == 0 {
			n = math.MaxInt64
		}
		s.limit = n
		debug.SetMemoryLimit(n)
		parts = append(parts, "--memory-limit")
	} else if userLimit {
		parts = append(parts, "GOMEMLIMIT")
	}
	if userGOGC {
		parts = append(parts, "GOGC")
	}
	if !userGOGC && memLimit == "" && !userLimit {
		s.percent, s.limit, s.adaptive = runGCPercent, runMemoryLimit, true
		debug.SetGCPercent(runGCPercent)
		debug.SetMemoryLimit(runMemoryLimit)
		gcStepBack.Store(0)
		gcStepBackOn.Store(true)
		startGCStepBack()
		s.source = "flowctl's defaults"
		return s, nil
	}
	gcStepBackOn.Store(false)
	if !userGOGC {
		// A limit of the user's, with flowctl's percentage: the limit
		// bounds the heap, the percentage spares collections below it.
		s.percent = runGCPercent
		debug.SetGCPercent(runGCPercent)
	}
	s.source = "from " + strings.Join(parts, " and ")
	return s, nil
}

// resetGC puts back settings currentGC read before a run: a run made
// in-process (tests, an embedding program) leaves the collector as it found
// it.
func resetGC(s gcSettings) {
	gcStepBackOn.Store(false)
	gcStepBack.Store(0)
	debug.SetGCPercent(s.percent)
	debug.SetMemoryLimit(s.limit)
}

// currentGC reads the collector's settings in force (the runtime took
// GOGC and GOMEMLIMIT from the environment at start).
func currentGC() gcSettings {
	m := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(m)
	s := gcSettings{percent: 100, limit: math.MaxInt64}
	if m[0].Value.Kind() == metrics.KindUint64 {
		s.percent = int(int64(m[0].Value.Uint64())) // off is -1, stored as uint64
	}
	if m[1].Value.Kind() == metrics.KindUint64 {
		s.limit = int64(m[1].Value.Uint64())
	}
	return s
}

// gcStepBack is 1 while the live heap is too large for flowctl's
// defaults and Go's own are in force.
var gcStepBack atomic.Int32

// gcCycleSentinel is re-armed with a finalizer after every collection: the
// finalizer runs once per cycle (runtime.SetFinalizer's documented
// behaviour for an unreachable object), without a goroutine polling.
type gcCycleSentinel struct {
	_ *int // a pointer: never in the tiny allocator, whose blocks outlive their objects
	_ [16]byte
}

var stepBackStarted atomic.Bool

// gcStepBackOn is true while flowctl's defaults are in force (and may step
// back): the settings of the user's are never touched.
var gcStepBackOn atomic.Bool

func startGCStepBack() {
	if !stepBackStarted.CompareAndSwap(false, true) {
		return
	}
	runtime.SetFinalizer(&gcCycleSentinel{}, onGCCycle)
}

// heapSamples read the heap the last collection found live and the heap
// goal the runtime set for the next one (the memory limit included).
var heapSamples = []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/goal:bytes"}}

func onGCCycle(x *gcCycleSentinel) {
	metrics.Read(heapSamples)
	if gcStepBackOn.Load() && heapSamples[0].Value.Kind() == metrics.KindUint64 && heapSamples[1].Value.Kind() == metrics.KindUint64 {
		gcAdjust(int64(heapSamples[0].Value.Uint64()), int64(heapSamples[1].Value.Uint64()))
	}
	runtime.SetFinalizer(x, onGCCycle)
}

// limitGoal is the heap goal under flowctl's limit when it stepped back.
var limitGoal atomic.Int64

// gcAdjust switches between flowctl's defaults and Go's after a collection
// that found live bytes live and set the next heap goal to goal. Until the
// next collection the heap may grow by goal-live; Go's default lets it grow
// by live. When the limit leaves less room than that, flowctl's defaults
// collect more often than Go's (and every collection marks the whole live
// heap): Go's come into force. They stay until the live heap is at most
// two fifths of the goal the limit gave, where the limit leaves half as
// much room again as Go's default (the gap keeps it from flapping).
func gcAdjust(live, goal int64) {
	switch {
	case gcStepBack.Load() == 0 && goal-live < live && gcStepBack.CompareAndSwap(0, 1):
		limitGoal.Store(goal)
		debug.SetMemoryLimit(math.MaxInt64)
		debug.SetGCPercent(100)
	case gcStepBack.Load() == 1 && live <= limitGoal.Load()*2/5 && gcStepBack.CompareAndSwap(1, 0):
		debug.SetGCPercent(runGCPercent)
		debug.SetMemoryLimit(runMemoryLimit)
	}
}

// parseBytes reads a size: a number with an optional unit B, KiB, MiB,
// GiB, TiB (powers of 1024), KB, MB, GB, TB (powers of 1000) or K, M, G
// (1024).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("no number")
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	units := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "tib": 1 << 40,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	}
	m, ok := units[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", strings.TrimSpace(s[i:]))
	}
	n := v * m
	if n >= math.MaxInt64 {
		return 0, fmt.Errorf("too large")
	}
	return int64(n), nil
}

// formatBytes writes n in MiB (or KiB, B when smaller).
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
