package cli

import (
	"strings"
	"testing"
	"time"
)

func TestP99(t *testing.T) {
	bounds := []float64{0.001, 0.01, 0.1}
	tests := []struct {
		name          string
		before, after []int64
		want          float64
	}{
		{"none finished", []int64{5, 5, 5, 5}, []int64{5, 5, 5, 5}, -1},
		{"all fast", nil, []int64{100, 0, 0, 0}, 0.001},
		{"one slow in a hundred is the p99", nil, []int64{99, 1, 0, 0}, 0.001},
		{"two slow in a hundred", nil, []int64{98, 0, 2, 0}, 0.1},
		{"beyond the last bound", []int64{10, 0, 0, 0}, []int64{10, 0, 0, 3}, inf},
	}
	for _, tc := range tests {
		if got := p99(bounds, tc.before, tc.after); got != tc.want {
			t.Errorf("%s: p99 = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTopRowsAndTable(t *testing.T) {
	prev := liveStats{Components: []liveComponent{
		{Name: "src", Role: "source", Out: 100},
		{Name: "dl", Role: "sink", DeadLetter: true, In: 0},
	}}
	cur := liveStats{LatencyBoundsSeconds: []float64{0.001}, Components: []liveComponent{
		{Name: "src", Role: "source", Out: 300, Health: "healthy"},
		{Name: "dl", Role: "sink", DeadLetter: true, In: 10, Out: 10, QueueDepth: 3, QueueCapacity: 10, Health: "degraded",
			ProcessingBuckets: []int64{4, 1}, Restarts: 2},
	}}
	rows := topRows(&prev, cur, 2*time.Second)
	if rows[0].outRate != 100 || rows[1].inRate != 5 || rows[1].role != "dead letter" || rows[1].p99 != inf {
		t.Errorf("rows: %+v", rows)
	}
	sortRows(rows, 3) // by queue fill
	if rows[0].name != "dl" {
		t.Errorf("sorted by queue: %+v", rows)
	}
	sortRows(rows, 0)
	if rows[0].name != "src" {
		t.Errorf("back to pipeline order: %+v", rows)
	}
	var b strings.Builder
	renderTable(&b, rows, 1)
	out := b.String()
	for _, want := range []string{"COMPONENT", "> dl ", "dead letter", "degraded", "3/10", ">10s", "  src "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
