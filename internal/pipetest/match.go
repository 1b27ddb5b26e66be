package pipetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
)

// attrKeys are the event attributes an event written in the envelope form
// may give besides data.
var attrKeys = []string{"id", "type", "source", "subject"}

// isEnvelope reports whether a YAML event is written as {data, id, type,
// source, subject, metadata}: data and at least one of the others, and
// nothing else. Anything else is the event's data.
func isEnvelope(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) < 2 {
		return nil, false
	}
	if _, ok := m["data"]; !ok {
		return nil, false
	}
	for k := range m {
		if k != "data" && k != "metadata" && !slices.Contains(attrKeys, k) {
			return nil, false
		}
	}
	return m, true
}

// expected is one expected event: its data (a normalised JSON value) and
// the attributes it gives.
type expected struct {
	data     any
	attrs    map[string]string // of attrKeys
	metadata map[string]string // nil: not checked
}

// got is one event a sink was handed, as the assertions see it.
type got struct {
	ev   *flow.Event
	data any // normalised JSON value; the bytes as a string when not JSON
}

// newGot captures ev (copied: the sink must not keep what it is handed).
func newGot(ev *flow.Event) got {
	c := &flow.Event{ID: ev.ID, Source: ev.Source, Type: ev.Type, Subject: ev.Subject,
		DataContentType: ev.DataContentType, Time: ev.Time, Data: bytes.Clone(ev.Data)}
	if ev.Metadata != nil {
		c.Metadata = make(map[string]string, len(ev.Metadata))
		for k, v := range ev.Metadata {
			c.Metadata[k] = v
		}
	}
	return got{ev: c, data: parseData(c.Data)}
}

func (g got) attr(k string) string {
	switch k {
	case "id":
		return g.ev.ID
	case "type":
		return g.ev.Type
	case "source":
		return g.ev.Source
	case "subject":
		return g.ev.Subject
	}
	return ""
}

// parseData is the normalised JSON value of data, or the bytes as a
// string when they are not JSON.
func parseData(data []byte) any {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		return string(data)
	}
	return v
}

// normalise turns a value decoded from YAML into what parseData gives for
// the same JSON (numbers as json.Number, maps with string keys).
func normalise(v any) (any, error) {
	b, err := json.Marshal(toJSONable(v))
	if err != nil {
		return nil, err
	}
	return parseData(b), nil
}

// toJSONable converts YAML's map[any]any (non-string keys) and times.
func toJSONable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = toJSONable(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = toJSONable(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = toJSONable(x)
		}
		return out
	case time.Time:
		return t.Format(time.RFC3339Nano)
	}
	return v
}

// parseExpected reads an expected event written in the test file.
func parseExpected(v any) (expected, error) {
	var x expected
	data := v
	if m, ok := isEnvelope(v); ok {
		data = m["data"]
		x.attrs = map[string]string{}
		for _, k := range attrKeys {
			if a, ok := m[k]; ok {
				x.attrs[k] = fmt.Sprint(a)
			}
		}
		if md, ok := m["metadata"]; ok {
			mm, ok := toJSONable(md).(map[string]any)
			if !ok {
				return x, fmt.Errorf("metadata must be a mapping of strings")
			}
			x.metadata = map[string]string{}
			for k, s := range mm {
				x.metadata[k] = fmt.Sprint(s)
			}
		}
	}
	d, err := normalise(data)
	if err != nil {
		return x, err
	}
	x.data = d
	return x, nil
}

// equalJSON compares two normalised JSON values; numbers by value.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		return ok && equalNumber(x, y)
	}
	return a == b
}

func equalNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, ok1 := new(big.Rat).SetString(string(a))
	y, ok2 := new(big.Rat).SetString(string(b))
	return ok1 && ok2 && x.Cmp(y) == 0
}

// subsetJSON reports whether want is a sub-value of have: every key of an
// object in want is in have with a sub-value; lists and scalars are equal.
func subsetJSON(want, have any) bool {
	w, ok := want.(map[string]any)
	if !ok {
		return equalJSON(want, have)
	}
	h, ok := have.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range w {
		x, ok := h[k]
		if !ok || !subsetJSON(v, x) {
			return false
		}
	}
	return true
}

// project keeps of have only what want looks at (the keys of want's
// objects), so that a diff of a subset match shows the differences only.
func project(have, want any) any {
	w, ok := want.(map[string]any)
	h, ok2 := have.(map[string]any)
	if !ok || !ok2 {
		return have
	}
	out := map[string]any{}
	for k, v := range w {
		if x, ok := h[k]; ok {
			out[k] = project(x, v)
		}
	}
	return out
}

