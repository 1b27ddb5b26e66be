package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Change is what applying a document would do to its object.
type Change string

const (
	// Created: there is no such object yet.
	Created Change = "created"
	// Configured: the object exists and applying changes it.
	Configured Change = "configured"
	// Unchanged: the object exists and applying leaves it as it is.
	Unchanged Change = "unchanged"
)

// DiffResult is what applying one document would do.
type DiffResult struct {
	// Meta names the object (its namespace resolved for namespaced kinds).
	Meta
	// Change is "" when Err is set.
	Change Change
	// Diff is a unified-style diff of the live object's YAML ("-") and
	// the object as it would be stored ("+"), for Configured; server-kept
	// bookkeeping (managedFields, resourceVersion, generation, uid,
	// creationTimestamp) and status are left out.
	Diff string
	// Err is why the document could not be checked: the server's
	// validation error, for one.
	Err error
}

// Diff tells, for each document, what applying it would do, changing
// nothing: it gets the live object and applies the document with a server
// dry run (so the server validates it as a real apply would, and fills in
// its defaults before the two are compared). opts.DryRun is forced on.
// Each document has its result; the error joins the documents' errors.
//
// A dry run sees only what is stored: a document whose namespace is made
// by an earlier document of the same set fails until that one is applied.
func (c *Client) Diff(ctx context.Context, docs [][]byte, opts ApplyOptions) ([]DiffResult, error) {
	opts.DryRun = true
	results := make([]DiffResult, 0, len(docs))
	var errs []error
	for _, doc := range docs {
		r := c.diffOne(ctx, doc, opts)
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
		results = append(results, r)
	}
	return results, errors.Join(errs...)
}

func (c *Client) diffOne(ctx context.Context, doc []byte, opts ApplyOptions) DiffResult {
	m, err := ReadMeta(doc)
	if err != nil {
		return DiffResult{Meta: m, Err: err}
	}
	_, m, err = c.locate(ctx, m)
	if err != nil {
		return DiffResult{Meta: m, Err: fmt.Errorf("%s: %w", m, err)}
	}
	r := DiffResult{Meta: m}
	live, err := c.Get(ctx, m.APIVersion, m.Kind, m.Namespace, m.Name)
	if err != nil && !IsNotFound(err) {
		r.Err = err
		return r
	}
	applied, err := c.Apply(ctx, doc, opts)
	if err != nil {
		r.Err = err
		return r
	}
	if live == nil {
		r.Change = Created
		return r
	}
	before, err := comparable(live)
	if err != nil {
		r.Err = fmt.Errorf("%s: %w", m, err)
		return r
	}
	after, err := comparable(applied)
	if err != nil {
		r.Err = fmt.Errorf("%s: %w", m, err)
		return r
	}
	if before == after {
		r.Change = Unchanged
		return r
	}
	r.Change = Configured
	r.Diff = UnifiedDiff("live "+m.String(), "applied "+m.String(), before, after)
	return r
}

// comparable is the YAML of an object less what the server keeps for
// itself and status.
func comparable(o *Object) (string, error) {
	c := make(map[string]any, len(o.Content))
	for k, v := range o.Content {
		if k != "status" {
			c[k] = v
		}
	}
	if md, ok := c["metadata"].(map[string]any); ok {
		m := make(map[string]any, len(md))
		for k, v := range md {
			switch k {
			case "managedFields", "resourceVersion", "generation", "uid", "creationTimestamp":
			default:
				m[k] = v
			}
		}
		c["metadata"] = m
	}
	b, err := toYAML(c)
	return string(b), err
}

// maxDiffCells bounds the LCS table (lines before x lines after, once the
// common head and tail are cut): past it the changed middle is shown as
// all removed, then all added.
const maxDiffCells = 4 << 20

// UnifiedDiff returns a unified-style diff of two texts, line by line, with
// three lines of context around each change; "" when they are equal.
func UnifiedDiff(fromName, toName, from, to string) string {
	if from == to {
		return ""
	}
	a, b := splitLines(from), splitLines(to)
	ops := diffLines(a, b)

	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", fromName, toName)
	const context = 3
	// Walk the edit script, emitting hunks: runs of changes with up to
	// 2*context equal lines between them stay in one hunk.
	i := 0
	for i < len(ops) {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk starts context lines before the change at i.
		start := max(i-context, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			// equal run: does another change follow within 2*context?
			j := end
			for j < len(ops) && ops[j].kind == ' ' {
				j++
			}
			if j < len(ops) && j-end <= 2*context {
				end = j
				continue
			}
			end = min(end+context, len(ops))
			break
		}
		// Line numbers of the hunk in a and b.
		aStart, bStart := ops[start].a, ops[start].b
		var aLen, bLen int
		for _, op := range ops[start:end] {
			if op.kind != '+' {
				aLen++
			}
			if op.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
		for _, op := range ops[start:end] {
			out.WriteByte(op.kind)
			out.WriteString(op.text)
			out.WriteByte('\n')
		}
		i = end
	}
	return out.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start) // the line before the (empty) range
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// diffOp is one line of an edit script: ' ' kept, '-' removed, '+' added;
// a and b are the (0-based) positions in the two texts where it stands.
type diffOp struct {
	kind byte
	text string
	a, b int
}

// diffLines is a shortest edit script from a to b (LCS on lines, after
// cutting the common head and tail; bounded by maxDiffCells).
func diffLines(a, b []string) []diffOp {
	var ops []diffOp
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		ops = append(ops, diffOp{' ', a[head], head, head})
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	ma, mb := a[head:len(a)-tail], b[head:len(b)-tail]

	if len(ma)*len(mb) > maxDiffCells {
		for i, l := range ma {
			ops = append(ops, diffOp{'-', l, head + i, head})
		}
		for j, l := range mb {
			ops = append(ops, diffOp{'+', l, head + len(ma), head + j})
		}
	} else {
		// lcs[i][j]: the LCS length of ma[i:] and mb[j:].
		n, m := len(ma), len(mb)
		lcs := make([][]int32, n+1)
		for i := range lcs {
			lcs[i] = make([]int32, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && ma[i] == mb[j]:
				ops = append(ops, diffOp{' ', ma[i], head + i, head + j})
				i++
				j++
			case j < m && (i == n || lcs[i][j+1] > lcs[i+1][j]):
				ops = append(ops, diffOp{'+', mb[j], head + i, head + j})
				j++
			default:
				ops = append(ops, diffOp{'-', ma[i], head + i, head + j})
				i++
			}
		}
	}
	for k := 0; k < tail; k++ {
		ia, ib := len(a)-tail+k, len(b)-tail+k
		ops = append(ops, diffOp{' ', a[ia], ia, ib})
	}
	return ops
}
