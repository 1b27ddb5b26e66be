package spec

import (
	"fmt"
	"strings"
)

// editDistance is the optimal-string-alignment distance between a and b:
// insertions, deletions, substitutions and swaps of two neighbours each
// cost one, so "retyr" is one step from "retry". Names are ASCII.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// nearest returns the candidate closest to s by edit distance when it is
// close enough to be a plausible typo (at most a third of the letters
// wrong, and never all of them); ties go to the earlier candidate.
func nearest(s string, candidates []string) (string, bool) {
	if len(s) > 256 {
		return "", false // no name is that long; spare the quadratic work
	}
	best, bestD := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(1, len(s)/3) || bestD >= len(s) || bestD >= len(best) {
		return "", false
	}
	return best, true
}

// didYouMean builds a hint naming the nearest candidate, or listing them
// all when none is close.
func didYouMean(s string, candidates []string, what string) string {
	if n, ok := nearest(s, candidates); ok {
		return fmt.Sprintf("did you mean %q?", n)
	}
	if len(candidates) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s", what, strings.Join(candidates, ", "))
}

// DidYouMean is the hint for a name that is not one of candidates: `did
// you mean "X"?` naming the nearest when it is a plausible typo, else
// "WHAT: a, b, c" listing them all. Other files with their own keys (a
// test file) give the same hints as a pipeline file.
func DidYouMean(name string, candidates []string, what string) string {
	return didYouMean(name, candidates, what)
}
