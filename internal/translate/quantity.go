package translate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Resource quantities are written as in Kubernetes (cpu: 100m, 1, 0.5;
// memory: 128Mi, 1G, 512000). Compose wants cpus as a decimal number of
// CPUs and memory in bytes or with its binary suffixes k, m, g.

// composeCPUs turns a CPU quantity into Compose's cpus ("100m" → "0.1").
func composeCPUs(q string) (string, error) {
	s := strings.TrimSpace(q)
	scale := 1.0
	if strings.HasSuffix(s, "m") {
		s, scale = strings.TrimSuffix(s, "m"), 1000
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return "", fmt.Errorf("cpu %q is not a CPU quantity: write cores (1, 0.5) or millicores (500m)", q)
	}
	return strconv.FormatFloat(v/scale, 'f', -1, 64), nil
}

// memSuffixes are Kubernetes' memory suffixes with their factor and, for
// the binary ones, Compose's spelling of the same unit.
var memSuffixes = []struct {
	suffix  string
	factor  float64
	compose string
}{
	{"Ki", 1 << 10, "k"}, {"Mi", 1 << 20, "m"}, {"Gi", 1 << 30, "g"},
	{"Ti", 1 << 40, ""}, {"Pi", 1 << 50, ""}, {"Ei", 1 << 60, ""},
	{"k", 1e3, ""}, {"K", 1e3, ""}, {"M", 1e6, ""}, {"G", 1e9, ""}, {"T", 1e12, ""}, {"P", 1e15, ""}, {"E", 1e18, ""},
}

// composeMemory turns a memory quantity into Compose's spelling: the same
// binary unit when Compose has it and the number is whole ("512Mi" →
// "512m"), else whole bytes ("1G" → "1000000000").
func composeMemory(q string) (string, error) {
	s := strings.TrimSpace(q)
	factor, unit := 1.0, ""
	for _, m := range memSuffixes {
		if strings.HasSuffix(s, m.suffix) {
			s, factor, unit = strings.TrimSuffix(s, m.suffix), m.factor, m.compose
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) || strings.ContainsAny(s, "eE") {
		return "", fmt.Errorf("memory %q is not a memory quantity: write bytes with a unit, e.g. 512Mi or 1Gi", q)
	}
	if unit != "" && v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', -1, 64) + unit, nil
	}
	b := math.Ceil(v * factor)
	if b > 1<<62 {
		return "", fmt.Errorf("memory %q is too large", q)
	}
	return strconv.FormatInt(int64(b), 10), nil
}
