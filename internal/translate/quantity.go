package translate

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/flowctl/flowctl/internal/spec"
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

// parseMemory reads a memory quantity: its number and its unit (factor 1
// and no Compose spelling for plain bytes).
func parseMemory(q string) (v, factor float64, composeUnit string, err error) {
	s := strings.TrimSpace(q)
	factor = 1
	for _, m := range memSuffixes {
		if strings.HasSuffix(s, m.suffix) {
			s, factor, composeUnit = strings.TrimSuffix(s, m.suffix), m.factor, m.compose
			break
		}
	}
	v, err = strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) || strings.ContainsAny(s, "eE") {
		return 0, 0, "", fmt.Errorf("memory %q is not a memory quantity: write bytes with a unit, e.g. 512Mi or 1Gi", q)
	}
	return v, factor, composeUnit, nil
}

// composeMemory turns a memory quantity into Compose's spelling: the same
// binary unit when Compose has it and the number is whole ("512Mi" →
// "512m"), else whole bytes ("1G" → "1000000000").
func composeMemory(q string) (string, error) {
	v, factor, unit, err := parseMemory(q)
	if err != nil {
		return "", err
	}
	if unit != "" && v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', -1, 64) + unit, nil
	}
	b, err := wholeBytes(q, v, factor)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(b, 10), nil
}

// memoryBytes reads a memory quantity as bytes ("512Mi" → 536870912),
// rounded up.
func memoryBytes(q string) (int64, error) {
	v, factor, _, err := parseMemory(q)
	if err != nil {
		return 0, err
	}
	return wholeBytes(q, v, factor)
}

// wholeBytes is v units of factor bytes (parseMemory's reading of q),
// rounded up.
func wholeBytes(q string, v, factor float64) (int64, error) {
	b := math.Ceil(v * factor)
	if b > 1<<62 {
		return 0, fmt.Errorf("memory %q is too large", q)
	}
	return int64(b), nil
}

// nodeMemLimit is the GOMEMLIMIT for the node container of c, given the
// memory its engine kills the container beyond (a quantity; "" for
// none): nine tenths of it, so that the node's collector works harder as
// the heap nears the limit instead of the container being killed. Without
// it the node runs with flowctl's own target, whose step back to Go's
// defaults lets a large live heap double before a collection (see
// docs/perf.md). "" when there is no such limit, when c does not run
// inside the node process (an image runs in its own container; a
// command's child shares the node's container and its memory, so the
// node does not claim it), or when c's env: sets GOMEMLIMIT itself.
func nodeMemLimit(c *spec.Component, limit string) string {
	if limit == "" || c.Runner != spec.RunBuiltin || c.Image != "" {
		return ""
	}
	if _, set := c.Env["GOMEMLIMIT"]; set {
		return ""
	}
	b, err := memoryBytes(limit)
	if err != nil {
		return "" // the resources' own translation warns
	}
	mib := b / 10 * 9 >> 20
	if mib < 1 {
		return ""
	}
	return strconv.FormatInt(mib, 10) + "MiB"
}
