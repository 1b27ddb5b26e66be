package kube

import (
	"fmt"
	"strings"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	lines := func(n int, change map[int]string) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			if s, ok := change[i]; ok {
				if s != "" {
					b.WriteString(s + "\n")
				}
				continue
			}
			fmt.Fprintf(&b, "l%d\n", i)
		}
		return b.String()
	}
	tests := []struct {
		name     string
		from, to string
		want     string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"one changed line in the middle", lines(10, nil), lines(10, map[int]string{5: "five"}),
			"--- a\n+++ b\n@@ -2,7 +2,7 @@\n l2\n l3\n l4\n-l5\n+five\n l6\n l7\n l8\n"},
		{"added at the start", "b\nc\n", "a\nb\nc\n", "--- a\n+++ b\n@@ -1,2 +1,3 @@\n+a\n b\n c\n"},
		{"removed at the end", "a\nb\nc\n", "a\nb\n", "--- a\n+++ b\n@@ -1,3 +1,2 @@\n a\n b\n-c\n"},
		{"two hunks", lines(20, nil), lines(20, map[int]string{2: "two", 18: ""}),
			"--- a\n+++ b\n@@ -1,5 +1,5 @@\n l1\n-l2\n+two\n l3\n l4\n l5\n@@ -15,6 +15,5 @@\n l15\n l16\n l17\n-l18\n l19\n l20\n"},
		{"close changes share a hunk", lines(12, nil), lines(12, map[int]string{3: "x", 9: "y"}),
			"--- a\n+++ b\n@@ -1,12 +1,12 @@\n l1\n l2\n-l3\n+x\n l4\n l5\n l6\n l7\n l8\n-l9\n+y\n l10\n l11\n l12\n"},
		{"from empty", "", "a\n", "--- a\n+++ b\n@@ -0,0 +1 @@\n+a\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UnifiedDiff("a", "b", tt.from, tt.to); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// Past maxDiffCells the changed middle is shown whole, removed then added,
// instead of an LCS table of that size.
func TestUnifiedDiffBounded(t *testing.T) {
	var a, b strings.Builder
	a.WriteString("same\n")
	b.WriteString("same\n")
	for i := range 3000 {
		fmt.Fprintf(&a, "a%d\n", i)
		fmt.Fprintf(&b, "b%d\n", i)
	}
	d := UnifiedDiff("x", "y", a.String(), b.String())
	if n := strings.Count(d, "\n-a"); n != 3000 {
		t.Errorf("%d removed lines, want 3000", n)
	}
	if n := strings.Count(d, "\n+b"); n != 3000 {
		t.Errorf("%d added lines, want 3000", n)
	}
	if !strings.HasPrefix(d, "--- x\n+++ y\n@@ -1,3001 +1,3001 @@\n same\n-a0\n") {
		t.Errorf("diff starts %q", d[:60])
	}
}

func TestComparable(t *testing.T) {
	o := &Object{Content: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "x", "uid": "u", "resourceVersion": "1", "generation": int64(2),
			"creationTimestamp": "t", "managedFields": []any{"m"}, "labels": map[string]any{"a": "b"}},
		"data":   map[string]any{"k": "v"},
		"status": map[string]any{"phase": "p"},
	}}
	got, err := comparable(o)
	if err != nil {
		t.Fatal(err)
	}
	want := "apiVersion: v1\ndata:\n  k: v\nkind: ConfigMap\nmetadata:\n  labels:\n    a: b\n  name: x\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if o.Field("metadata", "uid") != "u" {
		t.Error("comparable changed the object")
	}
}