// matches reports whether g is the expected event x.
func (x expected) matches(g got, subset bool) bool {
	for k, v := range x.attrs {
		if g.attr(k) != v {
			return false
		}
	}
	for k, v := range x.metadata {
		if g.ev.Metadata[k] != v {
			return false
		}
	}
	if !subset && x.metadata != nil && len(x.metadata) != len(g.ev.Metadata) {
		return false
	}
	if subset {
		return subsetJSON(x.data, g.data)
	}
	return equalJSON(x.data, g.data)
}

// render is one line of a diff: the data as JSON with sorted keys, or an
// object of the attributes shown and the data.
func render(attrs []string, metadata bool, a map[string]string, md map[string]string, data any) string {
	if len(attrs) == 0 && !metadata {
		return jsonLine(data)
	}
	m := map[string]any{"data": data}
	for _, k := range attrs {
		m[k] = a[k]
	}
	if metadata {
		m["metadata"] = md
	}
	return jsonLine(m)
}

func jsonLine(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// checkEvents compares what a sink got with the expected events; it
// returns nothing when they match, else the lines of a failure report.
func checkEvents(sink string, want []expected, have []got, subset, ordered bool) []string {
	how := "exact"
	if subset {
		how = "subset"
	}
	order := "in order"
	if !ordered {
		order = "in any order"
	}
	ok := len(want) == len(have)
	pair := make([]int, len(want)) // want i ↔ have pair[i] (-1 none)
	if ordered {
		for i := range want {
			pair[i] = -1
			if i < len(have) && want[i].matches(have[i], subset) {
				pair[i] = i
			} else {
				ok = false
			}
		}
	} else {
		n := bipartite(len(want), len(have), func(i, j int) bool { return want[i].matches(have[j], subset) }, pair)
		ok = ok && n == len(want)
	}
	if ok {
		return nil
	}
	// The diff shows the attributes and metadata the expected events give.
	var attrs []string
	md := false
	for _, x := range want {
		for k := range x.attrs {
			if !slices.Contains(attrs, k) {
				attrs = append(attrs, k)
			}
		}
		md = md || x.metadata != nil
	}
	slices.Sort(attrs)
	var wl, hl []string
	for _, x := range want {
		wl = append(wl, render(attrs, md, x.attrs, x.metadata, x.data))
	}
	// Shown got events are projected on the expected ones they are
	// compared with (subset), so that equal parts read as equal.
	line := func(j int, x *expected) string {
		g := have[j]
		a := map[string]string{}
		for _, k := range attrs {
			a[k] = g.attr(k)
		}
		data := g.data
		if subset && x != nil {
			data = project(data, x.data)
		}
		return render(attrs, md, a, g.ev.Metadata, data)
	}
	if ordered {
		for j := range have {
			var x *expected
			if j < len(want) {
				x = &want[j]
			}
			hl = append(hl, line(j, x))
		}
	} else {
		// Compared as multisets: both sides sorted, so that what
		// matched lines up.
		for j := range have {
			var x *expected
			for i, p := range pair {
				if p == j {
					x = &want[i]
				}
			}
			hl = append(hl, line(j, x))
		}
		slices.Sort(wl)
		slices.Sort(hl)
	}
	head := fmt.Sprintf("sink %q: %s, got %s (match %s, %s)", sink, plural(len(want), "event")+" expected", plural(len(have), "event"), how, order)
	out := []string{head}
	return append(out, diffLines(wl, hl)...)
}

// checkWhere evaluates the CEL predicates on every event a sink got and
// its count.
func checkWhere(sink string, where []string, count *int, have []got) []string {
	var out []string
	if count != nil && *count != len(have) {
		out = append(out, fmt.Sprintf("sink %q: count: want %d, got %d", sink, *count, len(have)))
	}
	for _, src := range where {
		prog, err := expr.Compile(src, expr.Bool)
		if err != nil {
			out = append(out, fmt.Sprintf("sink %q: where %q: %v", sink, src, err))
			continue
		}
		var failed []string
		n := 0
		for _, g := range have {
			ok, err := prog.EvalBool(g.ev)
			if ok && err == nil {
				continue
			}
			n++
			if len(failed) < 5 {
				why := "false"
				if err != nil {
					why = err.Error()
				}
				failed = append(failed, fmt.Sprintf("    %s: %s", why, jsonLine(g.data)))
			}
		}
		if n > 0 {
			out = append(out, fmt.Sprintf("sink %q: where %q: %d of %s do not satisfy it:", sink, src, n, plural(len(have), "event")))
			out = append(out, failed...)
			if n > len(failed) {
				out = append(out, fmt.Sprintf("    ... and %d more", n-len(failed)))
			}
		}
	}
	return out
}

// deadLetter is a captured dead letter.
type deadLetter struct {
	d    flow.DeadLetter
	data any
	raw  string
}

func parseDeadLetter(g got) deadLetter {
	dl := deadLetter{raw: jsonLine(g.data)}
	if d, err := flow.ParseDeadLetter(g.ev.Data); err == nil {
		dl.d = d
		dl.data = parseData(d.Event.Data)
		if s, ok := dl.data.(string); ok && len(d.Event.Data) > 0 && d.Event.Data[0] == '"' {
			dl.data = s
		}
	}
	return dl
}

// reasonMatches reports whether the error matches reason: a substring, or
// a regular expression between slashes.
func reasonMatches(reason, err string) (bool, error) {
	if len(reason) >= 2 && strings.HasPrefix(reason, "/") && strings.HasSuffix(reason, "/") {
		re, rerr := regexp.Compile(reason[1 : len(reason)-1])
		if rerr != nil {
			return false, rerr
		}
		return re.MatchString(err), nil
	}
	return strings.Contains(err, reason), nil
}

// checkDeadLetters matches the expected dead letters with those captured,
// one to one, in any order; extra captured ones fail too.
func checkDeadLetters(want []DeadLetterExpect, have []got) []string {
	var out []string
	dls := make([]deadLetter, len(have))
	for i, g := range have {
		dls[i] = parseDeadLetter(g)
	}
	wantData := make([]any, len(want))
	for i, w := range want {
		if w.Data != nil {
			d, err := normalise(w.Data)
			if err != nil {
				out = append(out, fmt.Sprintf("dead_letters[%d].data: %v", i, err))
			}
			wantData[i] = d
		}
		if _, err := reasonMatches(w.Reason, ""); err != nil {
			out = append(out, fmt.Sprintf("dead_letters[%d].reason %q: %v", i, w.Reason, err))
		}
	}
	if len(out) > 0 {
		return out
	}
	match := func(i, j int) bool {
		w, d := want[i], dls[j]
		if ok, _ := reasonMatches(w.Reason, d.d.Error); !ok {
			return false
		}
		if w.Component != "" && w.Component != d.d.Component {
			return false
		}
		return wantData[i] == nil || subsetJSON(wantData[i], d.data)
	}
	pair := make([]int, len(want))
	n := bipartite(len(want), len(dls), match, pair)
	if n == len(want) && len(want) == len(dls) {
		return nil
	}
	out = append(out, fmt.Sprintf("dead letters: %s expected, got %s", plural(len(want), "dead letter"), plural(len(dls), "dead letter")))
	for i, j := range pair {
		if j < 0 {
			w := want[i]
			desc := fmt.Sprintf("reason %q", w.Reason)
			if w.Component != "" {
				desc += fmt.Sprintf(", component %q", w.Component)
			}
			if wantData[i] != nil {
				desc += ", data " + jsonLine(wantData[i])
			}
			out = append(out, "    - missing: "+desc)
		}
	}
	matched := make([]bool, len(dls))
	for _, j := range pair {
		if j >= 0 {
			matched[j] = true
		}
	}
	for j, d := range dls {
		if !matched[j] {
			if d.d.Component == "" {
				out = append(out, "    + unexpected: "+d.raw)
				continue
			}
			out = append(out, fmt.Sprintf("    + unexpected: component %q, reason %q, data %s", d.d.Component, d.d.Error, jsonLine(d.data)))
		}
	}
	return out
}

// bipartite finds a largest matching of n left and m right items that
// fit; pair[i] is the right item of left i, or -1. It returns the size.
func bipartite(n, m int, fits func(i, j int) bool, pair []int) int {
	owner := make([]int, m)
	for j := range owner {
		owner[j] = -1
	}
	var try func(i int, seen []bool) bool
	try = func(i int, seen []bool) bool {
		for j := 0; j < m; j++ {
			if seen[j] || !fits(i, j) {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || try(owner[j], seen) {
				owner[j] = i
				return true
			}
		}
		return false
	}
	size := 0
	for i := 0; i < n; i++ {
		if try(i, make([]bool, m)) {
			size++
		}
	}
	for i := range pair[:n] {
		pair[i] = -1
	}
	for j, i := range owner {
		if i >= 0 {
			pair[i] = j
		}
	}
	return size
}

// diffLines is a unified-style diff of want and have: "--- expected",
// "+++ got", then each line prefixed with "-" (expected only), "+" (got
// only) or " " (both).
func diffLines(want, have []string) []string {
	n, m := len(want), len(have)
	// lcs[i][j] is the longest common subsequence of want[i:], have[j:].
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == have[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	out := []string{"--- expected", "+++ got"}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && want[i] == have[j]:
			out = append(out, "  "+want[i])
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "- "+want[i])
			i++
		default:
			out = append(out, "+ "+have[j])
			j++
		}
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
